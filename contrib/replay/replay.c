/*
 * tierfs-replay - replays a cache trace against L2's eviction order and reference policies.
 *
 *   tierfs-replay [--chunk-size SIZE] [--sizes 0.01,0.05,0.1,0.25] [--policy NAME,...|all]
 *                 [--check] TRACE.csv[.zst]
 *
 * The trace: CSV lines time_us,key,offset,size (a header line is skipped), byte-range reads as
 * a mount sees them.  A request touches chunks offset / chunk_size .. (offset + size - 1) /
 * chunk_size of its key, each one access, in order.  Cache sizes are fractions of the trace's
 * working set (the distinct chunks), at least one chunk.  Output, one line per policy and size:
 *
 *   POLICY<TAB>FRACTION<TAB>CACHE_CHUNKS<TAB>MISS_RATIO
 *
 * Policies: tierfs (L2's order, policy/evict.h: the same functions the daemon runs, called as
 * l2.c calls them), lru, arc, s3fifo, sieve, 2q, lirs, belady (the offline optimum).  --check
 * verifies the tierfs order's invariants (evict_check) after every access: slow, for tests.
 * The references follow their papers (ARC: Megiddo and Modha 2003; S3-FIFO: Yang et al. 2023,
 * 10 % small queue, ghost as large as the main one, 2-bit counters; SIEVE: Zhang et al. 2024;
 * 2Q: Johnson and Shasha 1994, 25 % A1in, A1out as large as half the cache; LIRS: Jiang and
 * Zhang 2002, 1 % HIR).  Every cache holds
 * whole chunks and counts them, as L2 does with chunks of one size.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evict.h"
#include "util.h"

/* ---- the trace: dense chunk ids, one per distinct (key, chunk) ---- */

struct trace {
	uint32_t *id;               /* per access */
	size_t n, cap;
	size_t nids;                /* the working set */
};

struct idmap {
	uint64_t *hash;             /* 0: free */
	uint32_t *val;
	size_t cap, n;
};

static uint32_t idmap_get(struct idmap *m, uint64_t h, size_t *nids)
{
	if (h == 0)
		h = 1;
	if (m->n * 2 >= m->cap) {
		struct idmap g = { .cap = m->cap ? m->cap * 2 : 1 << 16 };
		g.hash = calloc(g.cap, sizeof(*g.hash));
		g.val = calloc(g.cap, sizeof(*g.val));
		if (!g.hash || !g.val) {
			fprintf(stderr, "tierfs-replay: out of memory\n");
			exit(1);
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->hash[i]) {
				size_t j = m->hash[i] & (g.cap - 1);
				while (g.hash[j])
					j = (j + 1) & (g.cap - 1);
				g.hash[j] = m->hash[i];
				g.val[j] = m->val[i];
			}
		g.n = m->n;
		free(m->hash);
		free(m->val);
		*m = g;
	}
	size_t j = h & (m->cap - 1);
	while (m->hash[j] && m->hash[j] != h)
		j = (j + 1) & (m->cap - 1);
	if (!m->hash[j]) {
		m->hash[j] = h;
		m->val[j] = (uint32_t)(*nids)++;
		m->n++;
	}
	return m->val[j];
}

static void trace_add(struct trace *tr, uint32_t id)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap ? tr->cap * 2 : 1 << 16;
		tr->id = realloc(tr->id, tr->cap * sizeof(*tr->id));
		if (!tr->id) {
			fprintf(stderr, "tierfs-replay: out of memory\n");
			exit(1);
		}
	}
	tr->id[tr->n++] = id;
}

/* The trace file, through zstd -dc for a .zst (no shell: the name is an argument). */
static FILE *open_trace(const char *path, pid_t *child)
{
	size_t n = strlen(path);
	*child = 0;
	if (n < 4 || strcmp(path + n - 4, ".zst") != 0)
		return fopen(path, "r");
	int fds[2];
	if (pipe(fds) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid < 0)
		return NULL;
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("zstd", "zstd", "-dcq", "--", path, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	*child = pid;
	return fdopen(fds[0], "r");
}

static int read_trace(const char *path, uint64_t chunk, struct trace *tr)
{
	pid_t child;
	FILE *f = open_trace(path, &child);
	if (!f) {
		fprintf(stderr, "tierfs-replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct idmap m = { 0 };
	char line[4096];
	size_t lineno = 0, bad = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL,
		     *c3 = c2 ? strchr(c2 + 1, ',') : NULL;
		char *e1, *e2, *e3;
		if (!c3) {
			bad += lineno > 1;
			continue;
		}
		errno = 0;
		double us = strtod(line, &e1);
		uint64_t off = strtoull(c2 + 1, &e2, 10), size = strtoull(c3 + 1, &e3, 10);
		if (errno || e1 != c1 || e2 != c3 || e3 == c3 + 1 || (*e3 && !strchr("\r\n", *e3)) ||
		    !(us >= 0)) {
			bad += lineno > 1; /* the first line may be the header */
			continue;
		}
		uint64_t kh = tfs_hash64(c1 + 1, (size_t)(c2 - c1 - 1), 77);
		uint64_t last = size ? (off + size - 1) / chunk : off / chunk;
		for (uint64_t ci = off / chunk; ci <= last; ci++)
			trace_add(tr, idmap_get(&m, tfs_hash64(&ci, sizeof(ci), kh), &tr->nids));
	}
	fclose(f);
	free(m.hash);
	free(m.val);
	if (child) {
		int st;
		waitpid(child, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "tierfs-replay: zstd could not read %s\n", path);
			return -1;
		}
	}
	if (bad)
		fprintf(stderr, "tierfs-replay: %zu malformed lines skipped\n", bad);
	if (tr->n == 0) {
		fprintf(stderr, "tierfs-replay: %s holds no requests\n", path);
		return -1;
	}
	return 0;
}

/* ---- lists of ids: a doubly linked list over arrays indexed by id ---- */

#define NIL UINT32_MAX

struct dlist {
	uint32_t head, tail, n;     /* head: most recent */
};

struct links {
	uint32_t *prev, *next;
	uint8_t *where;             /* which list an id is in (0: none) */
};

static void links_init(struct links *L, size_t n)
{
	L->prev = malloc(n * sizeof(*L->prev));
	L->next = malloc(n * sizeof(*L->next));
	L->where = calloc(n, 1);
	if (!L->prev || !L->next || !L->where) {
		fprintf(stderr, "tierfs-replay: out of memory\n");
		exit(1);
	}
}

static void links_free(struct links *L)
{
	free(L->prev);
	free(L->next);
	free(L->where);
}

static void dl_init(struct dlist *d) { d->head = d->tail = NIL, d->n = 0; }

static void dl_push_head(struct links *L, struct dlist *d, uint8_t tag, uint32_t x)
{
	L->prev[x] = NIL;
	L->next[x] = d->head;
	if (d->head != NIL)
		L->prev[d->head] = x;
	d->head = x;
	if (d->tail == NIL)
		d->tail = x;
	d->n++;
	L->where[x] = tag;
}

static void dl_remove(struct links *L, struct dlist *d, uint32_t x)
{
	if (L->prev[x] != NIL)
		L->next[L->prev[x]] = L->next[x];
	else
		d->head = L->next[x];
	if (L->next[x] != NIL)
		L->prev[L->next[x]] = L->prev[x];
	else
		d->tail = L->prev[x];
	d->n--;
	L->where[x] = 0;
}

static uint32_t dl_pop_tail(struct links *L, struct dlist *d)
{
	uint32_t x = d->tail;
	if (x != NIL)
		dl_remove(L, d, x);
	return x;
}

/* ---- the policies: each returns the misses of the whole trace at cap chunks ---- */

static uint64_t run_lru(const struct trace *tr, size_t cap)
{
	struct links L;
	struct dlist q;
	uint64_t miss = 0;
	links_init(&L, tr->nids);
	dl_init(&q);
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		if (L.where[x]) {
			dl_remove(&L, &q, x);
		} else {
			miss++;
			if (q.n >= cap)
				dl_pop_tail(&L, &q);
		}
		dl_push_head(&L, &q, 1, x);
	}
	links_free(&L);
	return miss;
}

/* A miss whose id was in ghost (a list of evicted ids) enters main; any other enters fresh. */
static void admit(struct links *L, uint32_t x, struct dlist *ghost, struct dlist *main_q,
		  uint8_t main_tag, struct dlist *fresh, uint8_t fresh_tag, bool was_ghost)
{
	if (was_ghost) {
		dl_remove(L, ghost, x);
		dl_push_head(L, main_q, main_tag, x);
	} else {
		dl_push_head(L, fresh, fresh_tag, x);
	}
}

enum { T1 = 1, T2, B1, B2 };

/* ARC's REPLACE: the LRU page of T1 to B1 when T1 is over its target p (or at it, for a hit in
 * B2), else the LRU page of T2 to B2. */
static void arc_replace(struct links *L, struct dlist *t1, struct dlist *t2, struct dlist *b1,
			struct dlist *b2, double p, bool in_b2)
{
	if (t1->n > 0 && ((double)t1->n > p || (in_b2 && (double)t1->n == p)))
		dl_push_head(L, b1, B1, dl_pop_tail(L, t1));
	else if (t2->n > 0)
		dl_push_head(L, b2, B2, dl_pop_tail(L, t2));
	else
		dl_push_head(L, b1, B1, dl_pop_tail(L, t1));
}

/* ARC, as in the paper's figure 4 (c = cap, p the target size of T1). */
static uint64_t run_arc(const struct trace *tr, size_t cap)
{
	struct links L;
	struct dlist t1, t2, b1, b2;
	double p = 0;
	uint64_t miss = 0;
	links_init(&L, tr->nids);
	dl_init(&t1), dl_init(&t2), dl_init(&b1), dl_init(&b2);
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		uint8_t w = L.where[x];
		if (w == T1 || w == T2) {
			dl_remove(&L, w == T1 ? &t1 : &t2, x);
			dl_push_head(&L, &t2, T2, x);
			continue;
		}
		miss++;
		if (w == B1 || w == B2) {
			if (w == B1)
				p = fmin((double)cap, p + fmax(1.0, (double)b2.n / (double)b1.n));
			else
				p = fmax(0.0, p - fmax(1.0, (double)b1.n / (double)b2.n));
			arc_replace(&L, &t1, &t2, &b1, &b2, p, w == B2);
			dl_remove(&L, w == B1 ? &b1 : &b2, x);
			dl_push_head(&L, &t2, T2, x);
			continue;
		}
		/* not in any list */
		if (t1.n + b1.n == cap) {
			if (t1.n < cap) {
				dl_pop_tail(&L, &b1);
				arc_replace(&L, &t1, &t2, &b1, &b2, p, false);
			} else {
				dl_pop_tail(&L, &t1);
			}
		} else if (t1.n + b1.n < cap && t1.n + t2.n + b1.n + b2.n >= cap) {
			if (t1.n + t2.n + b1.n + b2.n == 2 * cap)
				dl_pop_tail(&L, &b2);
			if (t1.n + t2.n >= cap)
				arc_replace(&L, &t1, &t2, &b1, &b2, p, false);
		}
		dl_push_head(&L, &t1, T1, x);
	}
	links_free(&L);
	return miss;
}

/* S3-FIFO: small FIFO S (10 %), main FIFO M, ghost G (ids only, as many as M holds). */
static uint64_t run_s3fifo(const struct trace *tr, size_t cap)
{
	enum { S = 1, M, G };
	struct links L;
	struct dlist s, m, g;
	uint8_t *freq = calloc(tr->nids, 1);
	size_t scap = cap / 10 ? cap / 10 : 1, mcap = cap > scap ? cap - scap : 1;
	uint64_t miss = 0;
	links_init(&L, tr->nids);
	dl_init(&s), dl_init(&m), dl_init(&g);
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		uint8_t w = L.where[x];
		if (w == S || w == M) {
			if (freq[x] < 3)
				freq[x]++;
			continue;
		}
		miss++;
		/* room: evict until S + M has space for one */
		while (s.n + m.n >= cap) {
			if (s.n >= scap || m.n == 0) {
				uint32_t t = dl_pop_tail(&L, &s);
				if (freq[t] > 1) {
					freq[t] = 0;
					dl_push_head(&L, &m, M, t);
				} else {
					dl_push_head(&L, &g, G, t);
					if (g.n > mcap)
						dl_pop_tail(&L, &g);
				}
			} else {
				uint32_t t = dl_pop_tail(&L, &m);
				if (freq[t] > 0) {
					freq[t]--;
					dl_push_head(&L, &m, M, t);
				} /* else gone */
			}
		}
		freq[x] = 0;
		admit(&L, x, &g, &m, M, &s, S, w == G);
	}
	links_free(&L);
	free(freq);
	return miss;
}

/* SIEVE: one FIFO, a visited bit, a hand that moves from the tail towards the head. */
static uint64_t run_sieve(const struct trace *tr, size_t cap)
{
	struct links L;
	struct dlist q;
	uint8_t *visited = calloc(tr->nids, 1);
	uint32_t hand = NIL;
	uint64_t miss = 0;
	links_init(&L, tr->nids);
	dl_init(&q);
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		if (L.where[x]) {
			visited[x] = 1;
			continue;
		}
		miss++;
		if (q.n >= cap) {
			uint32_t o = hand != NIL ? hand : q.tail;
			while (visited[o]) {
				visited[o] = 0;
				o = L.prev[o] != NIL ? L.prev[o] : q.tail;
			}
			hand = L.prev[o];
			dl_remove(&L, &q, o);
		}
		visited[x] = 0;
		dl_push_head(&L, &q, 1, x);
	}
	links_free(&L);
	free(visited);
	return miss;
}

/* 2Q (full version): A1in FIFO (25 %), A1out ghost (half the cache), Am LRU. */
static uint64_t run_2q(const struct trace *tr, size_t cap)
{
	enum { AIN = 1, AM, AOUT };
	struct links L;
	struct dlist ain, am, aout;
	size_t kin = cap / 4 ? cap / 4 : 1, kout = cap / 2 ? cap / 2 : 1;
	uint64_t miss = 0;
	links_init(&L, tr->nids);
	dl_init(&ain), dl_init(&am), dl_init(&aout);
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		uint8_t w = L.where[x];
		if (w == AM) {
			dl_remove(&L, &am, x);
			dl_push_head(&L, &am, AM, x);
			continue;
		}
		if (w == AIN)
			continue;
		miss++;
		if (ain.n + am.n >= cap) {
			if (ain.n > kin || am.n == 0) {
				dl_push_head(&L, &aout, AOUT, dl_pop_tail(&L, &ain));
				if (aout.n > kout)
					dl_pop_tail(&L, &aout);
			} else {
				dl_pop_tail(&L, &am);
			}
		}
		admit(&L, x, &aout, &am, AM, &ain, AIN, w == AOUT);
	}
	links_free(&L);
	return miss;
}

/* Belady's MIN: evict the chunk whose next use is farthest (a max-heap with stale entries
 * skipped: an entry is current while its next use is the chunk's). */
struct hent {
	size_t next;
	uint32_t id;
};

static void heap_push(struct hent *h, size_t *n, struct hent e)
{
	size_t i = (*n)++;
	while (i && h[(i - 1) / 2].next < e.next) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static struct hent heap_pop(struct hent *h, size_t *n)
{
	struct hent top = h[0], last = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1].next > h[c].next)
			c++;
		if (h[c].next <= last.next)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

static uint64_t run_belady(const struct trace *tr, size_t cap)
{
	size_t *next = malloc(tr->n * sizeof(*next)), *seen = malloc(tr->nids * sizeof(*seen));
	size_t *cur = malloc(tr->nids * sizeof(*cur));
	uint8_t *in = calloc(tr->nids, 1);
	struct hent *h = malloc((tr->n + 1) * sizeof(*h));
	size_t hn = 0, held = 0;
	uint64_t miss = 0;
	if (!next || !seen || !cur || !in || !h) {
		fprintf(stderr, "tierfs-replay: out of memory\n");
		exit(1);
	}
	for (size_t k = 0; k < tr->nids; k++)
		seen[k] = SIZE_MAX; /* never again */
	for (size_t i = tr->n; i-- > 0;) {
		next[i] = seen[tr->id[i]];
		seen[tr->id[i]] = i;
	}
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		if (!in[x]) {
			miss++;
			if (held >= cap) {
				for (;;) {
					struct hent e = heap_pop(h, &hn);
					if (in[e.id] && cur[e.id] == e.next) {
						in[e.id] = 0;
						held--;
						break;
					}
				}
			}
			in[x] = 1;
			held++;
		}
		cur[x] = next[i];
		heap_push(h, &hn, (struct hent){ next[i], x });
	}
	free(next);
	free(seen);
	free(cur);
	free(in);
	free(h);
	return miss;
}

/* tierfs: L2's order (policy/evict.h), driven as l2.c drives it: a hit is evict_hit, a miss
 * makes room with evict_next for evict_want's bytes, then evict_admit.  Sizes in bytes, as the
 * daemon counts them: a slot is a 4 KiB header and the chunk. */
static uint64_t slot_bytes;
static bool check_order;        /* --check: evict_check after every access (slow; for tests) */

static uint64_t run_tierfs(const struct trace *tr, size_t cap)
{
	struct evict_order *o;
	uint64_t miss = 0, used = 0, cap_bytes = (uint64_t)cap * slot_bytes;
	if (evict_new(cap_bytes, &o) < 0) {
		fprintf(stderr, "tierfs-replay: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < tr->n; i++) {
		uint64_t key = tfs_hash64(&tr->id[i], sizeof(tr->id[i]), 0);
		uint32_t h = evict_find(o, key);
		if (h != EVICT_NONE) {
			evict_hit(o, h);
			continue;
		}
		miss++;
		for (uint64_t want = evict_want(used, slot_bytes, cap_bytes), freed = 0; freed < want;
		     freed += slot_bytes) {
			if (evict_next(o, false) == EVICT_NONE)
				break;
			used -= slot_bytes;
		}
		if (evict_admit(o, key, (uint32_t)slot_bytes, EVICT_READ, &h) < 0) {
			fprintf(stderr, "tierfs-replay: out of memory\n");
			exit(1);
		}
		used += slot_bytes;
		if (check_order && evict_check(o) < 0) {
			fprintf(stderr, "tierfs-replay: the order's invariants fail at access %zu\n", i);
			exit(3);
		}
	}
	evict_free(o);
	return miss;
}

/* LIRS (Jiang and Zhang 2002): the stack S holds the LIR chunks and the recently seen HIR
 * ones, resident or not; the queue Q the resident HIR chunks, 1 % of the cache.  A HIR chunk
 * seen again while still in S becomes LIR, and the LIR chunk at the bottom of S becomes HIR;
 * S is pruned so that its bottom is LIR, and holds at most 3x the cache of non-resident
 * entries. */
enum { L_NONE, L_LIR, L_HIR, L_GHOST };

/* The resident HIR part is fixed at 1 % (the paper's); tierfs's order (policy/evict.c) is
 * LIRS with that part adapting, frequency second chances and bounded ghosts. */
struct lirs {
	struct links Ls, Lq;
	struct dlist S, Q;
	uint8_t *state;
	size_t cap, lcap, nlir, nres;
};

static void lirs_evict_q(struct lirs *a)
{
	uint32_t v = dl_pop_tail(&a->Lq, &a->Q);
	if (v == NIL)
		return;
	a->state[v] = a->Ls.where[v] ? L_GHOST : L_NONE;
	a->nres--;
}

/* S's bottom is LIR again: the HIR entries below the lowest LIR one leave it. */
static void lirs_prune(struct lirs *a)
{
	while (a->S.tail != NIL && a->state[a->S.tail] != L_LIR) {
		uint32_t b = dl_pop_tail(&a->Ls, &a->S);
		if (a->state[b] == L_GHOST)
			a->state[b] = L_NONE;
	}
}

static uint64_t run_lirs(const struct trace *tr, size_t cap)
{
	struct lirs a = { .cap = cap };
	a.state = calloc(tr->nids, 1);
	if (!a.state) {
		fprintf(stderr, "tierfs-replay: out of memory\n");
		exit(1);
	}
	links_init(&a.Ls, tr->nids);
	links_init(&a.Lq, tr->nids);
	dl_init(&a.S), dl_init(&a.Q);
	size_t h = cap / 100 ? cap / 100 : 1, slimit = 3 * cap + 16;
	uint64_t miss = 0;
	a.lcap = cap > h ? cap - h : 1;
	for (size_t i = 0; i < tr->n; i++) {
		uint32_t x = tr->id[i];
		bool in_s = a.Ls.where[x];
		uint8_t st = a.state[x];
		if (st == L_LIR) {
			dl_remove(&a.Ls, &a.S, x);
			dl_push_head(&a.Ls, &a.S, 1, x);
		} else if (st == L_HIR && !in_s) {
			dl_push_head(&a.Ls, &a.S, 1, x);
			dl_remove(&a.Lq, &a.Q, x);
			dl_push_head(&a.Lq, &a.Q, 1, x);
		} else if (st == L_HIR || st == L_GHOST) {
			/* seen again while in S: LIR */
			if (st == L_GHOST) {
				miss++;
				if (a.nres >= cap)
					lirs_evict_q(&a);
				a.nres++;
			} else {
				dl_remove(&a.Lq, &a.Q, x);
			}
			dl_remove(&a.Ls, &a.S, x);
			dl_push_head(&a.Ls, &a.S, 1, x);
			a.state[x] = L_LIR;
			a.nlir++;
		} else {
			miss++;
			if (a.nres >= cap)
				lirs_evict_q(&a);
			a.nres++;
			a.state[x] = a.nlir < a.lcap ? L_LIR : L_HIR;
			if (in_s)
				dl_remove(&a.Ls, &a.S, x);
			dl_push_head(&a.Ls, &a.S, 1, x);
			if (a.state[x] == L_LIR)
				a.nlir++;
			else
				dl_push_head(&a.Lq, &a.Q, 1, x);
			for (uint32_t y = a.S.tail; y != NIL && a.S.n > slimit;) {
				uint32_t up = a.Ls.prev[y];
				if (a.state[y] == L_GHOST) {
					dl_remove(&a.Ls, &a.S, y);
					a.state[y] = L_NONE;
				}
				y = up;
			}
		}
		/* too many LIR (after a hit): the bottom ones become resident HIR */
		while (a.S.tail != NIL && a.state[a.S.tail] == L_LIR && a.nlir > a.lcap) {
			uint32_t b = a.S.tail;
			dl_remove(&a.Ls, &a.S, b);
			a.state[b] = L_HIR;
			a.nlir--;
			dl_push_head(&a.Lq, &a.Q, 1, b);
			lirs_prune(&a);
		}
		lirs_prune(&a);
		while (a.nres > cap && a.Q.n)
			lirs_evict_q(&a);
	}
	links_free(&a.Ls);
	links_free(&a.Lq);
	free(a.state);
	return miss;
}

static const struct {
	const char *name;
	uint64_t (*run)(const struct trace *, size_t);
} policies[] = {
	{ "tierfs", run_tierfs }, { "lru", run_lru },	  { "arc", run_arc },
	{ "s3fifo", run_s3fifo }, { "sieve", run_sieve }, { "2q", run_2q },
	{ "lirs", run_lirs },	  { "belady", run_belady },
};
#define NPOL (sizeof(policies) / sizeof(policies[0]))

static int usage(void)
{
	fprintf(stderr, "usage: tierfs-replay [--chunk-size SIZE] [--sizes 0.01,0.05,0.1,0.25] "
			"[--policy NAME,...|all] [--check] TRACE.csv[.zst]\npolicies:");
	for (size_t k = 0; k < NPOL; k++)
		fprintf(stderr, " %s", policies[k].name);
	fprintf(stderr, "\n");
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t chunk = 1 << 20;
	const char *sizes = "0.01,0.05,0.1,0.25", *pols = "all", *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--chunk-size") == 0 && i + 1 < argc) {
			if (tfs_parse_size(argv[++i], &chunk) < 0 || chunk == 0) {
				fprintf(stderr, "tierfs-replay: bad --chunk-size '%s'\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			sizes = argv[++i];
		} else if (strcmp(argv[i], "--check") == 0) {
			check_order = true;
		} else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			pols = argv[++i];
		} else if (argv[i][0] == '-' || path) {
			return usage();
		} else {
			path = argv[i];
		}
	}
	if (!path)
		return usage();
	bool want[NPOL] = { 0 };
	char *pl = strdup(pols), *save = NULL;
	for (char *tok = strtok_r(pl, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool found = strcmp(tok, "all") == 0;
		for (size_t k = 0; k < NPOL; k++)
			if (found && strcmp(tok, "all") == 0)
				want[k] = true;
			else if (strcmp(tok, policies[k].name) == 0)
				want[k] = found = true;
		if (!found) {
			fprintf(stderr, "tierfs-replay: unknown policy '%s'\n", tok);
			free(pl);
			return usage();
		}
	}
	free(pl);
	double fr[64];
	size_t nfr = 0;
	char *sl = strdup(sizes);
	for (char *tok = strtok_r(sl, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		double v = strtod(tok, &end);
		if (*end || !(v > 0 && v <= 1) || nfr == 64) {
			fprintf(stderr, "tierfs-replay: bad size '%s' (a fraction in (0, 1])\n", tok);
			free(sl);
			return 2;
		}
		fr[nfr++] = v;
	}
	free(sl);
	slot_bytes = 4096 + (chunk + 4095) / 4096 * 4096;
	struct trace tr = { 0 };
	if (read_trace(path, chunk, &tr) < 0)
		return 1;
	fprintf(stderr, "tierfs-replay: %zu accesses, working set %zu chunks of %" PRIu64 " bytes\n",
		tr.n, tr.nids, chunk);
	for (size_t k = 0; k < NPOL; k++) {
		if (!want[k])
			continue;
		for (size_t s = 0; s < nfr; s++) {
			size_t cap = (size_t)llround(fr[s] * (double)tr.nids);
			if (cap < 1)
				cap = 1;
			uint64_t miss = policies[k].run(&tr, cap);
			printf("%s\t%g\t%zu\t%.6f\n", policies[k].name, fr[s], cap,
			       (double)miss / (double)tr.n);
			fflush(stdout);
		}
	}
	free(tr.id);
	return 0;
}
