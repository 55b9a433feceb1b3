/*
 * predict.h - the interval predictor: when will an object be read next?
 *
 * Per object, the times of its last PRED_HISTORY accesses (opens by a reader; opens closer than
 * PRED_MIN_GAP_MS to the previous one are the same access).  The next access is predicted as
 * the last one plus a recency-weighted moving average of the intervals between them: the most
 * recent interval weighs 1, the one before 1/2, then 1/4, ...  A prediction needs
 * PRED_MIN_INTERVALS intervals, and intervals regular enough: their weighted mean absolute
 * deviation at most half their average (an irregular reader is not predicted).
 *
 * Pure functions: no locks, no clock (times are passed in, in milliseconds), no I/O.
 */
#ifndef TIERFS_PREDICT_H
#define TIERFS_PREDICT_H

#include <errno.h>
#include <stdint.h>

#define PRED_HISTORY 8
#define PRED_MIN_GAP_MS 1000
#define PRED_MIN_INTERVALS 2

struct pred_hist {
	uint64_t t[PRED_HISTORY]; /* access times; the latest at t[(n - 1) % PRED_HISTORY] */
	uint32_t n;               /* accesses recorded */
};

/* The i-th most recent access time (0: the latest); i < n and i < PRED_HISTORY. */
static inline uint64_t pred_at(const struct pred_hist *h, uint32_t i)
{
	return h->t[(h->n - 1 - i) % PRED_HISTORY];
}

/* Records an access at now; returns 0 when it counts as a new access, -EALREADY when it is
 * part of the previous one (or earlier than it). */
static inline int pred_note(struct pred_hist *h, uint64_t now)
{
	if (h->n && now < pred_at(h, 0) + PRED_MIN_GAP_MS)
		return -EALREADY;
	h->t[h->n % PRED_HISTORY] = now;
	h->n++;
	return 0;
}

/* The recency-weighted average interval; -EAGAIN with too few intervals, -ERANGE when they are
 * too irregular to predict from. */
static inline int pred_interval(const struct pred_hist *h, uint64_t *avg)
{
	uint32_t k = h->n < PRED_HISTORY ? h->n : PRED_HISTORY; /* accesses known */
	if (k < PRED_MIN_INTERVALS + 1)
		return -EAGAIN;
	double sum = 0, wsum = 0, w = 1;
	for (uint32_t i = 0; i + 1 < k; i++, w /= 2) {
		sum += w * (double)(pred_at(h, i) - pred_at(h, i + 1));
		wsum += w;
	}
	double mean = sum / wsum, dev = 0;
	w = 1;
	for (uint32_t i = 0; i + 1 < k; i++, w /= 2) {
		double d = (double)(pred_at(h, i) - pred_at(h, i + 1)) - mean;
		dev += w * (d < 0 ? -d : d);
	}
	if (dev / wsum > mean / 2)
		return -ERANGE;
	*avg = (uint64_t)(mean + 0.5);
	return 0;
}

/* When the next access is expected.  -ESTALE when it is overdue by more than half an interval
 * at now (the reader stopped, or changed its rhythm), besides pred_interval's errors. */
static inline int pred_next(const struct pred_hist *h, uint64_t now, uint64_t *next)
{
	uint64_t avg;
	int ret = pred_interval(h, &avg);
	if (ret < 0)
		return ret;
	*next = pred_at(h, 0) + avg;
	if (now > *next + avg / 2)
		return -ESTALE;
	return 0;
}

#endif
