/*
 * evict.c - the L2 eviction order (see evict.h).
 */
#include "evict.h"

#include <math.h>
#include <stdlib.h>

double evict_priority(double last_access_s, uint64_t accesses)
{
	return last_access_s + EVICT_FREQ_BONUS_S * log2(1.0 + (double)accesses);
}

uint64_t evict_want(uint64_t used, uint64_t need, uint64_t cap)
{
	return used + need > cap ? used + need - cap + cap / 100 * EVICT_LOW_WATER_PCT : 0;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct evict_cand *x = a, *y = b;
	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

size_t evict_choose(struct evict_cand *cands, size_t n, uint64_t need)
{
	if (n)
		qsort(cands, n, sizeof(*cands), cmp_cand);
	uint64_t got = 0;
	size_t k = 0;
	while (k < n && got < need)
		got += cands[k++].bytes;
	return k;
}
