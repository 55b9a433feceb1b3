/*
 * main.c - tierfs's entry point: options, credentials, a check that the bucket answers, the
 * FUSE session, and an orderly teardown.
 *
 * Exit status: 0 on a clean unmount (fusermount3 -u, SIGTERM, SIGINT), 1 when the mount could
 * not be made (no credentials, bucket unreachable or refused, FUSE errors), 2 on bad options.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "util.h"

/* $XDG_CACHE_HOME/tierfs/NAME, else /var/cache/tierfs/NAME for root, ~/.cache/tierfs/NAME for
 * others.  NAME is the bucket, with @HOST_PORT when the endpoint is not AWS's, so that two
 * servers' buckets of the same name never share a cache. */
static char *default_cache_dir(const char *bucket, const char *endpoint)
{
	char name[512], base[4096];
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	snprintf(name, sizeof(name), "%s", bucket);
	if (endpoint) {
		const char *h = strstr(endpoint, "://");
		h = h ? h + 3 : endpoint;
		size_t n = strlen(name);
		snprintf(name + n, sizeof(name) - n, "@%s", h);
		for (char *c = name + n + 1; *c; c++)
			if (*c == '/' || *c == ':')
				*c = '_';
	}
	if (xdg && *xdg)
		snprintf(base, sizeof(base), "%s/tierfs", xdg);
	else if (getuid() == 0 || !home)
		snprintf(base, sizeof(base), "/var/cache/tierfs");
	else
		snprintf(base, sizeof(base), "%s/.cache/tierfs", home);
	return tfs_strdup_printf("%s/%s", base, name);
}

/* Raises the read-ahead of the mount's backing device info to kb (the kernel sends buffered
 * reads in pieces of at most this size; 128 KiB by default, FUSE takes up to 1 MiB).  The
 * device number comes from /proc/self/mountinfo, not stat(): the daemon cannot answer its own
 * FUSE requests before its loop runs.  Needs root (sysfs); otherwise it stays as it is. */
static void set_read_ahead(const char *mountpoint, unsigned kb)
{
	char *real = realpath(mountpoint, NULL), line[8192], dev[64] = "";
	FILE *f = real ? fopen("/proc/self/mountinfo", "re") : NULL;
	while (f && fgets(line, sizeof(line), f)) {
		char mnt[4096], majmin[64];
		if (sscanf(line, "%*d %*d %63s %*s %4095s", majmin, mnt) == 2 &&
		    strcmp(mnt, real) == 0 && strstr(line, " - fuse.tierfs "))
			snprintf(dev, sizeof(dev), "%s", majmin); /* the last one is ours */
	}
	if (f)
		fclose(f);
	free(real);
	if (!dev[0])
		return;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	FILE *ra = fopen(path, "we");
	if (!ra || fprintf(ra, "%u\n", kb) < 0)
		tfs_debug("cannot set %s (not root?): reads come in the kernel's default size", path);
	if (ra)
		fclose(ra);
}

/* The shared tier's client, and what identifies the source and the fleet (-o shared_cache=).
 * The fleet key is read from its file: at least 16 bytes, a trailing newline not part of it.
 * Returns 0, or -1 after logging why. */
static int shared_setup(const struct tfs_options *o, const struct s3_config *src,
			struct policy_config *pcfg, char **source, unsigned char **key)
{
	struct s3_config c = { 0 };
	int ret = -ENOMEM;
	const char *ep = o->shared_endpoint ? o->shared_endpoint : src->endpoint;
	const char *rg = o->shared_region ? o->shared_region : src->region;
	c.endpoint = ep ? strdup(ep) : NULL;
	c.region = rg ? strdup(rg) : NULL;
	c.bucket = strdup(o->shared_cache);
	c.ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	/* short: a slow shared cache must cost a read little before the source serves it */
	c.timeout_ms = (unsigned)o->shared_timeout_ms;
	c.connect_timeout_ms = c.timeout_ms < 1000 ? c.timeout_ms : 1000;
	c.max_retries = 1;
	if (!c.bucket || (ep && !c.endpoint) || (rg && !c.region))
		goto fail;
	if (o->shared_profile || !src->access_key) {
		if ((ret = s3_resolve_credentials(&c, o->shared_profile)) < 0) {
			tfs_err("shared cache: no credentials%s%s", o->shared_profile ? " in profile " : "",
				o->shared_profile ? o->shared_profile : "");
			goto fail_quiet;
		}
	} else { /* the source's */
		c.access_key = strdup(src->access_key);
		c.secret_key = strdup(src->secret_key);
		c.session_token = src->session_token ? strdup(src->session_token) : NULL;
		if (!c.access_key || !c.secret_key || (src->session_token && !c.session_token))
			goto fail;
	}
	if (!(pcfg->shared_s3 = s3_client_new(&c, &ret)))
		goto fail;
	if (o->shared_key_file) {
		FILE *f = fopen(o->shared_key_file, "r");
		size_t n = 0;
		*key = malloc(4096);
		if (f && *key)
			n = fread(*key, 1, 4096, f);
		if (f)
			fclose(f);
		while (n && ((*key)[n - 1] == '\n' || (*key)[n - 1] == '\r'))
			n--;
		if (!f || n < 16) {
			tfs_err("shared cache: the fleet key '%s' %s", o->shared_key_file,
				f ? "holds fewer than 16 bytes" : "cannot be read");
			ret = -EINVAL;
			goto fail_quiet;
		}
		pcfg->shared_key = *key;
		pcfg->shared_key_len = n;
	}
	*source = tfs_strdup_printf("%s/%s", src->endpoint ? src->endpoint : "aws", src->bucket);
	if (!*source)
		goto fail;
	pcfg->shared_source = *source;
	pcfg->shared_slow_ms = c.timeout_ms / 2; /* alive but slow is as bad as down */
	pcfg->shared_wait_ms = (unsigned)o->shared_wait_ms;
	pcfg->shared_prefix = o->shared_prefix;
	const char *bt = getenv("TIERFS_TEST_SHARED_BREAKER_MS"); /* tests: a shorter breaker */
	if (bt)
		pcfg->shared_breaker_ms = (unsigned)strtoul(bt, NULL, 10);
	const char *qb = getenv("TIERFS_TEST_SHARED_QUEUE_BYTES"); /* tests: a short queue */
	if (qb)
		pcfg->shared_queue_bytes = strtoull(qb, NULL, 10);
	s3_config_clear(&c);
	tfs_info("shared cache: bucket '%s'%s%s at %s%s", o->shared_cache,
		 o->shared_prefix[0] ? " prefix " : "", o->shared_prefix, ep ? ep : "AWS",
		 pcfg->shared_key ? ", with a fleet key" : "");
	return 0;
fail:
	tfs_err("shared cache: cannot set up its client: %s", strerror(-ret));
fail_quiet:
	s3_config_clear(&c);
	s3_client_free(pcfg->shared_s3);
	pcfg->shared_s3 = NULL;
	return -1;
}

/* Asks for one key of the mount's root, so that a wrong endpoint, bucket or credentials fail the
 * mount with a clear message instead of failing every later operation. */
static int check_bucket(struct s3_client *s3, const struct tfs_options *o, bool have_cache)
{
	struct s3_list_page pg;
	int ret = s3_list_page(s3, o->prefix, "/", NULL, 1, &pg);
	if (ret == 0) {
		if (o->prefix[0] && !pg.nobjects && !pg.nprefixes)
			tfs_warn("prefix '%s' of bucket '%s' holds no keys: the mount is empty",
				 o->prefix, o->bucket);
		s3_list_page_free(&pg);
		return 0;
	}
	if (ret == -EIO && have_cache) {
		tfs_warn("S3 is unreachable: serving what the cache holds until it is back");
		return 0;
	}
	switch (ret) {
	case -EACCES:
		tfs_err("access to bucket '%s' denied: check the credentials (access key, secret "
			"key, profile) and the region",
			o->bucket);
		break;
	case -ENOENT:
		tfs_err("bucket '%s' does not exist at this endpoint", o->bucket);
		break;
	default:
		tfs_err("cannot list bucket '%s': %s (is the endpoint '%s' reachable?)", o->bucket,
			strerror(-ret), o->endpoint ? o->endpoint : "AWS");
	}
	return ret;
}

/*
 * Daemon mode.  The fork comes first, before anything starts a thread (RocksDB starts a pool
 * of its own that a later fork would leave behind in the parent: the daemon's store would have
 * no background threads).  The parent waits for the child to say it is mounted, or to fail,
 * and exits with that status; until then the child reports to the same terminal.
 */
static int ready_fd = -1;

static int daemon_start(void)
{
	int p[2];
	if (pipe(p) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		unsigned char status = 1;
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1; /* the child died or failed before it was mounted */
		_exit(status);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	return 0;
}

/* The mount is up (status 0) or failed: the parent exits with it, and the daemon leaves the
 * terminal. */
static void daemon_ready(unsigned char status)
{
	if (ready_fd < 0)
		return;
	if (status == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (chdir("/") < 0)
			tfs_debug("chdir /: %s", strerror(errno));
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
	}
	if (write(ready_fd, &status, 1) != 1)
		tfs_debug("the parent is gone");
	close(ready_fd);
	ready_fd = -1;
}

/* SIGHUP: reopen the log file (after rotation).  SIGUSR1: the statistics to the log. */
static void *signal_thread(void *arg)
{
	struct tfs_fs *fs = arg;
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2); /* the main thread's "stop" */
	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0 || sig == SIGUSR2)
			break;
		if (sig == SIGHUP) {
			int r = tfs_log_reopen();
			if (r < 0)
				tfs_err("cannot reopen the log file: %s", strerror(-r));
			else
				tfs_info("log file reopened (SIGHUP)");
		} else {
			char line[1024];
			policy_stats_line(fs->pol, line, sizeof(line));
			tfs_info("%s (SIGUSR1)", line);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
	struct tfs_options opts;
	struct s3_config s3cfg = { 0 };
	struct tfs_fs fs = { 0 };
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	int status = 1, ret;
	struct ssd_store *ssd = NULL;
	char *cache_dir = NULL;
	/* the shared tier's part of the policy's configuration, made before the mount */
	struct policy_config shared_pc = { 0 };
	char *shared_source = NULL;
	unsigned char *shared_key = NULL;
	pthread_t sigthread;
	bool sig_started = false;

	/* SIGHUP, SIGUSR1 (and SIGUSR2, the signal thread's stop) go to one thread, by sigwait:
	 * blocked here, before anything (RocksDB, curl) starts a thread that would inherit an
	 * open mask and let libfuse's SIGHUP handler end the session.  One arriving before the
	 * signal thread runs waits, pending, for it. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	/* One malloc arena per core (at least two), unless MALLOC_ARENA_MAX says otherwise.
	 * glibc's default, eight per core, let the FUSE threads' allocations of a million-key
	 * walk spread over 16 arenas, each keeping what was freed in it: 38 MiB more of peak
	 * RSS in a find over a million keys (README, "Memory"). */
	if (!getenv("MALLOC_ARENA_MAX")) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		mallopt(M_ARENA_MAX, cores > 2 ? (int)cores : 2);
	}

	int r = tfs_parse_options(argc, argv, &opts, &fargs);
	if (r >= 0) {
		tfs_options_free(&opts);
		fuse_opt_free_args(&fargs);
		return r;
	}
	tfs_log_set_level(opts.debug ? TFS_LOG_DEBUG : TFS_LOG_INFO);
	if (opts.log_level)
		tfs_log_set_level((enum tfs_log_level)tfs_log_level_from_name(opts.log_level));
	if (opts.log_file && (ret = tfs_log_to_file(opts.log_file)) < 0) {
		fprintf(stderr, "tierfs: cannot open log file '%s': %s\n", opts.log_file,
			strerror(-ret));
		status = 2;
		goto out_opts;
	}
	umask(077); /* the cache directory and everything in it: owner only */
	if (!opts.foreground && (ret = daemon_start()) < 0) {
		fprintf(stderr, "tierfs: cannot fork into the background: %s\n", strerror(-ret));
		goto out_opts;
	}

	/* Credentials, region, endpoint: command line over environment over files. */
	s3cfg.endpoint = opts.endpoint ? strdup(opts.endpoint) : NULL;
	s3cfg.region = opts.region ? strdup(opts.region) : NULL;
	s3cfg.bucket = strdup(opts.bucket);
	s3cfg.ca_file = opts.ca_file ? strdup(opts.ca_file) : NULL;
	s3cfg.path_style = opts.path_style;
	s3cfg.anonymous = opts.anonymous;
	s3cfg.timeout_ms = (unsigned)opts.timeout_ms;
	s3cfg.max_retries = (unsigned)opts.retries;
	ret = s3_resolve_credentials(&s3cfg, opts.profile);
	if (ret == -ENOKEY && !opts.anonymous) {
		tfs_err("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use a "
			"profile (-o profile=, AWS_PROFILE), or -o anonymous for a public bucket");
		goto out_opts;
	}
	/* The process holds credentials from here on: no core dump may carry them to disk
	 * (debugging with -d keeps dumps possible). */
	if (!opts.debug)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	fs.s3 = s3_client_new(&s3cfg, &ret);
	if (!fs.s3) {
		tfs_err("cannot set up the S3 client: %s", strerror(-ret));
		goto out_opts;
	}
	if (opts.shared_cache &&
	    shared_setup(&opts, &s3cfg, &shared_pc, &shared_source, &shared_key) < 0)
		goto out_s3;
	if (opts.l2_size) {
		cache_dir = opts.cache_dir ? strdup(opts.cache_dir)
					   : default_cache_dir(opts.bucket, s3cfg.endpoint);
		if (!cache_dir || (ret = ssd_open_deferred(cache_dir, opts.chunk_size, &ssd)) < 0) {
			tfs_err("cannot use the cache directory '%s': %s",
				cache_dir ? cache_dir : "?", strerror(cache_dir ? -ret : ENOMEM));
			goto out_s3;
		}
	}
	/* Without S3 a mount is only worth making if this cache has served this root before
	 * (record 'm'); then what it holds is served until S3 is back. */
	void *seen = NULL;
	size_t seen_len;
	bool have_cache = ssd && ssd_meta_get(ssd, 'm', opts.prefix, &seen, &seen_len) == 0;
	free(seen);
	if (check_bucket(fs.s3, &opts, have_cache) < 0)
		goto out_s3;
	if (ssd && !have_cache)
		ssd_meta_put(ssd, 'm', opts.prefix, "1", 1);

	fs.opts = &opts;
	fs.uid = getuid();
	fs.gid = getgid();
	fs.mount_time = time(NULL);
	if (itable_init(&fs.itab, opts.prefix) < 0)
		goto out_s3;
	handles_init(&fs.handles);

	se = fuse_session_new(&fargs, &tfs_ops, sizeof(tfs_ops), &fs);
	if (!se)
		goto out_itab;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	if (opts.read_ahead_kb)
		set_read_ahead(opts.mountpoint, (unsigned)opts.read_ahead_kb);
	tfs_info("mounted bucket '%s'%s%s at %s (read-only), cache %s", opts.bucket,
		 opts.prefix[0] ? " prefix " : "", opts.prefix, opts.mountpoint,
		 cache_dir ? cache_dir : "in memory only");
	if (!opts.foreground && !opts.log_file)
		tfs_log_use_syslog(true);

	struct policy_config pcfg = {
		.chunk_size = opts.chunk_size,
		.ttl_s = opts.ttl_s,
		.root_key = opts.prefix,
		.mem_bytes = opts.mem_bytes,
		.readahead_max = opts.readahead_max,
		.prefetch = !opts.prefetch_off,
		.prefetch_window_ms = opts.prefetch_window_s * 1000,
		.prefetch_interval_ms = opts.prefetch_interval_s * 1000,
		.prefetch_budget = opts.prefetch_budget,
		.connections = (unsigned)opts.connections,
		.l1_size = opts.l1_size,
		.promote_after = opts.promote_after,
		.demote_after_ms = opts.demote_after_s * 1000,
		.demote_interval_ms = opts.demote_interval_s * 1000,
		.ssd = ssd,
		.l2_size = opts.l2_size,
		.l2_min_free_pct = opts.l2_min_free_pct,
		.l2_min_free_bytes = opts.l2_min_free_bytes,
		.object_meta = !opts.object_meta_off,
		.shared_s3 = shared_pc.shared_s3,
		.shared_prefix = shared_pc.shared_prefix,
		.shared_source = shared_pc.shared_source,
		.shared_key = shared_pc.shared_key,
		.shared_key_len = shared_pc.shared_key_len,
		.shared_breaker_ms = shared_pc.shared_breaker_ms,
		.shared_queue_bytes = shared_pc.shared_queue_bytes,
		.shared_slow_ms = shared_pc.shared_slow_ms,
		.shared_wait_ms = shared_pc.shared_wait_ms,
	};
	shared_pc.shared_s3 = NULL; /* the policy's from here on */
	/* the tests' slow disk (tests/test_l2.py): not an option, no user has a use for it */
	const char *slow = getenv("TIERFS_TEST_SLOW_DISK_MS");
	if (slow)
		pcfg.l2_write_delay_ms = strtoull(slow, NULL, 10);
	fs.pol = policy_new(&pcfg, fs.s3, &ret);
	if (!fs.pol) {
		tfs_err("cannot start the cache: %s", strerror(-ret));
		goto out_unmount;
	}

	if (notifier_start(&fs.notifier, se) < 0 || !(loop = fuse_loop_cfg_create()))
		goto out_policy;
	sig_started = pthread_create(&sigthread, NULL, signal_thread, &fs) == 0;
	fuse_loop_cfg_set_max_threads(loop, 16);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	daemon_ready(0);
	ret = fuse_session_loop_mt(se, loop);
	/* A signal that ends the loop (SIGTERM, SIGINT, SIGHUP) is a clean unmount too. */
	status = (ret == 0 || ret == SIGTERM || ret == SIGINT || ret == SIGHUP) ? 0 : 1;
	if (status)
		tfs_err("the FUSE session ended with an error (%d)", ret);
	else
		tfs_info("unmounting %s", opts.mountpoint);
	fuse_loop_cfg_destroy(loop);
out_policy:
	if (sig_started) { /* it reads the policy: it ends first */
		pthread_kill(sigthread, SIGUSR2); /* not waited for: ends the thread */
		pthread_join(sigthread, NULL);
	}
	notifier_stop(&fs.notifier);
	if (fs.pol) {
		char line[1024];
		policy_quiesce(fs.pol);
		policy_stats_line(fs.pol, line, sizeof(line));
		tfs_info("%s", line);
	}
	policy_free(fs.pol);
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_itab:
	handles_free_all(&fs.handles); /* they own only memory and counted listing references */
	itable_destroy(&fs.itab);
out_s3:
	ssd_close(ssd);
	free(cache_dir);
	s3_client_free(fs.s3);
	s3_client_free(shared_pc.shared_s3);
	free(shared_source);
	if (shared_key)
		memset(shared_key, 0, 4096);
	free(shared_key);
out_opts:
	s3_config_clear(&s3cfg);
	tfs_options_free(&opts);
	fuse_opt_free_args(&fargs);
	daemon_ready((unsigned char)(status ? status : 1)); /* still here: the mount failed */
	return status;
}
