/*
 * unit_chunkobj.c - the shared cache's object format (backends/chunkobj.h) driven directly:
 * names that change with every part of a chunk's identity, bodies that round-trip, and every
 * damage caught: a flipped byte anywhere, truncation, extra bytes, another chunk's body, a
 * missing or wrong fleet key.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "chunkobj.h"

static void test_names(void)
{
	struct chunkobj_id a = { "http://127.0.0.1:9000/src", "dir/file", "\"e1\"", 1 << 20, 3 };
	char *n0 = chunkobj_name("fleet/", &a);
	CHECK(n0 && strncmp(n0, "fleet/tierfs-chunks/v1/", 23) == 0);
	CHECK(n0 && strcmp(n0 + strlen(n0) - 2, "/3") == 0);
	char *again = chunkobj_name("fleet/", &a);
	CHECK(again && n0 && strcmp(again, n0) == 0);
	struct chunkobj_id vary[] = {
		{ "http://127.0.0.1:9001/src", "dir/file", "\"e1\"", 1 << 20, 3 },
		{ "http://127.0.0.1:9000/src", "dir/filf", "\"e1\"", 1 << 20, 3 },
		{ "http://127.0.0.1:9000/src", "dir/file", "\"e2\"", 1 << 20, 3 },
		{ "http://127.0.0.1:9000/src", "dir/file", "\"e1\"", 1 << 21, 3 },
		{ "http://127.0.0.1:9000/src", "dir/file", "\"e1\"", 1 << 20, 4 },
		/* the parts are length-prefixed: moving a character from one to the next differs */
		{ "http://127.0.0.1:9000/srcd", "ir/file", "\"e1\"", 1 << 20, 3 },
	};
	for (size_t i = 0; i < sizeof(vary) / sizeof(vary[0]); i++) {
		char *n = chunkobj_name("fleet/", &vary[i]);
		CHECK(n && n0 && strcmp(n, n0) != 0);
		free(n);
	}
	free(again);
	free(n0);
}

static void test_bodies(void)
{
	struct chunkobj_id id = { "http://127.0.0.1:9000/src", "k", "\"etag\"", 65536, 7 };
	static char payload[65536];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)(i * 31 + 7);
	unsigned char kb[] = "0123456789abcdef-fleet";
	struct chunkobj_key key = { kb, sizeof(kb) - 1 }, other = { kb, 16 }, none = { NULL, 0 };
	char *body;
	size_t len;
	const char *p;
	CHECK(chunkobj_encode(&id, payload, sizeof(payload), NULL, &none, &body, &len) == 0);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &none, &p) == 0 &&
	      memcmp(p, payload, sizeof(payload)) == 0);
	/* a keyless object where the fleet asks for a key */
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &key, &p) == -EKEYREJECTED);
	/* every single flipped byte is caught (every 97th, and all of the header) */
	int missed = 0;
	for (size_t i = 0; i < len; i += i < 200 ? 1 : 97) {
		body[i] ^= 0x10;
		missed += chunkobj_verify(&id, body, len, sizeof(payload), &none, &p) != -EBADMSG;
		body[i] ^= 0x10;
	}
	CHECK(missed == 0);
	CHECK(chunkobj_verify(&id, body, len - 1, sizeof(payload), &none, &p) == -EBADMSG);
	CHECK(chunkobj_verify(&id, body, 20, sizeof(payload), &none, &p) == -EBADMSG);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload) - 1, &none, &p) == -EBADMSG);
	/* another chunk's body, under this chunk's name: refused */
	struct chunkobj_id next = id, newer = id;
	next.index = 8;
	newer.etag = "\"etag2\"";
	CHECK(chunkobj_verify(&next, body, len, sizeof(payload), &none, &p) == -EBADMSG);
	CHECK(chunkobj_verify(&newer, body, len, sizeof(payload), &none, &p) == -EBADMSG);
	free(body);

	/* with the fleet key: accepted with it (and by a keyless reader), refused with another */
	uint64_t sum = 0;
	CHECK(chunkobj_encode(&id, payload, sizeof(payload), NULL, &key, &body, &len) == 0);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &key, &p) == 0);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &none, &p) == 0);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &other, &p) == -EKEYREJECTED);
	body[len - 1] ^= 1; /* the trailer itself */
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &key, &p) == -EKEYREJECTED);
	free(body);
	/* a wrong checksum handed in is caught at the first read, like any corruption */
	CHECK(chunkobj_encode(&id, payload, sizeof(payload), &sum, &none, &body, &len) == 0);
	CHECK(chunkobj_verify(&id, body, len, sizeof(payload), &none, &p) == -EBADMSG);
	free(body);
	/* identities longer than the format takes are refused when written */
	char *longkey = malloc(CHUNKOBJ_STR_MAX + 2);
	memset(longkey, 'x', CHUNKOBJ_STR_MAX + 1);
	longkey[CHUNKOBJ_STR_MAX + 1] = '\0';
	struct chunkobj_id lid = id;
	lid.key = longkey;
	CHECK(chunkobj_encode(&lid, payload, 10, NULL, &none, &body, &len) == -ENAMETOOLONG);
	free(longkey);
}

/* A body read in parts, as the shared tier reads it: header, payload in place (its checksum
 * taken as it arrived), trailer.  The same verdicts as a body read whole. */
static void test_parts(void)
{
	struct chunkobj_id id = { "http://127.0.0.1:9000/src", "dir/k", "\"e\"", 4096, 3 };
	static char payload[4096];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)(i * 13 + 1);
	unsigned char kb[] = "0123456789abcdef-fleet";
	struct chunkobj_key key = { kb, sizeof(kb) - 1 }, other = { kb, 16 }, none = { NULL, 0 };
	char *body;
	size_t len, hl = chunkobj_header_len(&id), n = sizeof(payload);
	CHECK(chunkobj_encode(&id, payload, n, NULL, &key, &body, &len) == 0);
	CHECK(len == hl + n + CHUNKOBJ_MAC_LEN);
	char *pl = body + hl, *tail = body + hl + n;
	uint64_t sum = XXH3_64bits(pl, n), bad = sum ^ 1;
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN, &key) == 0);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, NULL, n, tail, CHUNKOBJ_MAC_LEN, &key) == 0);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN, &none) == 0);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN, &other) ==
	      -EKEYREJECTED);
	/* a checksum taken of what arrived that is not the header's */
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &bad, n, tail, CHUNKOBJ_MAC_LEN, &none) ==
	      -EBADMSG);
	/* a flipped payload byte: its checksum as it arrived differs from the header's */
	pl[100] ^= 4;
	uint64_t flipped = XXH3_64bits(pl, n);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &flipped, n, tail, CHUNKOBJ_MAC_LEN,
				    &key) == -EBADMSG);
	pl[100] ^= 4;
	/* short parts: the header, the payload, the trailer */
	CHECK(chunkobj_verify_parts(&id, body, hl - 1, pl, 0, NULL, n, tail, 0, &none) == -EBADMSG);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n - 1, NULL, n, tail, 0, &none) == -EBADMSG);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN - 1,
				    &none) == -EBADMSG);
	/* the trailer flipped: refused with the key, ignored without (the header's sum holds) */
	tail[5] ^= 1;
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN, &key) ==
	      -EKEYREJECTED);
	CHECK(chunkobj_verify_parts(&id, body, hl, pl, n, &sum, n, tail, CHUNKOBJ_MAC_LEN, &none) ==
	      0);
	free(body);
	/* another identity's header is another length, or says another chunk */
	struct chunkobj_id next = id;
	next.index = 4;
	CHECK(chunkobj_encode(&next, payload, n, NULL, &none, &body, &len) == 0);
	CHECK(chunkobj_verify_parts(&id, body, hl, body + hl, n, NULL, n, body + hl + n, 0, &none) ==
	      -EBADMSG);
	free(body);
}

int main(void)
{
	test_names();
	test_bodies();
	test_parts();
	return CHECK_SUMMARY();
}
