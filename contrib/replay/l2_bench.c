/*
 * tierfs-l2-bench - L2 at scale (the store, backends/ssd.h, and the tier, policy/l2.h, the
 * daemon's own code): a benchmark, not a test (it prints figures and asserts nothing).
 *
 *   tierfs-l2-bench DIR [--chunks N] [--fills F]
 *
 * Builds in DIR (once: a later run on the same DIR and N reuses it) a store of N chunks
 * (default 1,000,000) of 4 KiB in 64 KiB slots, punching the slots' payloads as it goes so that
 * only the index and the slots' 4 KiB headers take room on the disk (nothing here reads chunk
 * data; an eviction reads its victim's header).  Then, with the page
 * cache dropped (when run as root), it reports:
 *   - start-up: opening the store and the tier as a mount does, until they serve (ready), and
 *     until the table of what L2 holds is loaded in the background (loaded);
 *   - the memory the table takes per chunk (RSS after loading less RSS before);
 *   - lookups (the tier's has(): L2's lock and table) from one thread, p50 / p99 / max, while
 *     another stores F new chunks (default N / 10) into a full L2, each evicting one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "l2.h"
#include "log.h"
#include "policy.h"
#include "ssd.h"
#include "tier.h"
#include "util.h"

#define CHUNK (64u << 10)
#define PAYLOAD 4096u
#define ETAG "\"0123456789abcdef0123456789abcdef\""

static void key_of(uint64_t i, char *key, size_t n)
{
	snprintf(key, n, "data/%06" PRIu64 "/part-%04" PRIu64 ".bin", i / 1000, i % 1000);
}

/* Punches the payloads of the slab's slots from *from to its end (their headers stay), and
 * moves *from there. */
static void punch_from(const char *dir, off_t *from)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/slab", dir);
	int fd = open(path, O_RDWR);
	struct stat st;
	const off_t slot = 4096 + CHUNK;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > *from) {
		off_t at = *from;
		for (; at + 4096 < st.st_size; at += slot)
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at + 4096, PAYLOAD);
		*from = at;
	}
	if (fd >= 0)
		close(fd);
}

struct builder {
	struct ssd_store *s;
	uint64_t total, end, first, step; /* chunks first, first + step, ... below end */
	int ret;
};

static void *build_thread(void *arg)
{
	struct builder *b = arg;
	char key[128], *data = aligned_alloc(4096, PAYLOAD);
	if (!data) {
		b->ret = -ENOMEM;
		return NULL;
	}
	memset(data, 7, PAYLOAD);
	for (uint64_t i = b->first; i < b->end && b->ret == 0; i += b->step) {
		struct ssd_id id;
		key_of(i, key, sizeof(key));
		ssd_id_init(&id, key, ETAG, 0);
		/* last access: spread over a day, so that the order restored has an age to follow */
		b->ret = ssd_put(b->s, &id, data, PAYLOAD, NULL,
				 1700000000000ull + i * 86400000ull / b->total, 1 + i % 3, NULL);
	}
	free(data);
	return NULL;
}

#define BUILDERS 4 /* the puts wait on the disk: a few at once */

static int build(const char *dir, uint64_t n)
{
	char mark[4096];
	snprintf(mark, sizeof(mark), "%s/built-headers-%" PRIu64, dir, n); /* (not punched) */
	if (access(mark, F_OK) == 0)
		return 0;
	struct ssd_store *s;
	int ret = ssd_open(dir, CHUNK, &s);
	if (ret < 0)
		return ret;
	off_t punched = 0;
	uint64_t t0 = tfs_now_ns();
	/* in rounds of 65,536 chunks, the slab punched after each */
	for (uint64_t done = 0; done < n && ret == 0;) {
		uint64_t end = done + 65536 < n ? done + 65536 : n;
		struct builder b[BUILDERS];
		pthread_t th[BUILDERS];
		for (int k = 0; k < BUILDERS; k++) {
			b[k] = (struct builder){ s, n, end, done + (uint64_t)k, BUILDERS, 0 };
			pthread_create(&th[k], NULL, build_thread, &b[k]);
		}
		for (int k = 0; k < BUILDERS; k++) {
			pthread_join(th[k], NULL);
			if (b[k].ret < 0)
				ret = b[k].ret;
		}
		punch_from(dir, &punched);
		done = end;
		fprintf(stderr, "\rbuilding: %" PRIu64 " of %" PRIu64, done, n);
	}
	ssd_close(s);
	punch_from(dir, &punched);
	fprintf(stderr, "\rbuilt %" PRIu64 " chunks in %.1f s\n", n, (tfs_now_ns() - t0) / 1e9);
	if (ret == 0) {
		FILE *f = fopen(mark, "w");
		if (f)
			fclose(f);
	}
	return ret;
}

struct reader {
	struct tier *t;
	uint64_t n;
	_Atomic bool done;
	uint64_t *lat;
	size_t nlat, cap;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	char key[128];
	uint64_t x = 12345;
	while (!atomic_load(&r->done) && r->nlat < r->cap) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t i = (x >> 17) % r->n, bytes;
		key_of(i, key, sizeof(key));
		uint64_t t0 = tfs_now_ns();
		r->t->ops->has(r->t, key, ETAG, 0, &bytes);
		r->lat[r->nlat++] = tfs_now_ns() - t0;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000, fills = 0;
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tierfs-l2-bench DIR [--chunks N] [--fills F]\n");
		return 2;
	}
	const char *dir = argv[1];
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--chunks") == 0)
			n = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--fills") == 0)
			fills = strtoull(argv[i + 1], NULL, 10);
	}
	if (!fills)
		fills = n / 10;
	tfs_log_set_level(TFS_LOG_WARNING);
	int ret = build(dir, n);
	if (ret < 0) {
		fprintf(stderr, "cannot build the store in %s: %s\n", dir, strerror(-ret));
		return 1;
	}
	sync();
	FILE *dc = fopen("/proc/sys/vm/drop_caches", "w");
	if (dc) {
		fputs("3\n", dc);
		fclose(dc);
	}

	/* start-up, as fs/main.c and policy.c do it */
	uint64_t rss0 = rss_kib(), t0 = tfs_now_ns();
	struct ssd_store *s;
	if ((ret = ssd_open_deferred(dir, CHUNK, &s)) < 0) {
		fprintf(stderr, "open: %s\n", strerror(-ret));
		return 1;
	}
	struct policy_stats st;
	memset(&st, 0, sizeof(st));
	uint64_t slot_disk = 4096 + PAYLOAD;
	struct l2_config cfg = { .cap = n * slot_disk, .upkeep_interval_ms = 3600000 };
	struct tier *t;
	if ((ret = tier_l2_new(s, &cfg, &st, &t)) < 0) {
		fprintf(stderr, "tier: %s\n", strerror(-ret));
		return 1;
	}
	uint64_t ready = tfs_now_ns();
	t->ops->flush(t); /* returns once the table is loaded (and nothing is queued) */
	uint64_t loaded = tfs_now_ns(), rss1 = rss_kib(), used, entries, capacity;
	t->ops->usage(t, &used, &entries, &capacity);
	printf("chunks %" PRIu64 ": ready in %.1f ms, table loaded in %.0f ms; %" PRIu64
	       " in the table, RSS %.0f bytes per chunk\n",
	       n, (ready - t0) / 1e6, (loaded - t0) / 1e6, entries,
	       (double)(rss1 - rss0) * 1024 / (double)(entries ? entries : 1));

	/* lookups while a writer evicts: each new chunk needs one slot's room */
	struct reader r = { .t = t, .n = n, .cap = 50000000 };
	r.lat = malloc(r.cap * sizeof(*r.lat));
	pthread_t th;
	pthread_create(&th, NULL, reader_thread, &r);
	struct buf_pool pool;
	buf_pool_init(&pool, CHUNK);
	char key[128], etag[64];
	/* new chunks at every run (the store keeps the last run's) */
	snprintf(etag, sizeof(etag), "\"run-%llx\"", (unsigned long long)tfs_now_ns());
	uint64_t f0 = tfs_now_ns();
	for (uint64_t i = 0; i < fills; i++) {
		struct tfs_buf *b = tfs_buf_get(&pool, PAYLOAD);
		if (!b)
			break;
		memset(b->data, 9, PAYLOAD);
		key_of(n + i, key, sizeof(key));
		t->ops->fill(t, key, etag, 0, b, false);
		tfs_buf_put(b);
	}
	t->ops->flush(t);
	uint64_t f1 = tfs_now_ns();
	atomic_store(&r.done, true);
	pthread_join(th, NULL);
	struct tier_stats ts;
	t->ops->stats(t, &ts, false);
	qsort(r.lat, r.nlat, sizeof(*r.lat), cmp_u64);
	printf("%" PRIu64 " fills into a full L2 in %.1f s (%" PRIu64 " evictions); %zu lookups "
	       "meanwhile: p50 %.1f us, p99 %.1f us, max %.0f us\n",
	       fills, (f1 - f0) / 1e9, ts.evictions, r.nlat,
	       r.nlat ? r.lat[r.nlat / 2] / 1e3 : 0, r.nlat ? r.lat[r.nlat * 99 / 100] / 1e3 : 0,
	       r.nlat ? r.lat[r.nlat - 1] / 1e3 : 0);
	t->ops->destroy(t);
	buf_pool_destroy(&pool);
	ssd_close(s);
	free(r.lat);
	return 0;
}
