/*
 * log.h - one-line-per-event logging shared by every layer.
 *
 * Thread-safe: each call writes one whole line with a single write(2).  Lines go to stderr
 * (foreground) or syslog (daemonized); the level threshold is global and may be changed at any
 * time.  Never pass secrets to these functions: nothing here scrubs them.
 */
#ifndef TIERFS_LOG_H
#define TIERFS_LOG_H

#include <stdbool.h>

enum tfs_log_level { TFS_LOG_ERROR = 0, TFS_LOG_WARNING, TFS_LOG_INFO, TFS_LOG_DEBUG };

void tfs_log_set_level(enum tfs_log_level level);
enum tfs_log_level tfs_log_get_level(void);
/* Send lines to syslog instead of stderr (after daemonizing). */
void tfs_log_use_syslog(bool on);
/* Send lines to a file (appended; 0600 when created); 0 or -errno.  tfs_log_reopen opens the
 * same path again (after log rotation moved the file away). */
int tfs_log_to_file(const char *path);
int tfs_log_reopen(void);
/* Parses "error", "warning", "info", "debug"; -1 otherwise. */
int tfs_log_level_from_name(const char *name);

void tfs_log(enum tfs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tfs_err(...) tfs_log(TFS_LOG_ERROR, __VA_ARGS__)
#define tfs_warn(...) tfs_log(TFS_LOG_WARNING, __VA_ARGS__)
#define tfs_info(...) tfs_log(TFS_LOG_INFO, __VA_ARGS__)
#define tfs_debug(...)                                                                   \
	do {                                                                             \
		if (tfs_log_get_level() >= TFS_LOG_DEBUG)                                \
			tfs_log(TFS_LOG_DEBUG, __VA_ARGS__);                             \
	} while (0)

#endif
