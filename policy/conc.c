/*
 * conc.c - the S3 GET gate and its adaptive limit (conc.h).
 */
#include <errno.h>

#include "conc.h"
#include "util.h"

#define NS_PER_MS 1000000ull

void conc_ctl_init(struct conc_ctl *c, unsigned cap, uint64_t now_ns, uint64_t bytes)
{
	*c = (struct conc_ctl){ .cap = cap ? cap : 1, .slow_start = true,
				.epoch_start_ns = now_ns, .epoch_start_bytes = bytes };
	c->limit = CONC_INITIAL < c->cap ? CONC_INITIAL : c->cap;
}

void conc_ctl_backoff(struct conc_ctl *c) { c->epoch_backoff = true; }

void conc_ctl_busy(struct conc_ctl *c) { c->epoch_busy = true; }

static unsigned raise_to(const struct conc_ctl *c)
{
	unsigned step = c->slow_start ? c->limit : c->limit / 4;
	if (step < 1)
		step = 1;
	return c->limit + step < c->cap ? c->limit + step : c->cap;
}

unsigned conc_ctl_tick(struct conc_ctl *c, uint64_t now_ns, uint64_t bytes)
{
	uint64_t el = now_ns - c->epoch_start_ns;
	if (el < CONC_EPOCH_MS * NS_PER_MS)
		return c->limit;
	bool counted = bytes >= c->epoch_start_bytes; /* else the counters were reset */
	double tput = counted ? (double)(bytes - c->epoch_start_bytes) * 1e9 / (double)el : 0;
	bool busy = c->epoch_busy && counted, backoff = c->epoch_backoff;
	c->epoch_start_ns = now_ns;
	c->epoch_start_bytes = bytes;
	c->epoch_busy = c->epoch_backoff = false;

	if (backoff) {
		/* S3 asked to slow down, or GETs failed: fewer at once, and no raise for a while */
		unsigned cut = c->limit * 7 / 10;
		c->limit = cut ? cut : 1;
		c->slow_start = c->on_trial = false;
		c->hold_until_ns = now_ns + CONC_HOLD_MS * NS_PER_MS;
		c->cuts++;
		return c->limit;
	}
	if (!busy) {
		c->on_trial = false; /* no more work than slots: nothing to learn */
		return c->limit;
	}
	c->last_tput = tput;
	if (c->on_trial) {
		c->on_trial = false;
		if (tput < c->prev_tput * (1.0 + CONC_GAIN_PCT / 100.0)) {
			/* the raise bought nothing: back, and probe again later */
			c->limit = c->prev_limit;
			c->slow_start = false;
			c->hold_until_ns = now_ns + CONC_HOLD_MS * NS_PER_MS;
			c->reverts++;
			return c->limit;
		}
	}
	if (now_ns >= c->hold_until_ns && c->limit < c->cap) {
		c->prev_limit = c->limit;
		c->prev_tput = tput;
		c->limit = raise_to(c);
		c->on_trial = true;
		c->raises++;
	}
	return c->limit;
}

struct conc_waiter {
	struct conc_waiter *next;
	pthread_cond_t cond;        /* signalled once, when admitted */
	bool admitted;
	bool urgent;                /* at the head: admitted within the cap, not the limit */
};

void conc_init(struct conc *g, unsigned cap, const _Atomic uint64_t *arriving)
{
	g->arriving = arriving;
	pthread_mutex_init(&g->lock, NULL);
	conc_ctl_init(&g->ctl, cap, tfs_now_ns(), atomic_load_explicit(arriving, memory_order_relaxed));
	g->in_flight = g->peak = 0;
	g->whead = g->wtail = NULL;
	g->waits = 0;
}

void conc_destroy(struct conc *g) { pthread_mutex_destroy(&g->lock); }

/* Under g->lock: work waiting counts toward the epoch, the epoch may end, and the slots the
 * limit allows go to the waiters in order (the slot is counted here, for the waiter). */
static void tick_locked(struct conc *g)
{
	if (g->whead)
		conc_ctl_busy(&g->ctl);
	conc_ctl_tick(&g->ctl, tfs_now_ns(),
		      atomic_load_explicit(g->arriving, memory_order_relaxed));
	while (g->whead && g->in_flight < (g->whead->urgent ? g->ctl.cap : g->ctl.limit)) {
		struct conc_waiter *w = g->whead;
		if (!(g->whead = w->next))
			g->wtail = NULL;
		g->in_flight++;
		w->admitted = true;
		pthread_cond_signal(&w->cond);
	}
}

void conc_enter(struct conc *g, bool urgent)
{
	pthread_mutex_lock(&g->lock);
	tick_locked(g);
	if ((urgent && g->in_flight < g->ctl.cap) || (!g->whead && g->in_flight < g->ctl.limit)) {
		if (g->in_flight >= g->ctl.limit)
			conc_ctl_busy(&g->ctl);
		g->in_flight++;
	} else {
		struct conc_waiter w = { .next = NULL, .admitted = false, .urgent = urgent };
		pthread_cond_init(&w.cond, NULL);
		if (urgent) { /* ahead of the others, behind earlier urgent ones */
			struct conc_waiter **pp = &g->whead;
			while (*pp && (*pp)->urgent)
				pp = &(*pp)->next;
			w.next = *pp;
			*pp = &w;
			if (!w.next)
				g->wtail = &w;
		} else {
			if (g->wtail)
				g->wtail->next = &w;
			else
				g->whead = &w;
			g->wtail = &w;
		}
		g->waits++;
		conc_ctl_busy(&g->ctl);
		while (!w.admitted)
			pthread_cond_wait(&w.cond, &g->lock);
		pthread_cond_destroy(&w.cond);
	}
	if (g->in_flight > g->peak)
		g->peak = g->in_flight;
	pthread_mutex_unlock(&g->lock);
}

void conc_leave(struct conc *g, int result)
{
	pthread_mutex_lock(&g->lock);
	/* a missing key or a changed object is an answer, not a sign of overload */
	if (result == -EAGAIN || result == -EIO)
		conc_ctl_backoff(&g->ctl);
	g->in_flight--;
	tick_locked(g);
	pthread_mutex_unlock(&g->lock);
}

void conc_get_stats(struct conc *g, struct conc_stats *out)
{
	pthread_mutex_lock(&g->lock);
	*out = (struct conc_stats){ .limit = g->ctl.limit, .cap = g->ctl.cap,
				    .in_flight = g->in_flight, .peak = g->peak, .waits = g->waits,
				    .raises = g->ctl.raises, .cuts = g->ctl.cuts,
				    .reverts = g->ctl.reverts, .throughput = g->ctl.last_tput };
	pthread_mutex_unlock(&g->lock);
}
