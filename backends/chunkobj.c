/*
 * chunkobj.c - a chunk as an object of a shared cache bucket: name, body, verification (see
 * chunkobj.h).
 */
#include "chunkobj.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#define FIXED_LEN 48 /* magic, header length, flags, chunk size, index, length, checksum */

static void put_u16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}
static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void hash_str(XXH3_state_t *st, const char *s)
{
	unsigned char n[4];
	size_t len = strlen(s);
	put_u32(n, (uint32_t)len);
	XXH3_128bits_update(st, n, sizeof(n));
	XXH3_128bits_update(st, s, len);
}

char *chunkobj_name(const char *prefix, const struct chunkobj_id *id)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return NULL;
	XXH3_128bits_reset(st);
	hash_str(st, id->source);
	hash_str(st, id->key);
	hash_str(st, id->etag);
	unsigned char cs[8];
	put_u64(cs, id->chunk_size);
	XXH3_128bits_update(st, cs, sizeof(cs));
	XXH128_hash_t h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	size_t n = strlen(prefix) + 80;
	char *name = malloc(n);
	if (name)
		snprintf(name, n, "%stierfs-chunks/v1/%016llx%016llx/%llu", prefix,
			 (unsigned long long)h.high64, (unsigned long long)h.low64,
			 (unsigned long long)id->index);
	return name;
}

static size_t header_len(const struct chunkobj_id *id)
{
	return FIXED_LEN + 6 + strlen(id->source) + strlen(id->key) + strlen(id->etag);
}

/* HMAC-SHA256 under k of a then b (either may be empty). */
static int mac(const struct chunkobj_key *k, const char *a, size_t an, const char *b, size_t bn,
		unsigned char out[CHUNKOBJ_MAC_LEN])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
				OSSL_PARAM_construct_end() };
	size_t len = 0;
	int ok = ctx && EVP_MAC_init(ctx, k->bytes, k->len, params) &&
		 EVP_MAC_update(ctx, (const unsigned char *)a, an) &&
		 EVP_MAC_update(ctx, (const unsigned char *)b, bn) &&
		 EVP_MAC_final(ctx, out, &len, CHUNKOBJ_MAC_LEN) && len == CHUNKOBJ_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return ok ? 0 : -ENOMEM;
}

int chunkobj_encode(const struct chunkobj_id *id, const char *payload, size_t len,
		    const uint64_t *sum, const struct chunkobj_key *fkey, char **body,
		    size_t *body_len)
{
	const char *strs[3] = { id->source, id->key, id->etag };
	for (int i = 0; i < 3; i++)
		if (strlen(strs[i]) > CHUNKOBJ_STR_MAX)
			return -ENAMETOOLONG;
	bool keyed = fkey && fkey->len;
	size_t hl = header_len(id), total = hl + len + (keyed ? CHUNKOBJ_MAC_LEN : 0);
	unsigned char *b = malloc(total ? total : 1);
	if (!b)
		return -ENOMEM;
	memcpy(b, CHUNKOBJ_MAGIC, 8);
	put_u32(b + 8, (uint32_t)hl);
	put_u32(b + 12, keyed ? CHUNKOBJ_FLAG_MAC : 0);
	put_u64(b + 16, id->chunk_size);
	put_u64(b + 24, id->index);
	put_u64(b + 32, len);
	put_u64(b + 40, sum ? *sum : XXH3_64bits_dispatch(payload, len));
	unsigned char *p = b + FIXED_LEN;
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(strs[i]);
		put_u16(p, (uint16_t)n);
		memcpy(p + 2, strs[i], n);
		p += 2 + n;
	}
	memcpy(b + hl, payload, len);
	if (keyed && mac(fkey, (const char *)b, hl + len, "", 0, b + hl + len) < 0) {
		free(b);
		return -ENOMEM;
	}
	*body = (char *)b;
	*body_len = total;
	return 0;
}

size_t chunkobj_header_len(const struct chunkobj_id *id) { return header_len(id); }


int chunkobj_verify_parts(const struct chunkobj_id *id, const char *hdr, size_t hdr_len,
			  const char *payload, size_t len, const uint64_t *sum, size_t expect_len,
			  const char *tail, size_t tail_len, const struct chunkobj_key *fkey)
{
	const unsigned char *b = (const unsigned char *)hdr;
	if (hdr_len < FIXED_LEN || memcmp(b, CHUNKOBJ_MAGIC, 8) != 0)
		return -EBADMSG;
	size_t hl = get_u32(b + 8);
	uint32_t flags = get_u32(b + 12);
	bool has_mac = flags & CHUNKOBJ_FLAG_MAC;
	if ((flags & ~CHUNKOBJ_FLAG_MAC) || hl != header_len(id) || hl != hdr_len ||
	    get_u64(b + 32) != expect_len || len != expect_len ||
	    tail_len != (has_mac ? CHUNKOBJ_MAC_LEN : 0))
		return -EBADMSG;
	if (get_u64(b + 16) != id->chunk_size || get_u64(b + 24) != id->index)
		return -EBADMSG;
	const char *strs[3] = { id->source, id->key, id->etag };
	const unsigned char *p = b + FIXED_LEN;
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(strs[i]);
		if (get_u16(p) != n || memcmp(p + 2, strs[i], n) != 0)
			return -EBADMSG;
		p += 2 + n;
	}
	if ((sum ? *sum : XXH3_64bits_dispatch(payload, len)) != get_u64(b + 40))
		return -EBADMSG;
	if (fkey && fkey->len) {
		unsigned char want[CHUNKOBJ_MAC_LEN];
		if (!has_mac)
			return -EKEYREJECTED;
		int r = mac(fkey, hdr, hl, payload, len, want);
		if (r < 0)
			return r;
		if (CRYPTO_memcmp(want, tail, CHUNKOBJ_MAC_LEN) != 0)
			return -EKEYREJECTED;
	}
	return 0;
}

int chunkobj_verify(const struct chunkobj_id *id, const char *body, size_t body_len,
		    size_t expect_len, const struct chunkobj_key *fkey, const char **payload)
{
	const unsigned char *b = (const unsigned char *)body;
	if (body_len < FIXED_LEN || memcmp(b, CHUNKOBJ_MAGIC, 8) != 0)
		return -EBADMSG;
	size_t hl = get_u32(b + 8), len = (size_t)get_u64(b + 32);
	if (hl > body_len || len > body_len - hl)
		return -EBADMSG;
	int r = chunkobj_verify_parts(id, body, hl, body + hl, len, NULL, expect_len,
				      body + hl + len, body_len - hl - len, fkey);
	if (r == 0)
		*payload = body + hl;
	return r;
}
