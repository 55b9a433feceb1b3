/*
 * options.c - the command line: tierfs [options] BUCKET[:PREFIX] MOUNTPOINT.
 *
 * Every -o option is known here; an unknown or malformed one is an error (exit status 2), never
 * silently passed on.  Defaults are the named constants of the module that owns the option.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "l1.h"
#include "options.h"
#include "policy.h"
#include "l1.h"
#include "util.h"

enum {
	KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_TTL, KEY_CHUNK, KEY_READAHEAD,
	KEY_MEM, KEY_TIMEOUT, KEY_RETRIES, KEY_THREADS, KEY_RO, KEY_RW, KEY_ALLOW_OTHER,
	KEY_L2_SIZE, KEY_L2_MIN_FREE, KEY_READ_AHEAD_KB, KEY_L1_SIZE, KEY_PROMOTE_AFTER,
	KEY_DEMOTE_AFTER, KEY_DEMOTE_INTERVAL, KEY_KERNEL_FLAG, KEY_MOUNT_NOISE, KEY_CONFIG,
	KEY_LOG_LEVEL, KEY_PREFETCH, KEY_PREFETCH_WINDOW, KEY_PREFETCH_INTERVAL, KEY_PREFETCH_BUDGET,
	KEY_UID, KEY_GID, KEY_FILE_MODE, KEY_DIR_MODE, KEY_UMASK, KEY_OBJECT_META, KEY_SHARED_TIMEOUT,
	KEY_SHARED_WAIT,
};

#define DEFAULT_READ_AHEAD_KB 1024 /* one FUSE request of the largest size */

#define OPT(t, m) { t, offsetof(struct tfs_options, m), 1 }

static const struct fuse_opt opt_spec[] = {
	{ "endpoint=%s", offsetof(struct tfs_options, endpoint), 0 },
	{ "region=%s", offsetof(struct tfs_options, region), 0 },
	{ "profile=%s", offsetof(struct tfs_options, profile), 0 },
	{ "cache_dir=%s", offsetof(struct tfs_options, cache_dir), 0 },
	{ "ca_file=%s", offsetof(struct tfs_options, ca_file), 0 },
	{ "log_file=%s", offsetof(struct tfs_options, log_file), 0 },
	{ "shared_cache=%s", offsetof(struct tfs_options, shared_cache), 0 },
	{ "shared_cache_endpoint=%s", offsetof(struct tfs_options, shared_endpoint), 0 },
	{ "shared_cache_region=%s", offsetof(struct tfs_options, shared_region), 0 },
	{ "shared_cache_profile=%s", offsetof(struct tfs_options, shared_profile), 0 },
	{ "shared_cache_key=%s", offsetof(struct tfs_options, shared_key_file), 0 },
	FUSE_OPT_KEY("shared_cache_timeout=", KEY_SHARED_TIMEOUT),
	FUSE_OPT_KEY("shared_cache_wait=", KEY_SHARED_WAIT),
	FUSE_OPT_KEY("log_level=", KEY_LOG_LEVEL),
	FUSE_OPT_KEY("prefetch=", KEY_PREFETCH),
	FUSE_OPT_KEY("prefetch_window=", KEY_PREFETCH_WINDOW),
	FUSE_OPT_KEY("prefetch_interval=", KEY_PREFETCH_INTERVAL),
	FUSE_OPT_KEY("prefetch_budget=", KEY_PREFETCH_BUDGET),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("file_mode=", KEY_FILE_MODE),
	FUSE_OPT_KEY("dir_mode=", KEY_DIR_MODE),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
	FUSE_OPT_KEY("object_meta=", KEY_OBJECT_META),
	FUSE_OPT_KEY("config=", KEY_CONFIG),
	/* kernel mount flags, as mount(8) and fstab pass them: on to FUSE */
	FUSE_OPT_KEY("suid", KEY_KERNEL_FLAG), FUSE_OPT_KEY("nosuid", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("dev", KEY_KERNEL_FLAG), FUSE_OPT_KEY("nodev", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("exec", KEY_KERNEL_FLAG), FUSE_OPT_KEY("noexec", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("atime", KEY_KERNEL_FLAG), FUSE_OPT_KEY("noatime", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("relatime", KEY_KERNEL_FLAG), FUSE_OPT_KEY("norelatime", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("strictatime", KEY_KERNEL_FLAG), FUSE_OPT_KEY("nodiratime", KEY_KERNEL_FLAG),
	FUSE_OPT_KEY("async", KEY_KERNEL_FLAG), FUSE_OPT_KEY("sync", KEY_KERNEL_FLAG),
	/* words for mount(8) and fstab alone: accepted and ignored */
	FUSE_OPT_KEY("defaults", KEY_MOUNT_NOISE), FUSE_OPT_KEY("_netdev", KEY_MOUNT_NOISE),
	FUSE_OPT_KEY("nofail", KEY_MOUNT_NOISE), FUSE_OPT_KEY("auto", KEY_MOUNT_NOISE),
	FUSE_OPT_KEY("noauto", KEY_MOUNT_NOISE), FUSE_OPT_KEY("user", KEY_MOUNT_NOISE),
	FUSE_OPT_KEY("users", KEY_MOUNT_NOISE), FUSE_OPT_KEY("nouser", KEY_MOUNT_NOISE),
	FUSE_OPT_KEY("x-", KEY_MOUNT_NOISE), FUSE_OPT_KEY("comment=", KEY_MOUNT_NOISE),
	OPT("path_style", path_style),
	OPT("anonymous", anonymous),
	OPT("direct_io", direct_io),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("ttl=", KEY_TTL),
	FUSE_OPT_KEY("chunk_size=", KEY_CHUNK),
	FUSE_OPT_KEY("readahead=", KEY_READAHEAD),
	FUSE_OPT_KEY("mem_cache=", KEY_MEM),
	FUSE_OPT_KEY("timeout=", KEY_TIMEOUT),
	FUSE_OPT_KEY("retries=", KEY_RETRIES),
	FUSE_OPT_KEY("connections=", KEY_THREADS),
	FUSE_OPT_KEY("fetch_threads=", KEY_THREADS), /* its name before 0.2 */
	FUSE_OPT_KEY("l2_size=", KEY_L2_SIZE),
	FUSE_OPT_KEY("l2_min_free=", KEY_L2_MIN_FREE),
	FUSE_OPT_KEY("read_ahead_kb=", KEY_READ_AHEAD_KB),
	FUSE_OPT_KEY("l1_size=", KEY_L1_SIZE),
	FUSE_OPT_KEY("promote_after=", KEY_PROMOTE_AFTER),
	FUSE_OPT_KEY("demote_after=", KEY_DEMOTE_AFTER),
	FUSE_OPT_KEY("demote_interval=", KEY_DEMOTE_INTERVAL),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_END
};

void tfs_print_help(const char *prog)
{
	printf("usage: %s [options] BUCKET[:PREFIX] MOUNTPOINT\n"
	       "\n"
	       "Mounts an S3 bucket, or the keys under PREFIX in it, read-only at MOUNTPOINT.\n"
	       "\n"
	       "general options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground, log to stderr\n"
	       "    -d, -o debug           debug log (implies -f)\n"
	       "    -o OPT[,OPT...]        mount options, below\n"
	       "\n"
	       "S3 options:\n"
	       "    -o endpoint=URL        S3 endpoint, http(s)://host[:port]\n"
	       "                           (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)\n"
	       "    -o region=NAME         signing region (default: $AWS_REGION, the profile's, %s)\n"
	       "    -o profile=NAME        profile in ~/.aws/credentials (default: $AWS_PROFILE, default)\n"
	       "    -o path_style          bucket in the URL path, not the host name (default: automatic,\n"
	       "                           on for IP and localhost endpoints and dotted bucket names)\n"
	       "    -o anonymous           send unsigned requests (public buckets; default: off)\n"
	       "    -o ca_file=PATH        PEM certificates to trust for https (default: the system's)\n"
	       "    -o timeout=MS          deadline of one S3 operation, retries included (default: %u)\n"
	       "    -o retries=N           retries of a failed S3 request (default: %u)\n"
	       "\n"
	       "cache options:\n"
	       "    -o ttl=DURATION        how long metadata counts as fresh: 300, 30s, 5m, 1h, 2d, never\n"
	       "                           (default: %us)\n"
	       "    -o chunk_size=SIZE     bytes per chunk, 64K..64M (default: 1M)\n"
	       "    -o readahead=SIZE      most bytes read ahead of a sequential reader, 0 = off\n"
	       "                           (default: %lluM)\n"
	       "    -o l1_size=SIZE        RAM tier for promoted chunks, 0 = no L1 (default: 512M,\n"
	       "                           at most an eighth of RAM)\n"
	       "    -o promote_after=N     accesses before a chunk enters L1 (default: %u)\n"
	       "    -o demote_after=DURATION  an L1 chunk not read this long leaves L1 (default: %us)\n"
	       "    -o demote_interval=DURATION  how often demotion runs (default: %us)\n"
	       "    -o prefetch=on|off     prefetch by access pattern: readahead, recurring accesses,\n"
	       "                           files of a directory in order (default: on)\n"
	       "    -o prefetch_window=DURATION  fetch what a recurring access will read this long\n"
	       "                           before it is predicted (default: %us)\n"
	       "    -o prefetch_interval=DURATION  how often the recurring-access predictor runs\n"
	       "                           (default: %us)\n"
	       "    -o prefetch_budget=SIZE  most prefetched bytes not yet read, in flight or cached\n"
	       "                           (default: %lluM)\n"
	       "    -o mem_cache=SIZE      memory for chunks in flight and read ahead (default: %lluM)\n"
	       "    -o connections=N       most S3 GETs in flight, 1..256: tierfs finds how many the\n"
	       "                           network rewards, up to this (default: %u)\n"
	       "    -o cache_dir=PATH      directory of the on-disk (L2) cache (default:\n"
	       "                           $XDG_CACHE_HOME/tierfs/NAME, else /var/cache/tierfs/NAME for\n"
	       "                           root, ~/.cache/tierfs/NAME for others; NAME is the bucket,\n"
	       "                           with @HOST_PORT for a custom endpoint)\n"
	       "    -o l2_size=SIZE        capacity of the on-disk cache, 0 = no L2 (default: %lluG)\n"
	       "    -o l2_min_free=N%%|SIZE keep this much of the cache's file system free\n"
	       "                           (default: %u%%)\n"
	       "    -o direct_io           bypass the kernel page cache (default: off)\n"
	       "    -o read_ahead_kb=N     kernel read-ahead of the mount, 0 = leave the kernel's;\n"
	       "                           needs root (default: %u)\n"
	       "\n"
	       "owners and modes (tierfs is read-only: no mode it shows has a write bit):\n"
	       "    -o uid=N, -o gid=N     owner of every file and directory (default: the\n"
	       "                           object's x-amz-meta-uid/-gid, else the mount's user)\n"
	       "    -o file_mode=OCTAL     mode of files without x-amz-meta-mode (default: 0644)\n"
	       "    -o dir_mode=OCTAL      mode of directories (default: 0755)\n"
	       "    -o umask=OCTAL         bits cleared from every mode (default: 022)\n"
	       "    -o object_meta=on|off  honour x-amz-meta-mode, -uid, -gid and -mtime (as s3fs\n"
	       "                           and rclone write them); the kernel's getattr of a file\n"
	       "                           whose headers the mount has not read sends a HEAD\n"
	       "                           (default: on)\n"
	       "\n"
	       "a shared cache for a fleet of machines (L1 -> L2 -> shared -> S3):\n"
	       "    -o shared_cache=BUCKET[:PREFIX]  chunks kept in this bucket for every machine\n"
	       "                           that mounts the same source with it (default: none)\n"
	       "    -o shared_cache_endpoint=URL  its endpoint (default: the source's)\n"
	       "    -o shared_cache_region=NAME   its signing region (default: the source's)\n"
	       "    -o shared_cache_profile=NAME  its credentials, a profile of ~/.aws/credentials\n"
	       "                           (default: the source's credentials)\n"
	       "    -o shared_cache_key=FILE  the fleet key: only chunks written with it are\n"
	       "                           served, and every chunk written carries it (default: none)\n"
	       "    -o shared_cache_timeout=MS  deadline of one request to it; after %u failures\n"
	       "                           in a row it is not asked for %u s (default: %u)\n"
	       "    -o shared_cache_wait=MS  a chunk another machine is fetching from the source\n"
	       "                           is waited for this long, then fetched (default: %u;\n"
	       "                           0: never wait, every machine fetches what it misses)\n"
	       "\n"
	       "logging and configuration:\n"
	       "    -o log_level=LEVEL     error, warning, info or debug (default: info; debug with -d)\n"
	       "    -o log_file=PATH       log to this file, reopened on SIGHUP (default: stderr with\n"
	       "                           -f, else syslog)\n"
	       "    -o config=FILE         read options from FILE, \"key = value\" per line, also\n"
	       "                           bucket = and mountpoint = (default: none); the command\n"
	       "                           line wins over the file, the file over the environment\n"
	       "\n"
	       "FUSE options:\n"
	       "    -o ro                  a read-only kernel mount (default: off; the data is\n"
	       "                           read-only either way, but TTL settings need a writable\n"
	       "                           mount)\n"
	       "    -o allow_other         let other users see the mount (needs user_allow_other in\n"
	       "                           /etc/fuse.conf unless root)\n"
	       "    -o rw                  a writable kernel mount (the default)\n"
	       "    -o nosuid,nodev,noexec,noatime,... kernel mount flags, passed on (default: none)\n"
	       "    -o defaults,_netdev,nofail,noauto,user,x-*  fstab words, accepted and ignored\n"
	       "\n"
	       "Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN,\n"
	       "or from the profile in ~/.aws/credentials.  Unmount with: fusermount3 -u MOUNTPOINT\n",
	       prog, S3_DEFAULT_REGION, S3_DEFAULT_TIMEOUT_MS, S3_DEFAULT_RETRIES,
	       POLICY_DEFAULT_TTL_S, (unsigned long long)(POLICY_DEFAULT_READAHEAD_MAX >> 20),
	       L1_DEFAULT_PROMOTE_AFTER, L1_DEFAULT_DEMOTE_AFTER_S, L1_DEFAULT_DEMOTE_INTERVAL_S,
	       POLICY_DEFAULT_PREFETCH_WINDOW_S, POLICY_DEFAULT_PREFETCH_INTERVAL_MS / 1000,
	       (unsigned long long)(POLICY_DEFAULT_PREFETCH_BUDGET >> 20),
	       (unsigned long long)(POLICY_DEFAULT_MEM_BYTES >> 20), POLICY_DEFAULT_CONNECTIONS,
	       (unsigned long long)(POLICY_DEFAULT_L2_SIZE >> 30), POLICY_DEFAULT_L2_MIN_FREE_PCT,
	       DEFAULT_READ_AHEAD_KB, SHARED_DEFAULT_BREAKER_ERRORS, SHARED_DEFAULT_BREAKER_MS / 1000,
	       SHARED_DEFAULT_TIMEOUT_MS, SHARED_DEFAULT_WAIT_MS);
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "tierfs: bad option %s: '%s'\n", what, arg);
	return -1;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct tfs_options *o = data;
	const char *val = strchr(arg, '=');
	val = val ? val + 1 : "";
	uint64_t v;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->bucket) {
			o->bucket = strdup(arg);
			return 0;
		}
		if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "tierfs: unexpected argument '%s'\n", arg);
		return -1;
	case KEY_HELP: o->help = true; return 0;
	case KEY_VERSION: o->version = true; return 0;
	case KEY_FOREGROUND: o->foreground = true; return 0;
	case KEY_DEBUG: o->debug = o->foreground = true; return 0;
	case KEY_RO: o->ro = true; return 0;
	case KEY_RW:
		o->ro = false; /* the kernel mount; the data stays read-only (EROFS) either way */
		return 0;
	case KEY_KERNEL_FLAG: {
		char *n = tfs_strdup_printf("%s%s%s", o->kernel_opts ? o->kernel_opts : "",
					    o->kernel_opts ? "," : "", arg);
		if (!n)
			return -1;
		free(o->kernel_opts);
		o->kernel_opts = n;
		return 0;
	}
	case KEY_MOUNT_NOISE:
		return 0;
	case KEY_CONFIG:
		return 0; /* read before the command line (see tfs_parse_options) */
	case KEY_LOG_LEVEL:
		if (strcmp(val, "error") && strcmp(val, "warning") && strcmp(val, "info") &&
		    strcmp(val, "debug"))
			return bad("log_level (error, warning, info or debug)", val);
		free(o->log_level);
		o->log_level = strdup(val);
		return 0;
	case KEY_ALLOW_OTHER: o->allow_other = true; return 0;
	case KEY_TTL:
		if (tfs_parse_duration(val, &o->ttl_s) < 0)
			return bad("ttl (a number of seconds, or 30s, 5m, 1h, 2d, never)", val);
		return 0;
	case KEY_CHUNK:
		if (tfs_parse_size(val, &o->chunk_size) < 0 ||
		    o->chunk_size < POLICY_MIN_CHUNK_SIZE || o->chunk_size > POLICY_MAX_CHUNK_SIZE ||
		    (o->chunk_size & (o->chunk_size - 1)))
			return bad("chunk_size (a power of two from 64K to 64M)", val);
		return 0;
	case KEY_READAHEAD:
		if (tfs_parse_size(val, &o->readahead_max) < 0 || o->readahead_max > (1ull << 30))
			return bad("readahead (a size up to 1G)", val);
		return 0;
	case KEY_MEM:
		if (tfs_parse_size(val, &o->mem_bytes) < 0 || o->mem_bytes < (4ull << 20))
			return bad("mem_cache (a size of at least 4M)", val);
		return 0;
	case KEY_TIMEOUT:
		if (tfs_parse_uint(val, 100, 3600 * 1000, &o->timeout_ms) < 0)
			return bad("timeout (milliseconds, 100..3600000)", val);
		return 0;
	case KEY_SHARED_TIMEOUT:
		if (tfs_parse_uint(val, 100, 600 * 1000, &o->shared_timeout_ms) < 0)
			return bad("shared_cache_timeout (milliseconds, 100..600000)", val);
		return 0;
	case KEY_SHARED_WAIT:
		if (tfs_parse_uint(val, 0, 600 * 1000, &o->shared_wait_ms) < 0)
			return bad("shared_cache_wait (milliseconds, 0..600000)", val);
		return 0;
	case KEY_RETRIES:
		if (tfs_parse_uint(val, 0, 100, &o->retries) < 0)
			return bad("retries (0..100)", val);
		return 0;
	case KEY_L2_SIZE:
		if (tfs_parse_size(val, &o->l2_size) < 0)
			return bad("l2_size (a size, 0 for no L2)", val);
		return 0;
	case KEY_L2_MIN_FREE: {
		size_t n = strlen(val);
		o->l2_min_free_pct = o->l2_min_free_bytes = 0;
		if (n > 1 && val[n - 1] == '%') {
			char pct[16];
			if (n > sizeof(pct) || (memcpy(pct, val, n - 1), pct[n - 1] = '\0',
						tfs_parse_uint(pct, 0, 100, &o->l2_min_free_pct) < 0))
				return bad("l2_min_free (a percentage such as 10%, or a size)", val);
		} else if (tfs_parse_size(val, &o->l2_min_free_bytes) < 0) {
			return bad("l2_min_free (a percentage such as 10%, or a size)", val);
		}
		return 0;
	}
	case KEY_READ_AHEAD_KB:
		if (tfs_parse_uint(val, 0, 65536, &o->read_ahead_kb) < 0)
			return bad("read_ahead_kb (0..65536)", val);
		return 0;
	case KEY_L1_SIZE:
		if (tfs_parse_size(val, &o->l1_size) < 0)
			return bad("l1_size (a size, 0 for no L1)", val);
		o->l1_size_set = true;
		return 0;
	case KEY_PROMOTE_AFTER:
		if (tfs_parse_uint(val, 1, 1000000, &o->promote_after) < 0)
			return bad("promote_after (1..1000000 accesses)", val);
		return 0;
	case KEY_DEMOTE_AFTER:
		if (tfs_parse_duration(val, &o->demote_after_s) < 0 || o->demote_after_s == TFS_TTL_NEVER)
			return bad("demote_after (a duration such as 30s, 10m, 1h)", val);
		return 0;
	case KEY_DEMOTE_INTERVAL:
		if (tfs_parse_duration(val, &o->demote_interval_s) < 0 || o->demote_interval_s == 0 ||
		    o->demote_interval_s == TFS_TTL_NEVER)
			return bad("demote_interval (a duration of at least 1s)", val);
		return 0;
	case KEY_PREFETCH:
		if (strcmp(val, "on") == 0)
			o->prefetch_off = false;
		else if (strcmp(val, "off") == 0)
			o->prefetch_off = true;
		else
			return bad("prefetch (on or off)", val);
		return 0;
	case KEY_PREFETCH_WINDOW:
		if (tfs_parse_duration(val, &o->prefetch_window_s) < 0 || o->prefetch_window_s == 0 ||
		    o->prefetch_window_s == TFS_TTL_NEVER)
			return bad("prefetch_window (a duration of at least 1s)", val);
		return 0;
	case KEY_PREFETCH_INTERVAL:
		if (tfs_parse_duration(val, &o->prefetch_interval_s) < 0 ||
		    o->prefetch_interval_s == 0 || o->prefetch_interval_s > 3600)
			return bad("prefetch_interval (a duration from 1s to 1h)", val);
		return 0;
	case KEY_PREFETCH_BUDGET:
		if (tfs_parse_size(val, &o->prefetch_budget) < 0)
			return bad("prefetch_budget (a size)", val);
		return 0;
	case KEY_UID:
	case KEY_GID:
		if (tfs_parse_uint(val, 0, 0xFFFFFFFEu, &v) < 0)
			return bad(key == KEY_UID ? "uid (a number)" : "gid (a number)", val);
		if (key == KEY_UID)
			o->uid = v, o->uid_set = true;
		else
			o->gid = v, o->gid_set = true;
		return 0;
	case KEY_FILE_MODE:
	case KEY_DIR_MODE:
	case KEY_UMASK: {
		char *end;
		errno = 0;
		unsigned long m = strtoul(val, &end, 8);
		if (!*val || *end || errno || m > 0777)
			return bad(key == KEY_FILE_MODE ? "file_mode (octal, such as 0644)"
				   : key == KEY_DIR_MODE ? "dir_mode (octal, such as 0755)"
							 : "umask (octal, such as 022)",
				   val);
		*(key == KEY_FILE_MODE ? &o->file_mode : key == KEY_DIR_MODE ? &o->dir_mode
									 : &o->umask) = m;
		return 0;
	}
	case KEY_OBJECT_META:
		if (strcmp(val, "on") == 0)
			o->object_meta_off = false;
		else if (strcmp(val, "off") == 0)
			o->object_meta_off = true;
		else
			return bad("object_meta (on or off)", val);
		return 0;
	case KEY_THREADS:
		if (tfs_parse_uint(val, 1, POLICY_MAX_CONNECTIONS, &v) < 0)
			return bad("connections (1..256)", val);
		o->connections = v;
		return 0;
	default:
		(void)outargs;
		fprintf(stderr, "tierfs: unknown option '%s' (see --help)\n", arg);
		return -1;
	}
}

int tfs_split_bucket(char *bucket, char **prefix)
{
	char *colon = strchr(bucket, ':');
	const char *pre = "";
	if (colon) {
		*colon = '\0';
		pre = colon + 1;
	}
	while (*pre == '/')
		pre++;
	size_t n = strlen(pre);
	if (!bucket[0] || strlen(bucket) > 255 ||
	    strspn(bucket, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
		    strlen(bucket)) {
		fprintf(stderr, "tierfs: bad bucket name '%s'\n", bucket);
		return -1;
	}
	*prefix = tfs_strdup_printf("%s%s", pre, n && pre[n - 1] != '/' ? "/" : "");
	if (!*prefix)
		return -1;
	if (strstr(*prefix, "//")) {
		fprintf(stderr, "tierfs: bad prefix '%s': empty path component\n", *prefix);
		return -1;
	}
	return 0;
}

/* The config= value of the command line, or NULL. */
static const char *config_path(int argc, char **argv)
{
	const char *found = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-o") == 0 && i + 1 < argc)
			a = argv[++i];
		else if (strncmp(a, "-o", 2) == 0)
			a += 2;
		else
			continue;
		for (const char *p = a; p; p = strchr(p, ',')) {
			if (*p == ',')
				p++;
			if (strncmp(p, "config=", 7) == 0)
				found = p + 7; /* up to the next comma */
		}
	}
	return found;
}

/* Applies FILE: "key = value" lines (a bare "key" for a flag, # comments), each one as if given
 * as -o key=value.  "bucket" and "mountpoint" are the positional arguments, for unit files.
 * Returns 0 or -1 after a message naming the file and line. */
static int read_config(const char *path, size_t pathlen, struct tfs_options *o)
{
	char *p = strndup(path, pathlen), line[4096];
	FILE *f = p ? fopen(p, "re") : NULL;
	int lineno = 0, ret = 0;
	if (!f) {
		fprintf(stderr, "tierfs: cannot read config file '%s': %s\n", p ? p : "?",
			strerror(errno));
		free(p);
		return -1;
	}
	while (ret == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char *l = tfs_trim(line), *eq = strchr(l, '=');
		if (!*l || *l == '#')
			continue;
		char *key = l, *val = NULL;
		if (eq) {
			*eq = '\0';
			key = tfs_trim(l);
			val = tfs_trim(eq + 1);
		}
		if (!*key || strchr(key, ',') || (val && strchr(val, ','))) {
			fprintf(stderr, "tierfs: %s:%d: malformed line (key = value, no commas)\n", p,
				lineno);
			ret = -1;
			break;
		}
		if (val && (strcmp(key, "bucket") == 0 || strcmp(key, "mountpoint") == 0)) {
			char **dst = key[0] == 'b' ? &o->bucket : &o->mountpoint;
			free(*dst);
			*dst = strdup(val);
			continue;
		}
		if (strcmp(key, "config") == 0) {
			fprintf(stderr, "tierfs: %s:%d: config files do not nest\n", p, lineno);
			ret = -1;
			break;
		}
		char *opt = val ? tfs_strdup_printf("-o%s=%s", key, val) : tfs_strdup_printf("-o%s", key);
		char *argv1[] = { (char *)"tierfs", opt, NULL };
		struct fuse_args a = FUSE_ARGS_INIT(2, argv1);
		if (!opt || fuse_opt_parse(&a, o, opt_spec, opt_proc) == -1) {
			fprintf(stderr, "tierfs: %s:%d: bad setting '%s'\n", p, lineno, key);
			ret = -1;
		}
		fuse_opt_free_args(&a);
		free(opt);
	}
	fclose(f);
	free(p);
	return ret;
}

int tfs_parse_options(int argc, char **argv, struct tfs_options *o, struct fuse_args *fargs)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	memset(o, 0, sizeof(*o));
	o->ttl_s = POLICY_DEFAULT_TTL_S;
	o->chunk_size = POLICY_DEFAULT_CHUNK_SIZE;
	o->readahead_max = POLICY_DEFAULT_READAHEAD_MAX;
	o->mem_bytes = POLICY_DEFAULT_MEM_BYTES;
	o->timeout_ms = S3_DEFAULT_TIMEOUT_MS;
	o->retries = S3_DEFAULT_RETRIES;
	o->shared_timeout_ms = SHARED_DEFAULT_TIMEOUT_MS;
	o->shared_wait_ms = SHARED_DEFAULT_WAIT_MS;
	o->connections = POLICY_DEFAULT_CONNECTIONS;
	o->l2_size = POLICY_DEFAULT_L2_SIZE;
	o->l2_min_free_pct = POLICY_DEFAULT_L2_MIN_FREE_PCT;
	o->read_ahead_kb = DEFAULT_READ_AHEAD_KB;
	o->promote_after = L1_DEFAULT_PROMOTE_AFTER;
	o->demote_after_s = L1_DEFAULT_DEMOTE_AFTER_S;
	o->demote_interval_s = L1_DEFAULT_DEMOTE_INTERVAL_S;
	o->prefetch_window_s = POLICY_DEFAULT_PREFETCH_WINDOW_S;
	o->prefetch_interval_s = POLICY_DEFAULT_PREFETCH_INTERVAL_MS / 1000;
	o->prefetch_budget = POLICY_DEFAULT_PREFETCH_BUDGET;
	o->file_mode = 0644;
	o->dir_mode = 0755;
	o->umask = 022;

	/* Precedence: command line over config file over environment over defaults: the file
	 * is applied first, the command line after it. */
	const char *cfg = config_path(argc, argv);
	if (cfg) {
		size_t n = strcspn(cfg, ",");
		if (!(o->config = strndup(cfg, n)) || read_config(cfg, n, o) < 0)
			return 2;
		/* positional arguments from the file may be given again on the command line */
		free(o->config_bucket), o->config_bucket = o->bucket, o->bucket = NULL;
		free(o->config_mountpoint), o->config_mountpoint = o->mountpoint, o->mountpoint = NULL;
	}
	if (fuse_opt_parse(&args, o, opt_spec, opt_proc) == -1) {
		fuse_opt_free_args(&args);
		return 2;
	}
	fuse_opt_free_args(&args);
	if (!o->bucket)
		o->bucket = o->config_bucket, o->config_bucket = NULL;
	if (!o->mountpoint)
		o->mountpoint = o->config_mountpoint, o->config_mountpoint = NULL;
	if (o->help) {
		tfs_print_help(argv[0]);
		return 0;
	}
	if (o->version) {
		printf("tierfs %s\nFUSE library %s\n", TIERFS_VERSION, fuse_pkgversion());
		return 0;
	}
	if (!o->bucket || !o->mountpoint) {
		fprintf(stderr, "usage: %s [options] BUCKET[:PREFIX] MOUNTPOINT (see --help)\n",
			argv[0]);
		return 2;
	}
	if (tfs_split_bucket(o->bucket, &o->prefix) < 0 ||
	    (o->shared_cache && tfs_split_bucket(o->shared_cache, &o->shared_prefix) < 0))
		return 2;
	if (!o->shared_cache && (o->shared_endpoint || o->shared_region || o->shared_profile ||
				 o->shared_key_file)) {
		fprintf(stderr, "tierfs: the shared_cache_* options need shared_cache=BUCKET\n");
		return 2;
	}
	struct stat st;
	if (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "tierfs: mount point '%s' is not a directory\n", o->mountpoint);
		return 2;
	}
	if (o->mem_bytes < 4 * o->chunk_size)
		o->mem_bytes = 4 * o->chunk_size;
	if (!o->l1_size_set) {
		/* the seed's 512M, but never more than an eighth of RAM unless asked */
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		uint64_t eighth = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 8 : 0;
		o->l1_size = eighth && eighth < L1_DEFAULT_SIZE ? eighth : L1_DEFAULT_SIZE;
	}

	/* The arguments libfuse sees: read-only always, names for /proc/mounts. */
	/* The kernel mount is read-write unless -o ro is given, so that the TTL attributes can
	 * be set; every change of data is refused with EROFS by tierfs itself. */
	char *fsname = tfs_strdup_printf("-ofsname=tierfs:%s,subtype=tierfs,"
					 "default_permissions%s%s%s%s",
					 o->bucket, o->ro ? ",ro" : "",
					 o->allow_other ? ",allow_other" : "",
					 o->kernel_opts ? "," : "", o->kernel_opts ? o->kernel_opts : "");
	if (!fsname)
		return 2;
	/* fsname must not contain commas: bucket names never do. */
	if (fuse_opt_add_arg(fargs, argv[0]) < 0 || fuse_opt_add_arg(fargs, fsname) < 0 ||
	    (o->debug && fuse_opt_add_arg(fargs, "-odebug") < 0)) {
		free(fsname);
		return 2;
	}
	free(fsname);
	return -1; /* go on */
}

void tfs_options_free(struct tfs_options *o)
{
	free(o->bucket);
	free(o->prefix);
	free(o->shared_cache);
	free(o->shared_prefix);
	free(o->shared_endpoint);
	free(o->shared_region);
	free(o->shared_profile);
	free(o->shared_key_file);
	free(o->mountpoint);
	free(o->endpoint);
	free(o->region);
	free(o->profile);
	free(o->cache_dir);
	free(o->ca_file);
	free(o->config);
	free(o->config_bucket);
	free(o->config_mountpoint);
	free(o->log_file);
	free(o->log_level);
	free(o->kernel_opts);
}
