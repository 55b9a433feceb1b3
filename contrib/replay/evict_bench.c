/*
 * tierfs-evict-bench - what L2's eviction order (policy/evict.h) costs at scale: a benchmark,
 * not a test (it prints figures and asserts nothing).
 *
 *   tierfs-evict-bench [--chunks N] [--evict-pct P]
 *
 * Builds the order of an L2 of N chunks (default 1,000,000; 1 MiB chunks), as l2.c does at start
 * (evict_restore, oldest first, a third of them read more than once) and then by reads (a
 * skewed mix of hits and fills), and reports:
 *   - the time to restore N chunks, and the memory the order takes per chunk (its nodes, ghosts
 *     included, and its table);
 *   - evicting P % (default 10) of the chunks: the time in all, and the longest hold of the
 *     lock, as l2.c holds it (a batch of 64 victims at a time);
 *   - the latency of a reader's lookup and hit (p50, p99, max), taken under the same mutex from
 *     another thread, of the lookups made while the eviction ran.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "evict.h"
#include "util.h"

#define SLOT ((1u << 20) + 4096)
#define BATCH 64 /* as l2.c's EVICT_BATCH */

static uint64_t key_of(uint64_t i) { return tfs_hash64(&i, sizeof(i), 42); }

struct shared {
	pthread_mutex_t lock;
	struct evict_order *o;
	uint64_t n;
	_Atomic bool done;
	uint64_t *lat;              /* reader's latencies, ns */
	_Atomic size_t nlat;
	size_t cap;
};

static void *reader(void *arg)
{
	struct shared *sh = arg;
	uint64_t x = 12345;
	for (size_t i = 0; !atomic_load(&sh->done) && i < sh->cap; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t k = key_of((x >> 33) % sh->n);
		uint64_t t0 = tfs_now_ns();
		pthread_mutex_lock(&sh->lock);
		uint32_t h = evict_find(sh->o, k);
		if (h != EVICT_NONE)
			evict_hit(sh->o, h);
		pthread_mutex_unlock(&sh->lock);
		sh->lat[i] = tfs_now_ns() - t0;
		atomic_store(&sh->nlat, i + 1);
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
	uint64_t n = 1000000, pct = 10;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--chunks") == 0 && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--evict-pct") == 0 && i + 1 < argc)
			pct = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: tierfs-evict-bench [--chunks N] [--evict-pct P]\n");
			return 2;
		}
	}
	if (n < 100 || pct < 1 || pct > 100) {
		fprintf(stderr, "tierfs-evict-bench: --chunks at least 100, --evict-pct 1..100\n");
		return 2;
	}
	struct shared sh = { .n = n };
	pthread_mutex_init(&sh.lock, NULL);
	uint64_t rss0 = rss_kib();
	if (evict_new(n * SLOT, &sh.o) < 0)
		return 1;

	/* start: the index's entries, oldest first, a third read more than once */
	uint64_t t0 = tfs_now_ns();
	uint32_t h;
	for (uint64_t i = 0; i < n; i++)
		if (evict_restore(sh.o, key_of(i), SLOT, i % 3 == 0 ? 4 : 1, &h) < 0)
			return 1;
	uint64_t restore_ns = tfs_now_ns() - t0;

	/* reads: hits on a skewed set, and fills of new chunks that evict (ghosts build up) */
	uint64_t x = 99, used = n * SLOT, next = n;
	for (uint64_t i = 0; i < 2 * n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t r = x >> 33;
		uint64_t id = r % 4 ? (r % 1024) * (r % 1024) % n : next++;
		uint32_t hh = evict_find(sh.o, key_of(id));
		if (hh != EVICT_NONE) {
			evict_hit(sh.o, hh);
			continue;
		}
		if (used + SLOT > n * SLOT && evict_next(sh.o, false) != EVICT_NONE)
			used -= SLOT;
		if (evict_admit(sh.o, key_of(id), SLOT, EVICT_READ, &hh) == 0)
			used += SLOT;
	}
	sh.n = next;
	struct evict_stats st;
	evict_get_stats(sh.o, &st);
	uint64_t rss1 = rss_kib();

	/* evict pct % while a reader looks chunks up */
	sh.cap = 20000000;
	sh.lat = malloc(sh.cap * sizeof(*sh.lat));
	if (!sh.lat)
		return 1;
	pthread_t rd;
	pthread_create(&rd, NULL, reader, &sh);
	while (atomic_load(&sh.nlat) < 100000) /* the reader is under way */
		;
	size_t from = atomic_load(&sh.nlat);
	uint64_t want = n * pct / 100, got = 0, max_hold = 0;
	t0 = tfs_now_ns();
	while (got < want) {
		uint64_t a = tfs_now_ns();
		pthread_mutex_lock(&sh.lock);
		size_t k = 0;
		while (k < BATCH && got < want && evict_next(sh.o, false) != EVICT_NONE)
			k++, got++;
		pthread_mutex_unlock(&sh.lock);
		uint64_t hold = tfs_now_ns() - a;
		if (hold > max_hold)
			max_hold = hold;
		if (k == 0)
			break;
	}
	uint64_t evict_ns = tfs_now_ns() - t0;
	size_t to = atomic_load(&sh.nlat);
	atomic_store(&sh.done, true);
	pthread_join(rd, NULL);
	/* the lookups made while the eviction ran */
	size_t nl = to - from;
	uint64_t *lat = sh.lat + from;
	qsort(lat, nl, sizeof(*lat), cmp_u64);

	printf("chunks\t%" PRIu64 "\n", n);
	printf("restore_ms\t%.1f\n", (double)restore_ns / 1e6);
	printf("order_nodes\t%" PRIu64 " (of which ghosts %" PRIu64 ")\n", st.nodes, st.ghosts);
	printf("rss_bytes_per_chunk\t%.1f\n", (double)(rss1 - rss0) * 1024 / (double)n);
	printf("evicted\t%" PRIu64 " (%" PRIu64 " %%)\n", got, pct);
	printf("evict_ms\t%.1f\n", (double)evict_ns / 1e6);
	printf("evict_max_lock_hold_us\t%.1f\n", (double)max_hold / 1e3);
	if (nl)
		printf("reader_lookups_during_eviction\t%zu\nreader_p50_us\t%.2f\n"
		       "reader_p99_us\t%.2f\nreader_max_us\t%.1f\n",
		       nl, (double)lat[nl / 2] / 1e3, (double)lat[nl * 99 / 100] / 1e3,
		       (double)lat[nl - 1] / 1e3);
	free(sh.lat);
	evict_free(sh.o);
	return 0;
}
