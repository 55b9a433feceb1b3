/*
 * evict.c - the L2 eviction order: LIRS with an adaptive HIR part (see evict.h).
 *
 * Entries live in one array (a handle is an index), chained into three doubly linked lists:
 *   S  the recency stack: LIR chunks, resident HIR chunks and ghosts, most recent at the head,
 *      pruned so that its bottom is always LIR (LIRS's invariant);
 *   Q  the resident HIR chunks, in the order they became HIR (the tail leaves first);
 *   G  the ghosts, in the order they left, at most EVICT_GHOSTS_X times the cache in bytes;
 *      a ghost that leaves G leaves S too, so ghosts are bounded by G.
 * An entry is in Q or G, never both, so the two share one pair of links.  A hash table of
 * handles, keyed by the caller's 64-bit key (already a digest) and chained through the nodes,
 * finds them; it grows a few buckets per insert, never all at once (the table, below).
 */
#include "evict.h"

#include <errno.h>
#include <stdlib.h>

/* The HIR part: at least EVICT_HIR_MIN_PCT of the cache (and one chunk), at most
 * EVICT_HIR_MAX_PCT; it starts at the minimum. */
#define EVICT_HIR_MIN_PCT 1
#define EVICT_HIR_MAX_PCT 50
/* A ghost that entered new grows the HIR part when it left fewer than this many times the
 * HIR part's bytes of evictions ago, and fewer than the HIR part may still grow (a Q that
 * much larger, and allowed, would have kept it): a loop, whose chunks come back long after,
 * leaves the HIR part as it is, and so does a hot set a little larger than the LIR part. */
#define EVICT_GROW_REACH 12
/* Ghosts kept, in bytes, as a multiple of the cache (LIRS's reuse test sees this far). */
#define EVICT_GHOSTS_X 3
/* A hit counts towards a chunk's frequency (a second chance at the bottom of S) up to this. */
#define EVICT_FREQ_MAX 3

enum { ST_FREE, ST_LIR, ST_HIR, ST_GHOST };

struct node {
	uint64_t key;
	uint64_t left_at;            /* a ghost: the evicted bytes when it left */
	uint32_t s_prev, s_next;     /* in S (in_s); s_next chains the free list */
	uint32_t q_prev, q_next;     /* in Q (ST_HIR) or G (ST_GHOST) */
	uint32_t h_next;             /* the table's chain: the next handle plus one, 0 at the end */
	uint32_t bytes;
	uint8_t st;                  /* a ghost is in G, and only a ghost */
	uint8_t freq;                /* hits, up to EVICT_FREQ_MAX: second chances in the LIR part */
	bool in_s, demoted;          /* demoted: was LIR before it became HIR */
};

struct list {
	uint32_t head, tail;         /* head: most recent */
	uint64_t bytes;
	uint64_t n;
};

struct evict_order {
	uint64_t cap, unit;          /* unit: the largest chunk seen */
	uint64_t hir;                /* the HIR part's target, bytes */
	uint64_t lir_bytes, res_bytes, evicted_bytes;
	struct node *nodes;
	uint32_t nnodes, top, free_head, used; /* nodes[top..nnodes) never used yet */
	uint32_t *tab, *old;         /* buckets (the table below); old while growing */
	uint64_t tab_mask, old_mask, moved; /* old's buckets below moved are in tab */
	struct list s, q, g;
	uint64_t g_demoted;          /* ghosts in G that had been LIR */
};

/* ---- lists ---- */

static uint32_t *prev_of(struct evict_order *o, uint32_t h, bool q)
{
	return q ? &o->nodes[h].q_prev : &o->nodes[h].s_prev;
}

static uint32_t *next_of(struct evict_order *o, uint32_t h, bool q)
{
	return q ? &o->nodes[h].q_next : &o->nodes[h].s_next;
}

static void push_head(struct evict_order *o, struct list *l, bool q, uint32_t h)
{
	*prev_of(o, h, q) = EVICT_NONE;
	*next_of(o, h, q) = l->head;
	if (l->head != EVICT_NONE)
		*prev_of(o, l->head, q) = h;
	l->head = h;
	if (l->tail == EVICT_NONE)
		l->tail = h;
	l->bytes += o->nodes[h].bytes;
	l->n++;
}

static void unlink_node(struct evict_order *o, struct list *l, bool q, uint32_t h)
{
	uint32_t p = *prev_of(o, h, q), n = *next_of(o, h, q);
	if (p != EVICT_NONE)
		*next_of(o, p, q) = n;
	else
		l->head = n;
	if (n != EVICT_NONE)
		*prev_of(o, n, q) = p;
	else
		l->tail = p;
	l->bytes -= o->nodes[h].bytes;
	l->n--;
}

/* ---- the table ----
 *
 * Chained through the nodes.  A link (a bucket, or a node's h_next) is a handle plus one, 0
 * ending the chain, so that a new table is zero pages the kernel maps only as they are first
 * written.  It grows incrementally: when the entries outnumber the buckets, a table twice the
 * size replaces it, and every insert moves TAB_STEP of the old table's buckets into the new
 * one, in order, so that no call walks the table (a rehash all at once stalled L2's readers
 * for 0.12 s at a million chunks).  The old table is empty long before the new one fills: that
 * takes as many inserts as the old table has buckets.  A key's chain is always the one
 * bucket_of names: the old table's bucket until it moved, the new table's after. */
#define TAB_STEP 4
#define TAB_MIN 1024

static uint64_t mix(uint64_t key) { return (key ^ key >> 29) * 0x9E3779B97F4A7C15ull >> 17; }

static uint32_t *bucket_of(const struct evict_order *o, uint64_t key)
{
	uint64_t m = mix(key);
	if (o->old && (m & o->old_mask) >= o->moved)
		return &o->old[m & o->old_mask];
	return &o->tab[m & o->tab_mask];
}

/* The handle of key (resident or ghost), or EVICT_NONE. */
static uint32_t tab_find(const struct evict_order *o, uint64_t key)
{
	for (uint32_t l = *bucket_of(o, key); l; l = o->nodes[l - 1].h_next)
		if (o->nodes[l - 1].key == key)
			return l - 1;
	return EVICT_NONE;
}

static void tab_insert(struct evict_order *o, uint32_t h)
{
	uint32_t *b = bucket_of(o, o->nodes[h].key);
	o->nodes[h].h_next = *b;
	*b = h + 1;
}

/* Moves up to n of the old table's buckets into the new one. */
static void tab_move(struct evict_order *o, uint64_t n)
{
	for (; o->old && n; n--) {
		for (uint32_t l = o->old[o->moved]; l;) {
			struct node *x = &o->nodes[l - 1];
			uint32_t next = x->h_next, *b = &o->tab[mix(x->key) & o->tab_mask];
			x->h_next = *b;
			*b = l;
			l = next;
		}
		o->old[o->moved] = 0;
		if (++o->moved > o->old_mask) {
			free(o->old);
			o->old = NULL;
		}
	}
}

/* Room for one more entry: starts a growth when the entries would outnumber the buckets.
 * Without memory for a larger table the chains grow longer instead. */
static void tab_reserve(struct evict_order *o)
{
	if (o->old)
		tab_move(o, TAB_STEP);
	if ((uint64_t)o->used + 1 <= o->tab_mask + 1)
		return;
	/* the old table has emptied by now (above), unless an allocation failed and left the
	 * table behind the entries: then it is moved at once */
	tab_move(o, UINT64_MAX);
	uint32_t *nt = calloc((o->tab_mask + 1) * 2, sizeof(*nt));
	if (!nt)
		return;
	o->old = o->tab;
	o->old_mask = o->tab_mask;
	o->moved = 0;
	o->tab = nt;
	o->tab_mask = o->tab_mask * 2 + 1;
}

static void tab_remove(struct evict_order *o, uint32_t h)
{
	for (uint32_t *l = bucket_of(o, o->nodes[h].key); *l; l = &o->nodes[*l - 1].h_next)
		if (*l - 1 == h) {
			*l = o->nodes[h].h_next;
			return;
		}
}

/* ---- entries ---- */

static int node_new(struct evict_order *o, uint64_t key, uint32_t bytes, uint32_t *out)
{
	uint32_t h = o->free_head;
	if (h != EVICT_NONE) {
		o->free_head = o->nodes[h].s_next;
	} else {
		if (o->top == o->nnodes) { /* nodes are taken in order, then from the free list */
			if (o->nnodes >= EVICT_NONE / 2)
				return -ENOMEM;
			uint32_t ncap = o->nnodes ? o->nnodes * 2 : 1024;
			struct node *nn = realloc(o->nodes, (size_t)ncap * sizeof(*nn));
			if (!nn)
				return -ENOMEM;
			o->nodes = nn;
			o->nnodes = ncap;
		}
		h = o->top++;
	}
	struct node *n = &o->nodes[h];
	*n = (struct node){ .key = key, .bytes = bytes, .st = ST_GHOST };
	tab_reserve(o);
	tab_insert(o, h);
	o->used++;
	if (bytes > o->unit)
		o->unit = bytes;
	*out = h;
	return 0;
}

/* Frees h, which is in no list any more. */
static void node_free(struct evict_order *o, uint32_t h)
{
	struct node *n = &o->nodes[h];
	tab_remove(o, h);
	n->st = ST_FREE;
	n->s_next = o->free_head;
	o->free_head = h;
	o->used--;
}

static uint64_t hir_min(const struct evict_order *o)
{
	uint64_t m = o->cap / 100 * EVICT_HIR_MIN_PCT;
	return m > o->unit ? m : o->unit;
}

/* What the HIR part adapts to, at least one chunk once one is seen. */
static uint64_t hir_target(const struct evict_order *o)
{
	return o->hir > hir_min(o) ? o->hir : hir_min(o);
}

static uint64_t lir_cap(const struct evict_order *o)
{
	return o->cap > hir_target(o) ? o->cap - hir_target(o) : 0;
}

static void s_leave(struct evict_order *o, uint32_t h)
{
	unlink_node(o, &o->s, false, h);
	o->nodes[h].in_s = false;
}

static void s_to_head(struct evict_order *o, uint32_t h)
{
	if (o->nodes[h].in_s)
		unlink_node(o, &o->s, false, h);
	push_head(o, &o->s, false, h);
	o->nodes[h].in_s = true;
}

static void g_leave(struct evict_order *o, uint32_t h)
{
	unlink_node(o, &o->g, true, h);
	o->g_demoted -= o->nodes[h].demoted;
}

/* LIRS's invariant: the bottom of S is LIR; what lies below the lowest LIR chunk leaves S
 * (a resident HIR chunk stays in Q, a ghost in G). */
static void prune(struct evict_order *o)
{
	while (o->s.tail != EVICT_NONE && o->nodes[o->s.tail].st != ST_LIR)
		s_leave(o, o->s.tail);
}

/* The coldest LIR chunk becomes resident HIR: the bottom of S, but a chunk read again while
 * LIR has a second chance there (its count goes down and it goes back on top). */
static void demote_one(struct evict_order *o)
{
	while (o->s.tail != EVICT_NONE) {
		uint32_t b = o->s.tail;
		struct node *n = &o->nodes[b];
		if (n->freq > 0) {
			n->freq--;
			s_to_head(o, b);
			prune(o);
			continue;
		}
		s_leave(o, b);
		n->st = ST_HIR;
		n->demoted = true;
		o->lir_bytes -= n->bytes;
		push_head(o, &o->q, true, b);
		prune(o);
		return;
	}
}

/* The LIR part over its share (a chunk became LIR, or the HIR part grew). */
static void demote_over(struct evict_order *o)
{
	while (o->lir_bytes > lir_cap(o) && o->s.tail != EVICT_NONE)
		demote_one(o);
}

static void ghost_forget_oldest(struct evict_order *o)
{
	while (o->g.bytes > o->cap * EVICT_GHOSTS_X && o->g.tail != EVICT_NONE) {
		uint32_t t = o->g.tail;
		g_leave(o, t);
		if (o->nodes[t].in_s)
			s_leave(o, t); /* never S's bottom, which is LIR */
		node_free(o, t);
	}
}

/* The HIR part follows the ghosts that come back: one that entered new and left recently
 * enough that a larger Q would have kept it asks for more HIR; one demoted from LIR for
 * more LIR. */
static void adapt(struct evict_order *o, const struct node *n)
{
	uint64_t lo = hir_min(o), hi = o->cap / 100 * EVICT_HIR_MAX_PCT;
	if (hi < lo)
		hi = lo;
	if (o->hir < lo)
		o->hir = lo; /* the first chunk seen set the minimum */
	/* steps as ARC's: one chunk, or the ratio of the other kind of ghost to this one */
	uint64_t nd = o->g_demoted, nn = o->g.n - o->g_demoted;
	uint64_t ub = nn && nd > nn ? n->bytes * nd / nn : n->bytes;
	uint64_t db = nd && nn > nd ? n->bytes * nn / nd : n->bytes;
	uint64_t reach = EVICT_GROW_REACH * o->hir, room = hi > o->hir ? hi - o->hir : 0;
	if (!n->demoted) {
		if (o->evicted_bytes - n->left_at <= (reach < room ? reach : room))
			o->hir = o->hir + ub < hi ? o->hir + ub : hi;
	} else {
		o->hir = o->hir > lo + db ? o->hir - db : lo;
	}
}

/* ---- the interface ---- */

int evict_new(uint64_t cap, struct evict_order **out)
{
	struct evict_order *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->cap = cap ? cap : 1;
	o->free_head = EVICT_NONE;
	o->s = o->q = o->g = (struct list){ EVICT_NONE, EVICT_NONE, 0, 0 };
	o->tab_mask = TAB_MIN - 1;
	if (!(o->tab = calloc(TAB_MIN, sizeof(*o->tab)))) {
		free(o);
		return -ENOMEM;
	}
	o->hir = hir_min(o);
	*out = o;
	return 0;
}

void evict_free(struct evict_order *o)
{
	if (!o)
		return;
	free(o->nodes);
	free(o->tab);
	free(o->old);
	free(o);
}

uint32_t evict_find(const struct evict_order *o, uint64_t key)
{
	uint32_t h = tab_find(o, key);
	return h != EVICT_NONE && (o->nodes[h].st == ST_LIR || o->nodes[h].st == ST_HIR)
		       ? h
		       : EVICT_NONE;
}

uint64_t evict_key(const struct evict_order *o, uint32_t h) { return o->nodes[h].key; }

void evict_hit(struct evict_order *o, uint32_t h)
{
	struct node *n = &o->nodes[h];
	if (n->freq < EVICT_FREQ_MAX)
		n->freq++;
	if (n->st == ST_LIR) {
		bool bottom = o->s.tail == h;
		s_to_head(o, h);
		if (bottom)
			prune(o);
	} else if (n->st == ST_HIR && n->in_s) {
		/* reused within the LIR part's reach: LIR, and the coldest LIR chunk HIR */
		unlink_node(o, &o->q, true, h);
		s_to_head(o, h);
		n->st = ST_LIR;
		o->lir_bytes += n->bytes;
		demote_over(o);
	} else if (n->st == ST_HIR) {
		s_to_head(o, h);
		unlink_node(o, &o->q, true, h);
		push_head(o, &o->q, true, h);
		prune(o);
	}
}

int evict_admit(struct evict_order *o, uint64_t key, uint32_t bytes, enum evict_how how,
		uint32_t *out)
{
	uint32_t h = tab_find(o, key);
	if (h != EVICT_NONE && o->nodes[h].st != ST_GHOST)
		return -EEXIST;
	if (h == EVICT_NONE) {
		int ret = node_new(o, key, bytes, &h);
		if (ret < 0)
			return ret;
	} else {
		struct node *n = &o->nodes[h];
		if (how == EVICT_READ)
			adapt(o, n);
		g_leave(o, h);
		if (n->in_s)
			o->s.bytes -= n->bytes; /* resized: S counts the new size */
		n->bytes = bytes;
		if (n->in_s)
			o->s.bytes += bytes;
		if (bytes > o->unit)
			o->unit = bytes;
	}
	struct node *n = &o->nodes[h];
	n->demoted = false;
	n->freq = 0;
	if (how == EVICT_READ &&
	    (n->in_s || (o->lir_bytes + bytes <= lir_cap(o) && o->q.bytes >= hir_target(o)))) {
		/* a ghost still in S came back within the LIR part's reach, or the LIR part has room
		 * while the HIR part has its share (a cache filling up): were the HIR part short,
		 * the next eviction would have to take an LIR chunk */
		s_to_head(o, h);
		n->st = ST_LIR;
		o->lir_bytes += bytes;
		demote_over(o);
	} else {
		if (how == EVICT_READ)
			s_to_head(o, h);
		n->st = ST_HIR;
		push_head(o, &o->q, true, h);
		prune(o); /* with no LIR chunk yet, S stays empty */
	}
	o->res_bytes += bytes;
	*out = h;
	return 0;
}

int evict_restore(struct evict_order *o, uint64_t key, uint32_t bytes, uint64_t accesses,
		  uint32_t *out)
{
	int ret = evict_admit(o, key, bytes, EVICT_PREFETCH, out);
	if (ret == 0) {
		/* oldest first: each one pushed on top of S; read more than once, it is LIR (the
		 * LIR part over its share then gives up its oldest) */
		s_to_head(o, *out);
		if (accesses > 1)
			evict_hit(o, *out);
		prune(o);
	}
	return ret;
}

uint32_t evict_next(struct evict_order *o, bool hir_only)
{
	if (o->q.tail == EVICT_NONE) {
		if (hir_only || o->s.tail == EVICT_NONE)
			return EVICT_NONE;
		/* nothing HIR (a cache of LIR chunks only, with a floor below the cap or chunks
		 * of several sizes): the coldest LIR chunk goes */
		demote_one(o);
	}
	uint32_t h = o->q.tail;
	struct node *n = &o->nodes[h];
	unlink_node(o, &o->q, true, h);
	o->res_bytes -= n->bytes;
	o->evicted_bytes += n->bytes;
	n->st = ST_GHOST;
	n->left_at = o->evicted_bytes;
	push_head(o, &o->g, true, h);
	o->g_demoted += n->demoted;
	ghost_forget_oldest(o);
	return h;
}

void evict_drop(struct evict_order *o, uint32_t h)
{
	struct node *n = &o->nodes[h];
	if (n->st == ST_LIR)
		o->lir_bytes -= n->bytes;
	else if (n->st == ST_HIR)
		unlink_node(o, &o->q, true, h);
	else
		return;
	o->res_bytes -= n->bytes;
	if (n->in_s)
		s_leave(o, h);
	node_free(o, h);
	prune(o);
}

void evict_get_stats(const struct evict_order *o, struct evict_stats *st)
{
	*st = (struct evict_stats){ .resident_bytes = o->res_bytes, .lir_bytes = o->lir_bytes,
				    .hir_target = o->hir, .nodes = o->used, .ghosts = o->g.n };
}

static int check_list(const struct evict_order *o, const struct list *l, bool q, uint64_t *bytes,
		      uint64_t *n)
{
	uint32_t prev = EVICT_NONE;
	*bytes = *n = 0;
	for (uint32_t h = l->head; h != EVICT_NONE;) {
		const struct node *x = &o->nodes[h];
		if ((q ? x->q_prev : x->s_prev) != prev || ++*n > o->used)
			return -EUCLEAN;
		*bytes += x->bytes;
		prev = h;
		h = q ? x->q_next : x->s_next;
	}
	return prev == l->tail && *bytes == l->bytes && *n == l->n ? 0 : -EUCLEAN;
}

/* Counts the entries chained from buckets [from, to) of t, up to limit; every one must be in
 * use, and in the chain its key's bucket_of names. */
static int check_table(const struct evict_order *o, const uint32_t *t, uint64_t from, uint64_t to,
		       uint64_t limit, uint64_t *n)
{
	for (uint64_t b = from; b < to; b++)
		for (uint32_t l = t[b]; l; l = o->nodes[l - 1].h_next)
			if (l - 1 >= o->top || o->nodes[l - 1].st == ST_FREE ||
			    bucket_of(o, o->nodes[l - 1].key) != &t[b] || ++*n > limit)
				return -EUCLEAN;
	return 0;
}

int evict_check(const struct evict_order *o)
{
	uint64_t b, n, lir = 0, res = 0, hirs = 0, ghosts = 0, dem = 0, ins = 0, used = 0;
	if (check_list(o, &o->s, false, &b, &n) < 0 || check_list(o, &o->q, true, &b, &n) < 0 ||
	    check_list(o, &o->g, true, &b, &n) < 0)
		return -EUCLEAN;
	for (uint32_t h = 0; h < o->top; h++) {
		const struct node *x = &o->nodes[h];
		if (x->st == ST_FREE)
			continue;
		used++;
		if (tab_find(o, x->key) != h)
			return -EUCLEAN;
		ins += x->in_s;
		if (x->st == ST_LIR && !x->in_s)
			return -EUCLEAN;
		if (x->st == ST_LIR)
			lir += x->bytes;
		if (x->st == ST_LIR || x->st == ST_HIR)
			res += x->bytes;
		if (x->st == ST_HIR)
			hirs++;
		ghosts += x->st == ST_GHOST;
		dem += x->st == ST_GHOST && x->demoted;
	}
	if (o->s.tail != EVICT_NONE && o->nodes[o->s.tail].st != ST_LIR)
		return -EUCLEAN;
	uint64_t chained = 0;
	if (check_table(o, o->tab, 0, o->tab_mask + 1, used, &chained) < 0 ||
	    (o->old && check_table(o, o->old, o->moved, o->old_mask + 1, used, &chained) < 0) ||
	    (o->old && o->moved && (o->old[0] || o->old[o->moved - 1])) ||
	    chained != used)
		return -EUCLEAN;
	return used == o->used && lir == o->lir_bytes && res == o->res_bytes && hirs == o->q.n &&
			       ghosts == o->g.n && dem == o->g_demoted && ins == o->s.n &&
			       o->g.bytes <= o->cap * EVICT_GHOSTS_X
		       ? 0
		       : -EUCLEAN;
}

uint64_t evict_want(uint64_t used, uint64_t need, uint64_t cap)
{
	return used + need > cap ? used + need - cap : 0;
}
