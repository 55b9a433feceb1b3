/*
 * ssd.c - the L2 store: RocksDB index + one sparse slab file of fixed-size slots.  See ssd.h for
 * the layout and the crash-safety argument.
 */
#include "ssd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>

#include "log.h"
#include "util.h"

#define FORMAT_KEY "Fformat"
#define FORMAT_BASE "tierfs-l2-slab " /* + the format's number + " chunk=N" */
#define FORMAT_NUM 2                  /* 1: one checksum per chunk; 2: per block */
#define SLOT_MAGIC 0x43534654u /* "TFSC" */
#define SLOT_VERSION 2u
#define VALUE_VERSION 2u
#define HDR_BLOCK 4096u        /* the header block before each payload */
#define KEY_MAX 2048           /* S3 keys are at most 1024 bytes */
#define ETAG_MAX 256           /* the header's largest: 40 + 2048 + 256 + 128 * 8 + 8 < 4096 */

struct ssd_store {
	char *dir;              /* immutable */
	uint64_t chunk_size;    /* immutable: largest payload */
	uint64_t slot_size;     /* immutable: HDR_BLOCK + chunk_size */
	int lock_fd, slab_fd;
	int direct_fd;          /* the slab opened O_DIRECT for fills, -1 where unsupported */
	int part_fd;            /* the slab for reads of part of a chunk: no readahead */
	size_t block;           /* immutable: ssd_block_size(chunk_size) */
	rocksdb_t *db;          /* thread-safe */
	rocksdb_options_t *opts;
	rocksdb_cache_t *block_cache;   /* the index's block cache, 8 MiB */
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;
	struct ssd_stats stats;

	/* Guards the chunk entries of the index against concurrent change (so that an entry is
	 * deleted only if it still names the slot its deleter saw, and an access update cannot
	 * bring back an entry a removal just deleted) and the slot map below.  Held across one
	 * index read-modify-write and one hole punch at most; never across a slot's data I/O. */
	pthread_mutex_t lock;
	uint8_t *used;          /* per slot: 1 when reserved or named by an index entry */
	uint64_t nslots;        /* slots below the high-water mark */
	uint64_t *free_slots;   /* a stack of free slots below nslots */
	uint64_t nfree, free_cap;
	bool loaded;            /* the map of used slots is complete (ssd_load): until then
				 * new slots are taken past the slab's end at open */
	uint64_t hwm;           /* immutable: the slots the slab file held at open */
	/* Slots freed so far: bumped under lock before a slot is punched or can be reused, read
	 * without it by a reader whose slot failed verification, to tell a slot replaced under
	 * its read (a retry) from a corrupt one (a drop). */
	_Atomic uint64_t frees;
};

/* ---- encoding ---- */

static void put_u16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get_u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void ssd_id_init(struct ssd_id *id, const char *key, const char *etag, uint64_t idx)
{
	XXH128_hash_t kh = XXH3_128bits(key, strlen(key));
	uint64_t eh = XXH3_64bits(etag, strlen(etag));
	id->key = key;
	id->etag = etag;
	id->idx = idx;
	id->ikey[0] = 'c';
	/* big endian, so that the chunks of a key sort together, in index order */
	for (int i = 0; i < 8; i++) {
		id->ikey[1 + i] = (unsigned char)(kh.high64 >> (56 - 8 * i));
		id->ikey[9 + i] = (unsigned char)(kh.low64 >> (56 - 8 * i));
		id->ikey[17 + i] = (unsigned char)(eh >> (56 - 8 * i));
		id->ikey[25 + i] = (unsigned char)(idx >> (56 - 8 * i));
	}
}

/* Index value: version u32, len u32, checksum u64, last_access u64, accesses u64, slot u64,
 * keylen u16, etaglen u16, key, etag. */
#define VALUE_FIXED 44

struct value {
	uint32_t len;
	uint64_t sum, last_access, accesses, slot;
	const char *key, *etag;
	uint16_t keylen, etaglen;
};

static unsigned char *encode_value(const struct ssd_id *id, uint32_t len, uint64_t sum,
				   uint64_t last_access, uint64_t accesses, uint64_t slot,
				   size_t *outlen)
{
	size_t kl = strlen(id->key), el = strlen(id->etag);
	unsigned char *v = malloc(VALUE_FIXED + kl + el);
	if (!v)
		return NULL;
	put_u32(v, VALUE_VERSION);
	put_u32(v + 4, len);
	put_u64(v + 8, sum);
	put_u64(v + 16, last_access);
	put_u64(v + 24, accesses);
	put_u64(v + 32, slot);
	put_u16(v + 40, (uint16_t)kl);
	put_u16(v + 42, (uint16_t)el);
	memcpy(v + VALUE_FIXED, id->key, kl);
	memcpy(v + VALUE_FIXED + kl, id->etag, el);
	*outlen = VALUE_FIXED + kl + el;
	return v;
}

static int decode_value(const unsigned char *v, size_t n, struct value *out)
{
	if (n < VALUE_FIXED || get_u32(v) != VALUE_VERSION)
		return -EINVAL;
	out->len = get_u32(v + 4);
	out->sum = get_u64(v + 8);
	out->last_access = get_u64(v + 16);
	out->accesses = get_u64(v + 24);
	out->slot = get_u64(v + 32);
	out->keylen = get_u16(v + 40);
	out->etaglen = get_u16(v + 42);
	if (n != (size_t)VALUE_FIXED + out->keylen + out->etaglen)
		return -EINVAL;
	out->key = (const char *)v + VALUE_FIXED;
	out->etag = out->key + out->keylen;
	return 0;
}

static uint64_t disk_bytes_of(uint32_t len) { return HDR_BLOCK + ((uint64_t)len + 4095) / 4096 * 4096; }

static void fill_entry(struct ssd_entry *e, const unsigned char *ikey, const struct value *v)
{
	memcpy(e->ikey, ikey, SSD_IKEY_LEN);
	e->len = v->len;
	e->disk_bytes = disk_bytes_of(v->len);
	e->last_access = v->last_access;
	e->accesses = v->accesses;
	e->slot = v->slot;
}

/* Slot header (within the 4 KiB header block): magic u32, version u32, header_len u32,
 * payload_len u32, index u64, root u64, keylen u16, etaglen u16, block size u32, key, etag,
 * the blocks' checksums u64 each, header checksum u64 (of everything before it).  The root is
 * the XXH3-64 of the blocks' checksums: the index entry holds it too, which ties the slot's
 * header to the entry that names it. */
static size_t nblocks(size_t block, size_t len) { return (len + block - 1) / block; }
static size_t header_len(size_t kl, size_t el, size_t nb) { return 40 + kl + el + 8 * nb + 8; }

size_t ssd_block_size(uint64_t chunk_size)
{
	return chunk_size / SSD_MAX_BLOCKS > SSD_BLOCK_MIN ? (size_t)(chunk_size / SSD_MAX_BLOCKS)
							   : SSD_BLOCK_MIN;
}

void ssd_block_sums(uint64_t chunk_size, const char *data, size_t len, uint64_t *out)
{
	size_t b = ssd_block_size(chunk_size);
	/* the dispatching entry point: the same hash, with the widest vector unit this CPU has
	 * (AVX2: 4x the library's default SSE2 path, measured) */
	for (size_t i = 0, off = 0; off < len; i++, off += b)
		out[i] = XXH3_64bits_dispatch(data + off, len - off < b ? len - off : b);
}

static uint64_t root_of(const uint64_t *sums, size_t nb)
{
	return XXH3_64bits(sums, nb * sizeof(*sums));
}

/* ---- index helpers ---- */

static int db_get(struct ssd_store *s, const void *k, size_t kl, char **v, size_t *vl)
{
	char *err = NULL;
	*v = rocksdb_get(s->db, s->ropts, k, kl, vl, &err);
	if (err) {
		tfs_warn("cache: index read failed: %s", err);
		rocksdb_free(err);
		return -EIO;
	}
	return *v ? 0 : -ENOENT;
}

static int db_put(struct ssd_store *s, const void *k, size_t kl, const void *v, size_t vl)
{
	char *err = NULL;
	rocksdb_put(s->db, s->wopts, k, kl, v, vl, &err);
	if (err) {
		tfs_warn("cache: index write failed: %s", err);
		rocksdb_free(err);
		return -EIO;
	}
	return 0;
}

static int db_delete(struct ssd_store *s, const void *k, size_t kl)
{
	char *err = NULL;
	rocksdb_delete(s->db, s->wopts, k, kl, &err);
	if (err) {
		tfs_warn("cache: index delete failed: %s", err);
		rocksdb_free(err);
		return -EIO;
	}
	return 0;
}

/* Calls cb(ctx, key, value) for every index entry of length SSD_IKEY_LEN under prefix. */
static int iterate(struct ssd_store *s, const unsigned char *prefix, size_t plen,
		   int (*cb)(void *ctx, const unsigned char *k, const char *v, size_t vl), void *ctx)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ropts);
	int ret = 0;
	for (rocksdb_iter_seek(it, (const char *)prefix, plen); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl < plen || memcmp(k, prefix, plen) != 0)
			break;
		if (kl != SSD_IKEY_LEN)
			continue;
		const char *v = rocksdb_iter_value(it, &vl);
		if ((ret = cb(ctx, (const unsigned char *)k, v, vl)) != 0)
			break;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	if (err) {
		tfs_warn("cache: index scan failed: %s", err);
		rocksdb_free(err);
		ret = -EIO;
	}
	rocksdb_iter_destroy(it);
	return ret < 0 ? ret : 0;
}

/* ---- slots (s->lock held) ---- */

static int slots_grow(struct ssd_store *s, uint64_t n)
{
	if (n <= s->nslots)
		return 0;
	uint8_t *nu = realloc(s->used, n);
	if (!nu)
		return -ENOMEM;
	memset(nu + s->nslots, 0, n - s->nslots);
	s->used = nu;
	s->nslots = n;
	return 0;
}

static int slot_alloc_locked(struct ssd_store *s, uint64_t *slot)
{
	while (s->loaded && s->nfree) {
		uint64_t x = s->free_slots[--s->nfree];
		if (x < s->nslots && !s->used[x]) {
			s->used[x] = 1;
			*slot = x;
			return 0;
		}
	}
	/* before the map is complete, a slot below hwm may be named by an entry not seen yet */
	uint64_t x = s->nslots > s->hwm ? s->nslots : s->hwm;
	int ret = slots_grow(s, x + 1);
	if (ret < 0)
		return ret;
	s->used[x] = 1;
	*slot = x;
	return 0;
}

static void punch(struct ssd_store *s, uint64_t slot)
{
	if (fallocate(s->slab_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(slot * s->slot_size), (off_t)s->slot_size) < 0 &&
	    errno != EOPNOTSUPP)
		tfs_warn("cache: cannot free slot %llu: %s", (unsigned long long)slot,
			 strerror(errno));
}

static void slot_free_locked(struct ssd_store *s, uint64_t slot)
{
	if (slot >= s->nslots || !s->used[slot])
		return;
	atomic_fetch_add(&s->frees, 1);
	punch(s, slot);
	s->used[slot] = 0;
	if (s->nfree == s->free_cap) {
		uint64_t nc = s->free_cap ? s->free_cap * 2 : 256;
		uint64_t *nf = realloc(s->free_slots, nc * sizeof(*nf));
		if (!nf)
			return; /* the slot is lost until the next start */
		s->free_slots = nf;
		s->free_cap = nc;
	}
	s->free_slots[s->nfree++] = slot;
}

/* Deletes the entry of ikey if it still names slot (or any slot when slot is UINT64_MAX), then
 * frees that slot.  s->lock held. */
static int remove_locked(struct ssd_store *s, const unsigned char *ikey, uint64_t slot)
{
	char *raw;
	size_t n;
	struct value v = { 0 };
	int ret = db_get(s, ikey, SSD_IKEY_LEN, &raw, &n);
	if (ret < 0)
		return ret;
	ret = decode_value((unsigned char *)raw, n, &v);
	rocksdb_free(raw);
	if (ret < 0)
		v.slot = UINT64_MAX; /* unreadable: delete the entry, no slot to free */
	if (ret == 0 && slot != UINT64_MAX && v.slot != slot)
		return -ENOENT; /* refilled meanwhile: not ours to remove */
	if ((ret = db_delete(s, ikey, SSD_IKEY_LEN)) < 0)
		return ret;
	slot_free_locked(s, v.slot);
	return 0;
}

/* ---- open / close ---- */

static int mkdir_p_0700(const char *path)
{
	char *p = strdup(path);
	int ret = 0;
	if (!p)
		return -ENOMEM;
	for (char *q = p + 1;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		char c = *q;
		*q = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			ret = -errno;
		*q = c;
		if (ret || !c)
			break;
	}
	free(p);
	if (ret)
		return ret;
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & 0777) != 0700 && chmod(path, 0700) < 0)
		return -errno;
	return 0;
}

struct load_ctx {
	struct ssd_store *s;
	int (*cb)(void *ctx, const struct ssd_entry *e);
	void *ctx;
	const _Atomic bool *stop;
};

static int load_one(void *arg, const unsigned char *k, const char *v, size_t vl)
{
	struct load_ctx *lc = arg;
	struct ssd_store *s = lc->s;
	struct value val;
	if (decode_value((const unsigned char *)v, vl, &val) < 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	int ret = slots_grow(s, val.slot + 1);
	if (ret == 0)
		s->used[val.slot] = 1;
	pthread_mutex_unlock(&s->lock);
	if (ret == 0 && lc->cb) {
		struct ssd_entry e;
		fill_entry(&e, k, &val);
		ret = lc->cb(lc->ctx, &e);
	}
	if (ret == 0 && lc->stop && atomic_load_explicit(lc->stop, memory_order_relaxed))
		ret = -ECANCELED;
	return ret;
}

int ssd_load(struct ssd_store *s, int (*cb)(void *ctx, const struct ssd_entry *e), void *ctx,
	     const _Atomic bool *stop)
{
	struct load_ctx lc = { s, cb, ctx, stop };
	/* which slots are in use: from the index alone, no data is read */
	int ret = iterate(s, (const unsigned char *)"c", 1, load_one, &lc);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&s->lock);
	if (s->hwm > s->nslots)
		ret = slots_grow(s, s->hwm);
	/* the free slots below the high-water mark (a slot freed meanwhile may be on the stack
	 * twice: the second pop finds it used and skips it) */
	for (uint64_t i = s->nslots; ret == 0 && i-- > 0;) {
		if (s->used[i])
			continue;
		if (s->nfree == s->free_cap) {
			uint64_t nc = s->free_cap ? s->free_cap * 2 : 256;
			uint64_t *nf = realloc(s->free_slots, nc * sizeof(*nf));
			if (!nf) {
				ret = -ENOMEM;
				break;
			}
			s->free_slots = nf;
			s->free_cap = nc;
		}
		s->free_slots[s->nfree++] = i;
	}
	s->loaded = ret == 0;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int drop_all_chunks(struct ssd_store *s)
{
	char *err = NULL;
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	rocksdb_writebatch_delete_range(b, "c", 1, "d", 1);
	rocksdb_write(s->db, s->wopts, b, &err);
	rocksdb_writebatch_destroy(b);
	if (err) {
		rocksdb_free(err);
		return -EIO;
	}
	if (ftruncate(s->slab_fd, 0) < 0)
		return -errno;
	return 0;
}

static int open_store(const char *dir, uint64_t chunk_size, bool deferred,
		      struct ssd_store **out)
{
	struct ssd_store *s = calloc(1, sizeof(*s));
	char path[4096], *err = NULL, format[96];
	int ret;

	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->chunk_size = chunk_size;
	s->slot_size = HDR_BLOCK + chunk_size;
	s->block = ssd_block_size(chunk_size);
	s->lock_fd = s->slab_fd = s->direct_fd = s->part_fd = -1;
	snprintf(format, sizeof(format), "%s%d chunk=%llu", FORMAT_BASE, FORMAT_NUM,
		 (unsigned long long)chunk_size);
	if ((ret = mkdir_p_0700(dir)) < 0) {
		tfs_err("cache: cannot create '%s': %s", dir, strerror(-ret));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/lock", dir);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (ret == -EBUSY)
			tfs_err("cache: '%s' is in use by another tierfs (give each mount its own "
				"cache_dir=)", dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/slab", dir);
	s->slab_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->slab_fd < 0) {
		ret = -errno;
		goto fail;
	}
	/* Fills and a stream's reads of whole chunks (ssd_get_direct) bypass the page cache: no
	 * copy into it and out of it, CPU that a read on a small machine needs elsewhere, and no
	 * second copy of what the mount's own page cache holds (docs/L2-LAYOUT.md). */
	s->direct_fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	/* Reads of part of a chunk (a header, some blocks) go through the page cache, but without
	 * the kernel's readahead, which would read the rest of the chunk too. */
	if ((s->part_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		ret = -errno;
		goto fail;
	}
	posix_fadvise(s->part_fd, 0, 0, POSIX_FADV_RANDOM);

	s->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(s->opts, 1);
	rocksdb_options_increase_parallelism(s->opts, 2);
	rocksdb_options_set_max_open_files(s->opts, 256);
	rocksdb_options_set_keep_log_file_num(s->opts, 2);
	rocksdb_options_set_info_log_level(s->opts, 3 /* ERROR */);
	/* A Bloom filter of the keys of each table file (10 bits a key: 1 % false positives), so
	 * that a lookup of what the index does not hold (a file's persisted attributes, for every
	 * entry of a listing) reads no block. */
	rocksdb_block_based_table_options_t *table = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_filter_policy(table,
						      rocksdb_filterpolicy_create_bloom_full(10));
	/* The index's memory, bounded and stated (README, "Memory"): a block cache of 8 MiB and
	 * at most two memtables of 8 MiB (RocksDB's default memtable is 64 MiB). */
	s->block_cache = rocksdb_cache_create_lru(8u << 20);
	rocksdb_block_based_options_set_block_cache(table, s->block_cache);
	rocksdb_options_set_block_based_table_factory(s->opts, table);
	rocksdb_block_based_options_destroy(table);
	rocksdb_options_set_write_buffer_size(s->opts, 8u << 20);
	rocksdb_options_set_max_write_buffer_number(s->opts, 2);
	s->ropts = rocksdb_readoptions_create();
	s->wopts = rocksdb_writeoptions_create();
	snprintf(path, sizeof(path), "%s/index", dir);
	s->db = rocksdb_open(s->opts, path, &err);
	if (!s->db) {
		tfs_err("cache: cannot open the index in '%s': %s", path, err ? err : "?");
		rocksdb_free(err);
		ret = -EIO;
		goto fail;
	}
	char *fmt;
	size_t vlen;
	ret = db_get(s, FORMAT_KEY, strlen(FORMAT_KEY), &fmt, &vlen);
	if (ret == -EIO)
		goto fail;
	if (ret == 0) {
		bool same = vlen == strlen(format) && memcmp(fmt, format, vlen) == 0;
		size_t bl = strlen(FORMAT_BASE);
		int num = 0;
		if (vlen > bl && vlen < 64 && memcmp(fmt, FORMAT_BASE, bl) == 0) {
			char nb[64];
			memcpy(nb, fmt + bl, vlen - bl);
			nb[vlen - bl] = '\0';
			num = atoi(nb);
		}
		rocksdb_free(fmt);
		if (num < 1 || num > FORMAT_NUM) {
			tfs_err("cache: '%s' holds an unknown cache format; remove it or use "
				"another cache_dir=", dir);
			ret = -EPROTO;
			goto fail;
		}
		if (num != FORMAT_NUM) {
			/* format 1 checked whole chunks only: its slots cannot serve a part */
			tfs_info("cache: '%s' holds cache format %d (a checksum per chunk); emptying "
				 "it for format %d (a checksum per block): its chunks will be "
				 "fetched again", dir, num, FORMAT_NUM);
			if ((ret = drop_all_chunks(s)) < 0)
				goto fail;
		} else if (!same) {
			tfs_info("cache: '%s' was made for another chunk size; emptying it", dir);
			if ((ret = drop_all_chunks(s)) < 0)
				goto fail;
		}
	}
	if ((ret = db_put(s, FORMAT_KEY, strlen(FORMAT_KEY), format, strlen(format))) < 0)
		goto fail;

	struct stat st;
	if (fstat(s->slab_fd, &st) == 0)
		s->hwm = ((uint64_t)st.st_size + s->slot_size - 1) / s->slot_size;
	if (!deferred && (ret = ssd_load(s, NULL, NULL, NULL)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	ssd_close(s);
	return ret;
}

int ssd_open(const char *dir, uint64_t chunk_size, struct ssd_store **out)
{
	return open_store(dir, chunk_size, false, out);
}

int ssd_open_deferred(const char *dir, uint64_t chunk_size, struct ssd_store **out)
{
	return open_store(dir, chunk_size, true, out);
}

void ssd_close(struct ssd_store *s)
{
	if (!s)
		return;
	if (s->db) {
		/* the memtables to disk now, so that the next start has no log to replay (a
		 * replay of a million chunks' entries would hold up the mount for seconds) */
		rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
		char *err = NULL;
		rocksdb_flushoptions_set_wait(fo, 1);
		rocksdb_flush(s->db, fo, &err);
		if (err) {
			tfs_warn("cache: cannot flush the index: %s", err);
			rocksdb_free(err);
		}
		rocksdb_flushoptions_destroy(fo);
		rocksdb_close(s->db);
	}
	if (s->opts)
		rocksdb_options_destroy(s->opts);
	if (s->block_cache)
		rocksdb_cache_destroy(s->block_cache);
	if (s->ropts)
		rocksdb_readoptions_destroy(s->ropts);
	if (s->wopts)
		rocksdb_writeoptions_destroy(s->wopts);
	if (s->slab_fd >= 0)
		close(s->slab_fd);
	if (s->direct_fd >= 0)
		close(s->direct_fd);
	if (s->part_fd >= 0)
		close(s->part_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	pthread_mutex_destroy(&s->lock);
	free(s->used);
	free(s->free_slots);
	free(s->dir);
	free(s);
}

const struct ssd_stats *ssd_stats(const struct ssd_store *s) { return &s->stats; }

void ssd_reset_stats(struct ssd_store *s)
{
	s->stats.checksum_failures = 0;
	s->stats.write_errors = 0;
	s->stats.orphans_reclaimed = 0;
}
const char *ssd_dir(const struct ssd_store *s) { return s->dir; }

uint64_t ssd_disk_bytes(struct ssd_store *s)
{
	struct stat st;
	return fstat(s->slab_fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* ---- chunks ---- */

/* Whether a slot's header block is a header at all (magic, format, a length that fits, its own
 * checksum), whatever chunk it names: NULL, or why not; *hl gets its length. */
static const char *header_sound(const unsigned char *hdr, size_t *hl)
{
	size_t n = get_u32(hdr + 8);
	if (get_u32(hdr) != SLOT_MAGIC || get_u32(hdr + 4) != SLOT_VERSION ||
	    n < header_len(0, 0, 0) || n > HDR_BLOCK)
		return "bad header";
	if (XXH3_64bits(hdr, n - 8) != get_u64(hdr + n - 8))
		return "header checksum";
	*hl = n;
	return NULL;
}

/* Checks a slot's header block against the entry v of id: NULL when they agree, else why not;
 * *sums gets where the blocks' checksums are in hdr. */
static const char *verify_header(const struct ssd_store *s, const struct ssd_id *id,
				 const struct value *v, const unsigned char *hdr,
				 const unsigned char **sums)
{
	size_t kl = strlen(id->key), el = strlen(id->etag), nb = nblocks(s->block, v->len);
	size_t hl = 0;
	const char *why = header_sound(hdr, &hl);
	if (why)
		return why;
	if (hl != header_len(kl, el, nb))
		return "bad header";
	if (get_u32(hdr + 12) != v->len || get_u64(hdr + 16) != id->idx ||
	    get_u16(hdr + 32) != kl || get_u16(hdr + 34) != el || get_u32(hdr + 36) != s->block ||
	    memcmp(hdr + 40, id->key, kl) != 0 || memcmp(hdr + 40 + kl, id->etag, el) != 0)
		return "slot holds another chunk";
	*sums = hdr + 40 + kl + el;
	if (get_u64(hdr + 24) != v->sum || XXH3_64bits(*sums, 8 * nb) != v->sum)
		return "slot holds another version of the chunk";
	return NULL;
}

/* Checks blocks b0..b1 of a payload of len bytes against their checksums; data holds them,
 * from block b0's first byte. */
static const char *verify_blocks(const struct ssd_store *s, const unsigned char *sums,
				 size_t len, size_t b0, size_t b1, const char *data)
{
	for (size_t b = b0; b <= b1 && b * s->block < len; b++) {
		size_t off = b * s->block, n = len - off < s->block ? len - off : s->block;
		if (XXH3_64bits_dispatch(data + (off - b0 * s->block), n) != get_u64(sums + 8 * b))
			return "payload checksum";
	}
	return NULL;
}

/* The entry of id, when it is id's and its payload fits: 0, else -ENOENT (another chunk's entry
 * under the same digest, or an unreadable one: a miss) or -EIO. */
static int lookup(struct ssd_store *s, const struct ssd_id *id, struct value *v,
		  struct ssd_entry *e)
{
	char *raw = NULL;
	size_t rawlen;
	int ret = db_get(s, id->ikey, SSD_IKEY_LEN, &raw, &rawlen);
	if (ret < 0)
		return ret;
	size_t kl = strlen(id->key), el = strlen(id->etag);
	if (decode_value((unsigned char *)raw, rawlen, v) < 0 || v->keylen != kl ||
	    v->etaglen != el || memcmp(v->key, id->key, kl) != 0 ||
	    memcmp(v->etag, id->etag, el) != 0 || v->len > s->chunk_size)
		ret = -ENOENT;
	else if (e)
		fill_entry(e, id->ikey, v);
	v->key = v->etag = NULL; /* they pointed into raw */
	rocksdb_free(raw);
	return ret;
}

/* A chunk whose slot failed verification: counted, logged and removed (if its entry still names
 * that slot).  Returns -ENOENT, a miss: the chunk will be fetched again. */
static int drop_bad(struct ssd_store *s, const struct ssd_id *id, uint64_t slot, const char *why)
{
	char kbuf[200];
	atomic_fetch_add_explicit(&s->stats.checksum_failures, 1, memory_order_relaxed);
	tfs_warn("cache: dropping chunk %llu of '%s' (%s): it will be fetched again",
		 (unsigned long long)id->idx, tfs_printable(id->key, kbuf, sizeof(kbuf)), why);
	pthread_mutex_lock(&s->lock);
	remove_locked(s, id->ikey, slot);
	pthread_mutex_unlock(&s->lock);
	return -ENOENT;
}

#define READ_ATTEMPTS 4

/* A read of slot v->slot for id failed verification (why), on its attempt-th try, which
 * began when s->frees was gen (and after the slot's cached pages were dropped when dropped).
 * Returns 1 to read again, -ENOENT (the slot was bad: the chunk is dropped, a miss) or -EAGAIN
 * (slots kept changing under the reads: a miss, the chunk left as it is).
 *
 * Not every failure is a corrupt slot: a slot freed meanwhile may be the one read, punched or
 * refilled under the read (its chunk replaced or evicted); and pages a buffered read cached
 * while an O_DIRECT fill wrote the slot may be stale (the kernel's coherence of the two is
 * best effort).  So the slot's cached pages are dropped and it is read again; it is dropped
 * only when a read that began after that, with no slot freed during it, fails too. */
static int read_failed(struct ssd_store *s, const struct ssd_id *id, const struct value *v,
		       const char *why, uint64_t gen, int attempt, bool *dropped)
{
	char kbuf[200];
	bool raced = atomic_load(&s->frees) != gen;
	if (!raced && *dropped)
		return drop_bad(s, id, v->slot, why);
	if (attempt + 1 >= READ_ATTEMPTS) { /* slots keep changing: a miss, not a verdict */
		tfs_debug("cache: chunk %llu of '%s' (%s) changed under %d reads: a miss",
			  (unsigned long long)id->idx, tfs_printable(id->key, kbuf, sizeof(kbuf)),
			  why, READ_ATTEMPTS);
		return -EAGAIN;
	}
	posix_fadvise(s->slab_fd, (off_t)(v->slot * s->slot_size), (off_t)s->slot_size,
		      POSIX_FADV_DONTNEED);
	*dropped = true;
	return 1;
}

/* Reads what a caller wants of the slot of id's entry v and checks it: NULL, or why the slot
 * failed; or sets *done to a result decided without a read (0, or -errno). */
typedef const char *(*slot_reader)(struct ssd_store *s, const struct ssd_id *id,
				   const struct value *v, void *ctx, int *done);

/* Looks id up and reads its slot with rd, again while read_failed says the failure may have
 * been a race. */
static int read_checked(struct ssd_store *s, const struct ssd_id *id, struct ssd_entry *e,
			slot_reader rd, void *ctx)
{
	bool dropped = false;
	for (int attempt = 0;; attempt++) {
		struct value v;
		uint64_t gen = atomic_load(&s->frees);
		int ret = lookup(s, id, &v, e);
		if (ret < 0)
			return ret;
		int done = 1;
		const char *why = rd(s, id, &v, ctx, &done);
		if (done != 1)
			return done;
		if (!why)
			return 0;
		if ((ret = read_failed(s, id, &v, why, gen, attempt, &dropped)) != 1)
			return ret;
	}
}

struct whole_read {
	char *buf;
	size_t cap, *len;
	bool direct;
};

static const char *read_whole(struct ssd_store *s, const struct ssd_id *id,
			      const struct value *v, void *ctx, int *done)
{
	struct whole_read *w = ctx;
	if (v->len > w->cap) {
		*done = -EINVAL;
		return NULL;
	}
	unsigned char hdr[HDR_BLOCK] __attribute__((aligned(4096)));
	const unsigned char *sums = NULL;
	struct iovec iov[2] = { { hdr, HDR_BLOCK }, { w->buf, v->len } };
	/* O_DIRECT needs aligned memory and lengths: chunk buffers are page-aligned, and every
	 * payload but an object's last is a whole number of pages */
	bool direct = w->direct && s->direct_fd >= 0 && ((uintptr_t)w->buf & 4095) == 0 &&
		      (v->len & 4095) == 0;
	ssize_t n = preadv(direct ? s->direct_fd : s->slab_fd, iov, 2,
			   (off_t)(v->slot * s->slot_size));
	if (n < 0 && errno == EINVAL && direct) /* the file system refused it */
		n = preadv(s->slab_fd, iov, 2, (off_t)(v->slot * s->slot_size));
	const char *why = n < 0				  ? "read error"
			  : (size_t)n != HDR_BLOCK + v->len ? "short slot"
							    : verify_header(s, id, v, hdr, &sums);
	if (!why)
		why = verify_blocks(s, sums, v->len, 0, SIZE_MAX, w->buf);
	if (!why)
		*w->len = v->len;
	return why;
}

int ssd_get(struct ssd_store *s, const struct ssd_id *id, char *buf, size_t cap, size_t *len,
	    struct ssd_entry *e)
{
	struct whole_read w = { buf, cap, len, false };
	return read_checked(s, id, e, read_whole, &w);
}

int ssd_get_direct(struct ssd_store *s, const struct ssd_id *id, char *buf, size_t cap,
		   size_t *len, struct ssd_entry *e)
{
	struct whole_read w = { buf, cap, len, true };
	return read_checked(s, id, e, read_whole, &w);
}

struct part_read {
	uint64_t off;
	size_t len;
	char *buf;
	size_t *got;
};

static const char *read_part(struct ssd_store *s, const struct ssd_id *id,
			     const struct value *v, void *ctx, int *done)
{
	struct part_read *p = ctx;
	if (p->off >= v->len || p->len == 0) {
		*done = 0;
		return NULL;
	}
	size_t n = p->len > v->len - p->off ? (size_t)(v->len - p->off) : p->len;
	size_t b0 = (size_t)p->off / s->block, b1 = ((size_t)p->off + n - 1) / s->block;
	size_t from = b0 * s->block, want = (b1 + 1) * s->block;
	if (want > v->len)
		want = v->len;
	want -= from;
	char *blocks = malloc(want);
	if (!blocks) {
		*done = -ENOMEM;
		return NULL;
	}
	/* The header, then the blocks: both through the page cache (docs/L2-LAYOUT.md: 1.5 times
	 * the reads per second of O_DIRECT, measured), where a hot chunk's header stays. */
	unsigned char hdr[HDR_BLOCK];
	const unsigned char *sums = NULL;
	off_t at = (off_t)(v->slot * s->slot_size);
	ssize_t nh = pread(s->part_fd, hdr, HDR_BLOCK, at), nb = -1;
	if (nh == HDR_BLOCK)
		nb = pread(s->part_fd, blocks, want, at + HDR_BLOCK + (off_t)from);
	const char *why = nh < 0 || nb < 0			 ? "read error"
			  : nh != HDR_BLOCK || (size_t)nb < want ? "short slot"
								 : verify_header(s, id, v, hdr, &sums);
	if (!why)
		why = verify_blocks(s, sums, v->len, b0, b1, blocks);
	if (!why) {
		memcpy(p->buf, blocks + (p->off - from), n);
		*p->got = n;
	}
	free(blocks);
	return why;
}

int ssd_read_part(struct ssd_store *s, const struct ssd_id *id, uint64_t off, size_t len,
		  char *buf, size_t *got, struct ssd_entry *e)
{
	struct part_read p = { off, len, buf, got };
	*got = 0;
	return read_checked(s, id, e, read_part, &p);
}

void ssd_will_read(struct ssd_store *s, const struct ssd_id *ids, size_t n)
{
	if (s->direct_fd >= 0)
		return; /* runs are read with ssd_get_direct: the page cache is not theirs */
	for (size_t i = 0; i < n; i++) {
		char *raw;
		size_t rawlen;
		struct value v;
		if (db_get(s, ids[i].ikey, SSD_IKEY_LEN, &raw, &rawlen) < 0)
			continue;
		if (decode_value((unsigned char *)raw, rawlen, &v) == 0)
			posix_fadvise(s->slab_fd, (off_t)(v.slot * s->slot_size),
				      (off_t)(HDR_BLOCK + v.len), POSIX_FADV_WILLNEED);
		rocksdb_free(raw);
	}
}

int ssd_put(struct ssd_store *s, const struct ssd_id *id, const char *data, size_t len,
	    const uint64_t *sums_in, uint64_t last_access, uint64_t accesses, struct ssd_entry *e)
{
	size_t kl = strlen(id->key), el = strlen(id->etag), vlen, nb = nblocks(s->block, len);
	if (kl > KEY_MAX || el > ETAG_MAX || len > s->chunk_size)
		return -EINVAL;
	size_t hl = header_len(kl, el, nb);
	uint64_t sums[SSD_MAX_BLOCKS], slot;
	if (!sums_in) {
		ssd_block_sums(s->chunk_size, data, len, sums);
		sums_in = sums;
	}
	uint64_t root = root_of(sums_in, nb);
	unsigned char hdr[HDR_BLOCK] __attribute__((aligned(4096)));
	int ret;

	memset(hdr, 0, sizeof(hdr));
	put_u32(hdr, SLOT_MAGIC);
	put_u32(hdr + 4, SLOT_VERSION);
	put_u32(hdr + 8, (uint32_t)hl);
	put_u32(hdr + 12, (uint32_t)len);
	put_u64(hdr + 16, id->idx);
	put_u64(hdr + 24, root);
	put_u16(hdr + 32, (uint16_t)kl);
	put_u16(hdr + 34, (uint16_t)el);
	put_u32(hdr + 36, (uint32_t)s->block);
	memcpy(hdr + 40, id->key, kl);
	memcpy(hdr + 40 + kl, id->etag, el);
	memcpy(hdr + 40 + kl + el, sums_in, 8 * nb);
	put_u64(hdr + hl - 8, XXH3_64bits(hdr, hl - 8));

	pthread_mutex_lock(&s->lock);
	ret = slot_alloc_locked(s, &slot);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	unsigned char *val = encode_value(id, (uint32_t)len, root, last_access, accesses, slot,
					  &vlen);
	if (!val) {
		ret = -ENOMEM;
		goto fail_slot;
	}

	/* 1. the slot, header and payload (nothing names it yet) */
	struct iovec iov[2] = { { hdr, HDR_BLOCK }, { (void *)data, len } };
	size_t want = HDR_BLOCK + len, done = 0;
	/* O_DIRECT needs block-aligned memory and lengths: chunk buffers are page-aligned, and
	 * every payload but an object's last is a whole number of pages */
	int fd = s->direct_fd >= 0 && ((uintptr_t)data & 4095) == 0 && (len & 4095) == 0
			 ? s->direct_fd : s->slab_fd;
	while (done < want) {
		ssize_t n = pwritev(fd, iov, 2, (off_t)(slot * s->slot_size + done));
		if (n < 0 && errno == EINVAL && fd != s->slab_fd) {
			fd = s->slab_fd; /* the file system refused this direct write */
			continue;
		}
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			goto fail_slot;
		}
		done += (size_t)n;
		size_t skip = (size_t)n;
		for (int i = 0; i < 2 && skip; i++) {
			size_t t = skip < iov[i].iov_len ? skip : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + t;
			iov[i].iov_len -= t;
			skip -= t;
		}
	}
	/* 2. the index names it; an entry it replaces gives its slot back */
	pthread_mutex_lock(&s->lock);
	char *old;
	size_t oldlen;
	struct value ov;
	bool had_old = db_get(s, id->ikey, SSD_IKEY_LEN, &old, &oldlen) == 0;
	if (had_old) {
		had_old = decode_value((unsigned char *)old, oldlen, &ov) == 0;
		rocksdb_free(old);
	}
	ret = db_put(s, id->ikey, SSD_IKEY_LEN, val, vlen);
	if (ret == 0 && had_old && ov.slot != slot)
		slot_free_locked(s, ov.slot);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		goto fail_slot;
	if (e) {
		struct value nv = { .len = (uint32_t)len, .last_access = last_access,
				    .accesses = accesses, .slot = slot };
		fill_entry(e, id->ikey, &nv);
	}
	free(val);
	return 0;
fail_slot:
	free(val);
	atomic_fetch_add_explicit(&s->stats.write_errors, 1, memory_order_relaxed);
	pthread_mutex_lock(&s->lock);
	slot_free_locked(s, slot);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int ssd_touch(struct ssd_store *s, const unsigned char ikey[SSD_IKEY_LEN], uint64_t last_access,
	      uint64_t accesses)
{
	char *raw;
	size_t n;
	struct value v;
	pthread_mutex_lock(&s->lock);
	int ret = db_get(s, ikey, SSD_IKEY_LEN, &raw, &n);
	if (ret == 0) {
		if (decode_value((unsigned char *)raw, n, &v) == 0) {
			put_u64((unsigned char *)raw + 16, last_access);
			put_u64((unsigned char *)raw + 24, accesses);
			ret = db_put(s, ikey, SSD_IKEY_LEN, raw, n);
		}
		rocksdb_free(raw);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int ssd_remove(struct ssd_store *s, const unsigned char ikey[SSD_IKEY_LEN])
{
	pthread_mutex_lock(&s->lock);
	int ret = remove_locked(s, ikey, UINT64_MAX);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int ssd_remove_slot(struct ssd_store *s, uint64_t slot,
		    bool (*match)(void *ctx, const unsigned char ikey[SSD_IKEY_LEN]), void *ctx)
{
	unsigned char hdr[HDR_BLOCK];
	size_t hl = 0, kl = 0, el = 0;
	for (int attempt = 0;; attempt++) { /* (a second time without cached pages: read_failed) */
		if (pread(s->part_fd, hdr, HDR_BLOCK, (off_t)(slot * s->slot_size)) == HDR_BLOCK &&
		    !header_sound(hdr, &hl)) {
			kl = get_u16(hdr + 32), el = get_u16(hdr + 34);
			if (kl <= KEY_MAX && el <= ETAG_MAX && header_len(kl, el, 0) <= hl)
				break;
		}
		if (attempt == 1)
			return -ENOENT; /* free (a hole), being written, or bad: names no chunk */
		posix_fadvise(s->slab_fd, (off_t)(slot * s->slot_size), HDR_BLOCK,
			      POSIX_FADV_DONTNEED);
	}
	char key[KEY_MAX + 1], etag[ETAG_MAX + 1];
	memcpy(key, hdr + 40, kl);
	key[kl] = '\0';
	memcpy(etag, hdr + 40 + kl, el);
	etag[el] = '\0';
	struct ssd_id id;
	ssd_id_init(&id, key, etag, get_u64(hdr + 16));
	if (!match(ctx, id.ikey))
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	int ret = remove_locked(s, id.ikey, slot); /* only if its entry names this slot */
	pthread_mutex_unlock(&s->lock);
	return ret;
}

struct foreach_ctx {
	int (*cb)(void *ctx, const struct ssd_entry *e);
	void *ctx;
};

static int foreach_one(void *arg, const unsigned char *k, const char *v, size_t vl)
{
	struct foreach_ctx *f = arg;
	struct value val;
	struct ssd_entry e;
	if (decode_value((const unsigned char *)v, vl, &val) < 0)
		return 0;
	fill_entry(&e, k, &val);
	return f->cb(f->ctx, &e);
}

int ssd_foreach(struct ssd_store *s, int (*cb)(void *ctx, const struct ssd_entry *e), void *ctx)
{
	struct foreach_ctx f = { cb, ctx };
	return iterate(s, (const unsigned char *)"c", 1, foreach_one, &f);
}

struct versions_ctx {
	const unsigned char *keep; /* the ETag digest to keep, 8 bytes */
	struct ssd_entry *entries;
	size_t n, cap;
};

static int versions_one(void *arg, const unsigned char *k, const char *v, size_t vl)
{
	struct versions_ctx *x = arg;
	struct value val;
	if (memcmp(k + 17, x->keep, 8) == 0)
		return 0;
	if (x->n == x->cap) {
		size_t nc = x->cap ? 2 * x->cap : 16;
		struct ssd_entry *ne = realloc(x->entries, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		x->entries = ne;
		x->cap = nc;
	}
	if (decode_value((const unsigned char *)v, vl, &val) < 0)
		memset(&val, 0, sizeof(val));
	fill_entry(&x->entries[x->n++], k, &val);
	return 0;
}

int ssd_remove_other_versions(struct ssd_store *s, const char *key, const char *keep_etag,
			      void (*cb)(void *ctx, const struct ssd_entry *e), void *ctx)
{
	struct ssd_id keep;
	ssd_id_init(&keep, key, keep_etag, 0);
	struct versions_ctx x = { .keep = keep.ikey + 17 };
	/* collect first, then remove: no writes under the iterator */
	int ret = iterate(s, keep.ikey, 17, versions_one, &x);
	for (size_t i = 0; i < x.n; i++)
		if (ssd_remove(s, x.entries[i].ikey) == 0 && cb)
			cb(ctx, &x.entries[i]);
	free(x.entries);
	return ret;
}

struct match_ctx {
	bool (*match)(void *ctx, const char *key);
	void *ctx;
	struct ssd_entry *entries;
	size_t n, cap;
};

static int match_one(void *arg, const unsigned char *k, const char *v, size_t vl)
{
	struct match_ctx *m = arg;
	struct value val;
	if (decode_value((const unsigned char *)v, vl, &val) < 0)
		return 0;
	char *key = strndup(val.key, val.keylen);
	if (!key)
		return -ENOMEM;
	bool yes = m->match(m->ctx, key);
	free(key);
	if (!yes)
		return 0;
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		struct ssd_entry *ne = realloc(m->entries, nc * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		m->entries = ne;
		m->cap = nc;
	}
	fill_entry(&m->entries[m->n++], k, &val);
	return 0;
}

struct meta_match {
	bool (*match)(void *ctx, const char *key);
	void *ctx;
	char **names;
	size_t n, cap;
};

static int meta_match_one(void *arg, const char *name, const void *val, size_t len)
{
	struct meta_match *m = arg;
	if (!m->match(m->ctx, name))
		return 0;
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		char **nn = realloc(m->names, nc * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		m->names = nn;
		m->cap = nc;
	}
	if (!(m->names[m->n] = strdup(name)))
		return -ENOMEM;
	m->n++;
	(void)val;
	(void)len;
	return 0;
}

long ssd_remove_matching(struct ssd_store *s, bool (*match)(void *ctx, const char *key),
			 void *ctx, const char *nss, void (*cb)(void *cb_ctx, const struct ssd_entry *e),
			 void *cb_ctx)
{
	struct match_ctx m = { .match = match, .ctx = ctx };
	int ret = iterate(s, (const unsigned char *)"c", 1, match_one, &m);
	long n = 0;
	for (size_t i = 0; i < m.n; i++)
		if (ssd_remove(s, m.entries[i].ikey) == 0) {
			n++;
			if (cb)
				cb(cb_ctx, &m.entries[i]);
		}
	free(m.entries);
	for (const char *ns = nss; ns && *ns; ns++)
		ssd_meta_remove_matching(s, *ns, match, ctx);
	return ret < 0 ? ret : n;
}

void ssd_meta_remove_matching(struct ssd_store *s, char ns,
			      bool (*match)(void *ctx, const char *name), void *ctx)
{
	struct meta_match mm = { .match = match, .ctx = ctx };
	ssd_meta_foreach(s, ns, meta_match_one, &mm); /* collect first: no writes under it */
	for (size_t i = 0; i < mm.n; i++) {
		ssd_meta_delete(s, ns, mm.names[i]);
		free(mm.names[i]);
	}
	free(mm.names);
}

struct check_ctx {
	struct ssd_store *s;
	char *buf;
	uint64_t ok, bad;
};

static int check_one(void *arg, const unsigned char *k, const char *v, size_t vl)
{
	struct check_ctx *c = arg;
	struct value val;
	unsigned char hdr[HDR_BLOCK];
	const unsigned char *sums = NULL;
	if (decode_value((const unsigned char *)v, vl, &val) < 0 || val.len > c->s->chunk_size) {
		c->bad++;
		return 0;
	}
	char *key = strndup(val.key, val.keylen), *etag = strndup(val.etag, val.etaglen);
	uint64_t idx = 0;
	for (int i = 0; i < 8; i++)
		idx = idx << 8 | k[25 + i];
	struct ssd_id id;
	bool good = false;
	if (key && etag) {
		struct iovec iov[2] = { { hdr, HDR_BLOCK }, { c->buf, val.len } };
		ssd_id_init(&id, key, etag, idx);
		good = memcmp(id.ikey, k, SSD_IKEY_LEN) == 0 &&
		       preadv(c->s->slab_fd, iov, 2, (off_t)(val.slot * c->s->slot_size)) ==
			       (ssize_t)(HDR_BLOCK + val.len) &&
		       verify_header(c->s, &id, &val, hdr, &sums) == NULL &&
		       verify_blocks(c->s, sums, val.len, 0, SIZE_MAX, c->buf) == NULL;
	}
	free(key);
	free(etag);
	if (good)
		c->ok++;
	else
		c->bad++;
	return 0;
}

int ssd_check(struct ssd_store *s, uint64_t *ok, uint64_t *bad)
{
	struct check_ctx c = { .s = s, .buf = malloc(s->chunk_size ? s->chunk_size : 1) };
	if (!c.buf)
		return -ENOMEM;
	int ret = iterate(s, (const unsigned char *)"c", 1, check_one, &c);
	free(c.buf);
	*ok = c.ok;
	*bad = c.bad;
	return ret;
}

long ssd_reclaim_orphans(struct ssd_store *s, const _Atomic bool *stop)
{
	long reclaimed = 0;
	off_t pos = 0;
	pthread_mutex_lock(&s->lock);
	bool loaded = s->loaded;
	pthread_mutex_unlock(&s->lock);
	if (!loaded)
		return -EAGAIN; /* a slot not marked yet may be named by the index */
	/* Walk the data regions of the slab; free slots holding data were left by a crash. */
	for (;;) {
		if (stop && *stop)
			break;
		off_t data = lseek(s->slab_fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: no data past pos */
		off_t hole = lseek(s->slab_fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		uint64_t first = (uint64_t)data / s->slot_size;
		uint64_t last = ((uint64_t)hole - 1) / s->slot_size;
		for (uint64_t i = first; i <= last; i++) {
			pthread_mutex_lock(&s->lock);
			if (i >= s->nslots || !s->used[i]) {
				punch(s, i);
				reclaimed++;
			}
			pthread_mutex_unlock(&s->lock);
		}
		pos = (off_t)((last + 1) * s->slot_size);
	}
	atomic_fetch_add_explicit(&s->stats.orphans_reclaimed, (uint64_t)reclaimed,
				  memory_order_relaxed);
	return reclaimed;
}

/* ---- metadata records ---- */

static char *meta_key(char ns, const char *name, size_t *len)
{
	size_t n = strlen(name);
	char *k = malloc(n + 1);
	if (!k)
		return NULL;
	k[0] = ns;
	memcpy(k + 1, name, n);
	*len = n + 1;
	return k;
}

int ssd_meta_put(struct ssd_store *s, char ns, const char *name, const void *val, size_t len)
{
	size_t kl;
	char *k = meta_key(ns, name, &kl);
	if (!k)
		return -ENOMEM;
	int ret = db_put(s, k, kl, val, len);
	free(k);
	return ret;
}

int ssd_meta_get(struct ssd_store *s, char ns, const char *name, void **val, size_t *len)
{
	size_t kl;
	char *k = meta_key(ns, name, &kl), *v;
	if (!k)
		return -ENOMEM;
	int ret = db_get(s, k, kl, &v, len);
	free(k);
	if (ret < 0)
		return ret;
	*val = malloc(*len ? *len : 1);
	if (*val)
		memcpy(*val, v, *len);
	rocksdb_free(v);
	return *val ? 0 : -ENOMEM;
}

int ssd_meta_delete(struct ssd_store *s, char ns, const char *name)
{
	size_t kl;
	char *k = meta_key(ns, name, &kl);
	if (!k)
		return -ENOMEM;
	int ret = db_delete(s, k, kl);
	free(k);
	return ret;
}

int ssd_meta_foreach(struct ssd_store *s, char ns,
		     int (*cb)(void *ctx, const char *name, const void *val, size_t len), void *ctx)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ropts);
	int ret = 0;
	for (rocksdb_iter_seek(it, &ns, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		if (kl < 1 || k[0] != ns)
			break;
		const char *v = rocksdb_iter_value(it, &vl);
		char *name = strndup(k + 1, kl - 1);
		if (!name) {
			ret = -ENOMEM;
			break;
		}
		ret = cb(ctx, name, v, vl);
		free(name);
		if (ret)
			break;
	}
	rocksdb_iter_destroy(it);
	return ret < 0 ? ret : 0;
}

int ssd_fs_space(struct ssd_store *s, uint64_t *free_bytes, uint64_t *total_bytes)
{
	struct statvfs sv;
	if (fstatvfs(s->slab_fd, &sv) < 0)
		return -errno;
	*free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	*total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}
