/*
 * unit_faults.c - the policy's start-up fails at every step it can fail at, and takes down
 * what it built: pthread_create is interposed here and fails its n-th call, for every n up to
 * the number of threads a policy starts.  A leak (a module left undone on an error path) fails
 * the valgrind and ASan runs of this test; a thread left running over a freed policy fails it
 * under every build.
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "policy.h"
#include "ssd.h"

static _Atomic int calls, fail_at; /* fail the fail_at-th call (0: never) */

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
	if (fail_at && atomic_fetch_add(&calls, 1) + 1 == fail_at)
		return EAGAIN;
	return real(t, a, fn, arg);
}

static void test_start_up_failures(void)
{
	char dir[] = "/tmp/tierfs-faults-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct ssd_store *ssd = NULL;
	CHECK(ssd_open(dir, 1 << 20, &ssd) == 0);
	int err = 0;
	struct s3_client *s3 = closed_s3();
	CHECK(s3 != NULL);
	struct policy_config cfg = {
		.chunk_size = 1 << 20, .ttl_s = 60, .mem_bytes = 16 << 20, .readahead_max = 8 << 20,
		.prefetch = true, .prefetch_budget = 64 << 20, .connections = 3,
		.l1_size = 8 << 20, .promote_after = 5, .demote_after_ms = 3600000,
		.demote_interval_ms = 60000, .ssd = ssd, .l2_size = 64 << 20,
	};
	/* the threads of a whole start-up, counted */
	calls = 0;
	fail_at = 1000000;
	struct policy *p = policy_new(&cfg, s3, &err);
	CHECK(p != NULL);
	policy_free(p);
	int total = calls;
	printf("a policy starts %d threads\n", total);
	CHECK(total >= 6); /* L2 writer and upkeep, demoter, 3 fetchers, the predictor */
	for (int n = 1; n <= total; n++) {
		calls = 0;
		fail_at = n;
		err = 0;
		p = policy_new(&cfg, s3, &err);
		CHECK(p == NULL && err == -EAGAIN);
		if (p)
			policy_free(p);
	}
	fail_at = 0;
	s3_client_free(s3);
	ssd_close(ssd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	tfs_log_set_level(TFS_LOG_ERROR);
	test_start_up_failures();
	return CHECK_SUMMARY();
}
