/*
 * chunkobj.h - a chunk stored as an object of its own, in a shared cache bucket that many
 * machines read and write (policy/shared.c): its name and its body.  Pure functions: no I/O,
 * no locks, thread-safe.
 *
 * Identity: a chunk is (source, key, ETag, chunk size, index), where source names the bucket it
 * comes from (endpoint and bucket).  The object's name is derived from all of it:
 *
 *   PREFIX "tierfs-chunks/v1/" H128(source, key, ETag, chunk size) "/" INDEX
 *
 * (H128: XXH3-128, in hex), so that the chunks of one version sit under one name and another
 * version's never share a name.  A hash names; it does not vouch: the body carries the full
 * identity, compared on every read, so a collision of names is a miss, never wrong data.
 *
 * Body: a header, the payload, and an optional trailer:
 *   magic "TFSCHNK1"; u32 header length (bytes before the payload); u32 flags (bit 0: trailer);
 *   u64 chunk size; u64 index; u64 payload length; u64 XXH3-64 of the payload;
 *   u16 length + bytes of source, key and ETag;
 *   the payload;
 *   with a fleet key, a trailer of 32 bytes: HMAC-SHA256 under the key of everything before it.
 * Integers are little endian.
 *
 * Functions return 0 or -errno.
 */
#ifndef TIERFS_CHUNKOBJ_H
#define TIERFS_CHUNKOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNKOBJ_MAGIC "TFSCHNK1"
#define CHUNKOBJ_MAC_LEN 32
#define CHUNKOBJ_FLAG_MAC 0x1u
#define CHUNKOBJ_STR_MAX 1024 /* source, key, ETag: at most this long each */
#define CHUNKOBJ_HDR_MAX (48 + 3 * (2 + CHUNKOBJ_STR_MAX))

struct chunkobj_id {
	const char *source;     /* "ENDPOINT/BUCKET" of the source */
	const char *key;
	const char *etag;
	uint64_t chunk_size;
	uint64_t index;
};

/* The fleet key: NULL/0 for none. */
struct chunkobj_key {
	const unsigned char *bytes;
	size_t len;
};

/* The object's name under prefix ("" or ending in '/'); malloc'ed, NULL when out of memory. */
char *chunkobj_name(const char *prefix, const struct chunkobj_id *id);

/* The whole body for payload (len bytes): *body malloc'ed (caller frees), *body_len its size.
 * sum: the payload's XXH3-64 when the caller has it, else NULL.  -ENAMETOOLONG when an
 * identity string is over CHUNKOBJ_STR_MAX, -ENOMEM. */
int chunkobj_encode(const struct chunkobj_id *id, const char *payload, size_t len,
		    const uint64_t *sum, const struct chunkobj_key *fkey, char **body,
		    size_t *body_len);

/* Checks a body read back: ours, of this very identity, payload of expect_len bytes whose
 * checksum holds, and (with a fleet key) a trailer that proves it was written with that key.
 * On success *payload points into body.  -EBADMSG: corrupt, truncated, another format or
 * another chunk; -EKEYREJECTED: no trailer, or a wrong one, where a fleet key is required. */
int chunkobj_verify(const struct chunkobj_id *id, const char *body, size_t body_len,
		    size_t expect_len, const struct chunkobj_key *fkey, const char **payload);

/* The header's length for this identity: where the payload starts. */
size_t chunkobj_header_len(const struct chunkobj_id *id);

/* The same checks on a body read in parts, so that the payload can be read straight into its
 * place: the header (hdr_len bytes received where chunkobj_header_len said it ends), the
 * payload (len bytes received; sum: its XXH3-64 taken as it arrived, or NULL), and what
 * followed it (tail_len bytes: the trailer, or nothing). */
int chunkobj_verify_parts(const struct chunkobj_id *id, const char *hdr, size_t hdr_len,
			  const char *payload, size_t len, const uint64_t *sum, size_t expect_len,
			  const char *tail, size_t tail_len, const struct chunkobj_key *fkey);

#endif
