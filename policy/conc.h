/*
 * conc.h - how many S3 GETs are in flight: a gate with a limit that finds the network's.
 *
 * Real S3 serves tens of MB/s per connection, so a client gets more by opening more of them;
 * a server on the same machine gains nothing from more than a few.  The limit starts at
 * CONC_INITIAL and, while there is more work than slots (readers wait at the gate), is raised
 * step by step for as long as each raise buys throughput: doubled at first, then by a quarter,
 * probing again every CONC_HOLD_MS after a raise that bought less than CONC_GAIN_PCT.  A raise
 * that bought nothing is taken back.  503 SlowDown, 429 and failed GETs cut it by 30%.  It never
 * exceeds the cap (the connections= option).
 *
 * Waiters are admitted first come, first served, so readers queueing readahead of the same
 * depth share the slots fairly.  An urgent GET (a reader waiting for that chunk now) does not
 * wait for the limit: it may take the in-flight count past it, never past the cap (at the cap
 * it waits ahead of the others).
 *
 * The controller (conc_ctl_*) is pure: it is driven by the gate with the monotonic clock and by
 * the unit tests with a clock of their own.  The gate is thread-safe; its lock is a leaf.
 */
#ifndef TIERFS_CONC_H
#define TIERFS_CONC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CONC_INITIAL 8
#define CONC_EPOCH_MS 300        /* throughput is measured over this long (at least) */
#define CONC_HOLD_MS 3000        /* after a raise that bought nothing, wait this long */
#define CONC_GAIN_PCT 8          /* a raise must buy this much more throughput */

struct conc_ctl {
	unsigned limit, cap;
	bool slow_start;           /* doubling, until a doubling buys nothing */
	/* the epoch being measured: when it began, and the byte count then */
	uint64_t epoch_start_ns, epoch_start_bytes;
	bool epoch_busy;           /* work waited for a slot during the epoch */
	bool epoch_backoff;        /* a throttle or failure during the epoch */
	/* the last raise: the limit and throughput before it, and whether it is on trial */
	unsigned prev_limit;
	double prev_tput;          /* bytes per second */
	bool on_trial;
	uint64_t hold_until_ns;
	/* what was measured */
	double last_tput;
	uint64_t raises, cuts, reverts;
};

/* bytes: a count of body bytes received so far, as they arrive (throughput is its slope) */
void conc_ctl_init(struct conc_ctl *c, unsigned cap, uint64_t now_ns, uint64_t bytes);
/* S3 throttled a GET (429, 503 SlowDown) or one failed. */
void conc_ctl_backoff(struct conc_ctl *c);
/* Work waited at the gate. */
void conc_ctl_busy(struct conc_ctl *c);
/* Ends the epoch if it is CONC_EPOCH_MS old and decides the limit; returns the limit. */
unsigned conc_ctl_tick(struct conc_ctl *c, uint64_t now_ns, uint64_t bytes);

struct conc_stats {
	unsigned limit, cap, in_flight, peak;
	uint64_t waits;             /* GETs that waited for a slot */
	uint64_t raises, cuts, reverts;
	double throughput;          /* bytes/s of the last busy epoch */
};

struct conc_waiter;

struct conc {
	const _Atomic uint64_t *arriving; /* the S3 client's count of body bytes (not owned) */
	pthread_mutex_t lock;       /* guards everything below; a leaf */
	struct conc_ctl ctl;
	unsigned in_flight, peak;
	/* waiters in arrival order, each woken alone when its slot is handed over to it */
	struct conc_waiter *whead, *wtail;
	uint64_t waits;
};

void conc_init(struct conc *g, unsigned cap, const _Atomic uint64_t *arriving);
void conc_destroy(struct conc *g);
/* Takes a slot (urgent: at once).  Pair with conc_leave. */
void conc_enter(struct conc *g, bool urgent);
/* Gives the slot back: result 0, -EAGAIN (S3 throttled it) or the GET's -errno. */
void conc_leave(struct conc *g, int result);
void conc_get_stats(struct conc *g, struct conc_stats *out);

#endif
