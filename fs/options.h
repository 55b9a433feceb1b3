/*
 * options.h - the command line and the config file: tierfs [options] BUCKET[:PREFIX] MOUNTPOINT
 * (options.c).  Not thread-safe: parsed once, at start, then read only.
 */
#ifndef TIERFS_OPTIONS_H
#define TIERFS_OPTIONS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

struct tfs_options {
	char *bucket;       /* BUCKET of BUCKET[:PREFIX] */
	char *prefix;       /* "" or a prefix ending in '/' */
	char *mountpoint;
	char *endpoint, *region, *profile, *cache_dir, *ca_file;
	char *config, *log_file, *log_level;
	char *config_bucket, *config_mountpoint; /* bucket = and mountpoint = of the config file */
	char *kernel_opts;  /* kernel mount flags passed on to FUSE: nosuid,nodev,noatime,... */
	/* set by fuse_opt, which stores an int: int, not bool (a bool let it overwrite the next
	 * field: -o direct_io zeroed the low byte of ttl_s) */
	int path_style, anonymous, direct_io;
	bool allow_other, foreground, debug, ro;
	uint64_t ttl_s, chunk_size, readahead_max, mem_bytes;
	uint64_t l2_size, l2_min_free_pct, l2_min_free_bytes;
	uint64_t read_ahead_kb;
	uint64_t l1_size, promote_after, demote_after_s, demote_interval_s;
	uint64_t timeout_ms, retries, connections;
	uint64_t prefetch_window_s, prefetch_interval_s, prefetch_budget;
	bool prefetch_off;
	/* owners and modes (bucket.c's fill_stat) */
	uint64_t uid, gid, file_mode, dir_mode, umask;
	bool uid_set, gid_set;
	bool object_meta_off;
	/* the shared tier: BUCKET[:PREFIX] of the cache bucket, its endpoint, region, profile, the
	 * file of the fleet key, the deadline of one request */
	char *shared_cache, *shared_endpoint, *shared_region, *shared_profile, *shared_key_file;
	char *shared_prefix;  /* PREFIX of shared_cache, as prefix is of the bucket */
	uint64_t shared_timeout_ms;
	uint64_t shared_wait_ms;     /* the longest wait for another machine's fetch (0: none) */
	bool help, version, l1_size_set;
};

/* Returns -1 to go on, or an exit status to leave with (0 after --help/--version, 2 on bad
 * options, with a message on stderr).  Fills fargs with the arguments for fuse_session_new. */
int tfs_parse_options(int argc, char **argv, struct tfs_options *o, struct fuse_args *fargs);
void tfs_options_free(struct tfs_options *o);
/* Splits BUCKET[:PREFIX] in place: bucket keeps BUCKET; *prefix gets PREFIX without leading
 * slashes and with a trailing one ("" for none), malloc'ed.  -1 with a message on stderr for
 * a bad bucket name or prefix. */
int tfs_split_bucket(char *bucket, char **prefix);
void tfs_print_help(const char *prog);

#endif
