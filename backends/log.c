/*
 * log.c - timestamped log lines to stderr or syslog.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = TFS_LOG_INFO;
static _Atomic bool log_syslog;
/* Where lines go when not to syslog.  Writers hold fd_lock for reading across their one write,
 * a reopen holds it for writing across the change and the close: a line never goes to a closed
 * descriptor, nor to another file that reused its number. */
static int log_fd = STDERR_FILENO;
static pthread_rwlock_t fd_lock = PTHREAD_RWLOCK_INITIALIZER;
static char *log_path;                      /* set once, before any thread runs */

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void tfs_log_set_level(enum tfs_log_level level) { log_level = level; }
enum tfs_log_level tfs_log_get_level(void) { return (enum tfs_log_level)log_level; }

void tfs_log_use_syslog(bool on)
{
	if (on)
		openlog("tierfs", LOG_PID, LOG_DAEMON);
	log_syslog = on;
}

int tfs_log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	free(log_path);
	log_path = strdup(path);
	pthread_rwlock_wrlock(&fd_lock);
	int old = log_fd;
	log_fd = fd;
	if (old != STDERR_FILENO)
		close(old);
	pthread_rwlock_unlock(&fd_lock);
	log_syslog = false;
	return 0;
}

int tfs_log_reopen(void)
{
	if (!log_path)
		return 0;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	pthread_rwlock_wrlock(&fd_lock);
	int old = log_fd;
	log_fd = fd;
	if (old != STDERR_FILENO)
		close(old);
	pthread_rwlock_unlock(&fd_lock);
	return 0;
}

int tfs_log_level_from_name(const char *name)
{
	for (int i = 0; i <= TFS_LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void tfs_log(enum tfs_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n = 0;

	if ((int)level > log_level)
		return;
	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		syslog(prio[level], "%s: %s", level_names[level], line);
		return;
	}

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tierfs[%d] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, (int)getpid(), level_names[level]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line so that lines from threads never interleave. */
	pthread_rwlock_rdlock(&fd_lock);
	ssize_t w = write(log_fd, line, (size_t)n);
	pthread_rwlock_unlock(&fd_lock);
	(void)w;
}
