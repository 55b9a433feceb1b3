/*
 * unit_evict.c - L2's eviction order (policy/evict.h) driven directly, as l2.c and the replayer
 * drive it: scan resistance, a loop over a data set twice the cache (a stable half kept), a
 * chunk read again outliving ones read once, prefetches displacing no LIR chunk, drops, the
 * restore at start, the HIR part adapting both ways, bounded ghosts, and every invariant
 * (evict_check) after each step of a long random mix of all the calls.
 */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "evict.h"

#define U ((1u << 20) + 4096) /* one chunk's slot, in the order's bytes, as l2.c counts it */

struct sim {
	struct evict_order *o;
	uint64_t cap, used, hits, misses;
};

/* A cache of cap chunks. */
static void sim_init(struct sim *s, uint64_t cap)
{
	cap *= U;
	*s = (struct sim){ .cap = cap };
	CHECK(evict_new(cap, &s->o) == 0);
}

/* One read of key, as l2.c does it: a hit, or room made and the chunk admitted. */
static bool sim_read(struct sim *s, uint64_t key, enum evict_how how)
{
	uint32_t h = evict_find(s->o, key);
	if (h != EVICT_NONE) {
		if (how == EVICT_READ)
			evict_hit(s->o, h);
		s->hits++;
		return true;
	}
	s->misses++;
	while (s->used + U > s->cap) {
		if (evict_next(s->o, how == EVICT_PREFETCH) == EVICT_NONE)
			return false;
		s->used -= U;
	}
	if (evict_admit(s->o, key, U, how, &h) == 0)
		s->used += U;
	return false;
}

static void test_scan_resistance(void)
{
	struct sim s;
	sim_init(&s, 100);
	for (int round = 0; round < 3; round++) /* a hot set of 50, read three times */
		for (uint64_t k = 1; k <= 50; k++)
			sim_read(&s, k, EVICT_READ);
	for (uint64_t k = 1000; k < 11000; k++) /* a scan of 10,000 chunks read once */
		sim_read(&s, k, EVICT_READ);
	int kept = 0;
	for (uint64_t k = 1; k <= 50; k++)
		kept += evict_find(s.o, k) != EVICT_NONE;
	/* read round and round, one of them stays HIR (the HIR part holds a chunk), and the
	 * scan passes through the HIR part: the other 49 stay (LRU keeps none) */
	CHECK(kept == 49);
	CHECK(evict_check(s.o) == 0);
	evict_free(s.o);
}

static void test_loop(void)
{
	/* epochs over 2,000 chunks with a cache of 1,000: LRU misses everything, the optimum
	 * keeps half (a miss ratio of 0.5) */
	struct sim s;
	sim_init(&s, 1000);
	for (int epoch = 0; epoch < 20; epoch++)
		for (uint64_t k = 1; k <= 2000; k++)
			sim_read(&s, k, EVICT_READ);
	double miss = (double)s.misses / (double)(s.hits + s.misses);
	printf("loop over 2x the cache: miss ratio %.3f (optimum 0.5 + the first epoch)\n", miss);
	CHECK(miss < 0.5 + 0.05 + 0.03);
	CHECK(evict_check(s.o) == 0);
	evict_free(s.o);
}

static void test_reuse_outlives_once(void)
{
	struct sim s;
	sim_init(&s, 10);
	for (uint64_t k = 20; k < 30; k++) /* a cache filling up: 20 HIR, then 21..29 LIR */
		sim_read(&s, k, EVICT_READ);
	sim_read(&s, 1, EVICT_READ); /* 20 goes */
	sim_read(&s, 1, EVICT_READ); /* read twice: LIR, and the coldest LIR chunk, 21, HIR */
	for (uint64_t k = 30; k <= 60; k++)
		sim_read(&s, k, EVICT_READ);
	CHECK(evict_find(s.o, 1) != EVICT_NONE);
	CHECK(evict_find(s.o, 20) == EVICT_NONE && evict_find(s.o, 21) == EVICT_NONE);
	for (uint64_t k = 22; k < 30; k++)
		CHECK(evict_find(s.o, k) != EVICT_NONE);
	CHECK(evict_find(s.o, 30) == EVICT_NONE && evict_find(s.o, 60) != EVICT_NONE);
	CHECK(evict_check(s.o) == 0);
	evict_free(s.o);
}

static void test_prefetch(void)
{
	struct sim s;
	sim_init(&s, 10);
	for (uint64_t k = 1; k <= 10; k++) /* a cache filling up: 1 HIR, then 2..10 LIR */
		sim_read(&s, k, EVICT_READ);
	struct evict_stats st;
	evict_get_stats(s.o, &st);
	CHECK(st.lir_bytes == 9 * U && st.resident_bytes == 10 * U);
	/* a prefetch displaces the HIR chunk, and then prefetches, never an LIR one */
	for (uint64_t k = 100; k < 120; k++)
		sim_read(&s, k, EVICT_PREFETCH);
	for (uint64_t k = 2; k <= 10; k++)
		CHECK(evict_find(s.o, k) != EVICT_NONE);
	CHECK(evict_find(s.o, 1) == EVICT_NONE && evict_find(s.o, 119) != EVICT_NONE);
	/* a prefetched chunk read twice earns its place */
	sim_read(&s, 119, EVICT_READ);
	sim_read(&s, 119, EVICT_READ);
	evict_get_stats(s.o, &st);
	CHECK(st.lir_bytes == 9 * U); /* 119 LIR, the coldest LIR chunk HIR */
	uint32_t h = evict_find(s.o, 119);
	CHECK(h != EVICT_NONE);
	/* nothing HIR left once the HIR chunk is evicted: a prefetch finds no room */
	CHECK(evict_next(s.o, true) != EVICT_NONE);
	CHECK(evict_next(s.o, true) == EVICT_NONE);
	CHECK(evict_next(s.o, false) != EVICT_NONE); /* a read may take an LIR chunk */
	CHECK(evict_admit(s.o, 5, U, EVICT_READ, &h) == -EEXIST);
	CHECK(evict_check(s.o) == 0);
	evict_free(s.o);
}

static void test_drop_and_restore(void)
{
	struct evict_order *o;
	uint32_t h[6];
	CHECK(evict_new(100 * U, &o) == 0);
	/* oldest first: 1 and 3 read more than once */
	uint64_t acc[6] = { 0, 5, 1, 2, 1, 1 };
	for (uint64_t k = 1; k <= 5; k++)
		CHECK(evict_restore(o, k, U, acc[k], &h[k]) == 0);
	struct evict_stats st;
	evict_get_stats(o, &st);
	CHECK(st.lir_bytes == 2 * U && st.resident_bytes == 5 * U);
	CHECK(evict_check(o) == 0);
	/* the HIR ones go first, oldest first */
	CHECK(evict_next(o, false) == h[2]);
	CHECK(evict_next(o, false) == h[4]);
	evict_drop(o, h[3]);
	CHECK(evict_find(o, 3) == EVICT_NONE);
	evict_drop(o, h[1]);
	evict_get_stats(o, &st);
	CHECK(st.lir_bytes == 0 && st.resident_bytes == U);
	CHECK(evict_check(o) == 0);
	evict_free(o);
}

static void test_adapts(void)
{
	/* reuse a short while after the first read, farther than the smallest HIR part (2): the
	 * HIR part grows (LRU's behaviour) */
	struct sim s;
	struct evict_stats st;
	sim_init(&s, 200);
	for (uint64_t i = 0; i < 40000; i++)
		sim_read(&s, i % 2 ? i / 2 - 6 + 1000000 : i / 2 + 1000000 , EVICT_READ);
	evict_get_stats(s.o, &st);
	uint64_t grown = st.hir_target;
	printf("HIR part after reuse at distance 6: %llu of 200 chunks\n", (unsigned long long)(grown / U));
	CHECK(grown >= 20 * U);
	/* then a hot set of 195 read at random, and chunks read once between: the HIR part
	 * shrinks back as demoted chunks come back, and the hot set stays */
	uint64_t h0 = s.hits, m0 = s.misses;
	srand(3);
	for (uint64_t i = 0; i < 200000; i++)
		sim_read(&s, i % 4 ? (uint64_t)(rand() % 195) : 5000000 + i, EVICT_READ);
	evict_get_stats(s.o, &st);
	double miss = (double)(s.misses - m0) / (double)(s.hits - h0 + s.misses - m0);
	printf("then a hot set of 195 at random and chunks read once: miss ratio %.3f\n", miss);
	CHECK(miss < 0.25 + 0.03); /* the chunks read once always miss */
	printf("HIR part after it: %llu of 200 chunks\n", (unsigned long long)(st.hir_target / U));
	CHECK(st.hir_target < grown);
	CHECK(st.ghosts <= 3 * 200 && st.nodes <= 4 * 200);
	CHECK(evict_check(s.o) == 0);
	evict_free(s.o);
}

/* The table through many growths (1,024 buckets to 131,072), each one spread over the inserts
 * that follow it: every key is found exactly while it is resident, across reads, prefetches,
 * drops and evictions, with the table's invariants checked along the way (every entry in
 * use, in its key's chain, once; the moved part of the old table empty). */
static void test_table_grows(void)
{
	enum { CAP = 20000, POOL = 90000 };
	struct sim s;
	sim_init(&s, CAP);
	bool *res = calloc(POOL, sizeof(*res));
	uint64_t *keys = malloc(POOL * sizeof(*keys)), x = 88172645463325252ull;
	for (int i = 0; i < POOL; i++) { /* half random, half alike but in their top bits; the
					   * low 20 bits are the index */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		keys[i] = (i % 2 ? x << 20 : (uint64_t)i << 40) | (uint64_t)i;
	}
	int bad = 0, checks = 0;
	uint64_t grown_to = 0;
	for (int i = 0; i < 400000 && !bad; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* a moving window of the pool, so that ghosts and new keys keep coming */
		int k = (int)((x % 30000 + (uint64_t)i / 8) % POOL), op = (int)(x >> 40) % 10;
		uint32_t h = evict_find(s.o, keys[k]);
		bad |= (h != EVICT_NONE) != res[k];
		if (op < 7 && h == EVICT_NONE) {
			while (s.used + U > s.cap) {
				uint32_t v = evict_next(s.o, false);
				res[evict_key(s.o, v) & 0xfffff] = false;
				s.used -= U;
			}
			bad |= evict_admit(s.o, keys[k], U, op < 5 ? EVICT_READ : EVICT_PREFETCH, &h) != 0;
			s.used += U;
			res[k] = true;
		} else if (op < 7) {
			evict_hit(s.o, h);
		} else if (op < 9 && h != EVICT_NONE) {
			evict_drop(s.o, h);
			s.used -= U;
			res[k] = false;
		}
		if (i % 4000 == 0) {
			bad |= evict_check(s.o) < 0;
			checks++;
		}
		struct evict_stats st;
		evict_get_stats(s.o, &st);
		if (st.nodes > grown_to)
			grown_to = st.nodes;
	}
	printf("table: %llu entries at most, %d full checks\n", (unsigned long long)grown_to, checks);
	CHECK(!bad);
	CHECK(grown_to > 40000);
	CHECK(evict_check(s.o) == 0);
	free(res);
	free(keys);
	evict_free(s.o);
}

/* A random mix of every call, the invariants checked after each. */
static void test_random(void)
{
	struct sim s;
	sim_init(&s, 64);
	srand(7);
	int bad = 0;
	for (int i = 0; i < 20000 && !bad; i++) {
		uint64_t key = (uint64_t)(rand() % 300) + 1;
		int op = rand() % 10;
		uint32_t h = evict_find(s.o, key);
		if (op < 6) {
			sim_read(&s, key, EVICT_READ);
		} else if (op < 8) {
			sim_read(&s, key, EVICT_PREFETCH);
		} else if (op == 8 && h != EVICT_NONE) {
			evict_drop(s.o, h);
			s.used -= U;
		} else if (op == 9 && evict_next(s.o, rand() % 2) != EVICT_NONE) {
			s.used -= U;
		}
		struct evict_stats st;
		evict_get_stats(s.o, &st);
		bad = evict_check(s.o) < 0 || st.resident_bytes != s.used;
	}
	CHECK(!bad);
	evict_free(s.o);
}

int main(void)
{
	test_scan_resistance();
	test_loop();
	test_reuse_outlives_once();
	test_prefetch();
	test_drop_and_restore();
	test_adapts();
	test_random();
	test_table_grows();
	return CHECK_SUMMARY();
}
