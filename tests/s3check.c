/*
 * s3check.c - drives the S3 client (backends/s3.h) directly against a live server, to check its
 * contract request by request: HEAD, whole and ranged GET, scattered GET, If-None-Match (304),
 * If-Match (-ESTALE), 404 -> -ENOENT, wrong keys -> -EACCES, paged and delimited listings.
 *
 * usage: s3check ENDPOINT BUCKET        (run by tests/test_s3client.py, which seeds BUCKET with
 *   obj.bin = bytes(i % 251) for 300000 bytes, and p/k00 .. p/k19, and p/sub/x)
 * Prints "N passed, N failed"; exit status 1 on any failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "log.h"
#include "s3.h"

#define OBJ_SIZE 300000


static int pattern_ok(const char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] != (off + i) % 251)
			return 0;
	return 1;
}

static struct s3_client *client(const char *endpoint, const char *bucket, const char *ak,
				const char *sk)
{
	struct s3_config cfg = {
		.endpoint = (char *)endpoint, .region = (char *)"us-east-1", .bucket = (char *)bucket,
		.access_key = (char *)ak, .secret_key = (char *)sk,
		.session_token = getenv("AWS_SESSION_TOKEN"),
		.timeout_ms = 10000, .max_retries = 2,
	};
	int err;
	struct s3_client *c = s3_client_new(&cfg, &err);
	if (!c) {
		fprintf(stderr, "s3_client_new: %s\n", strerror(-err));
		exit(2);
	}
	return c;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s ENDPOINT BUCKET\n", argv[0]);
		return 2;
	}
	tfs_log_set_level(TFS_LOG_ERROR);
	struct s3_client *c = client(argv[1], argv[2], "S3RVER", "S3RVER");
	struct s3_object o;

	/* HEAD */
	CHECK(s3_head(c, "obj.bin", &o) == 0);
	CHECK(o.size == OBJ_SIZE && o.etag[0] == '"' && o.mtime > 0);
	CHECK(s3_head(c, "missing", &o) == -ENOENT);
	struct s3_object om;
	CHECK(s3_head(c, "obj.bin", &om) == 0 && om.meta == 0);
	/* x-amz-meta-*: s3fs's decimal st_mode, octal, rclone's fractional mtime, and junk */
	CHECK(s3_head(c, "meta/s3fs", &om) == 0 &&
	      om.meta == (S3_META_MODE | S3_META_UID | S3_META_GID | S3_META_MTIME) &&
	      om.mode == 0755 && om.uid == 1234 && om.gid == 2345 && om.meta_mtime == 1600000000);
	CHECK(s3_head(c, "meta/octal", &om) == 0 && om.meta == S3_META_MODE && om.mode == 0750);
	CHECK(s3_head(c, "meta/bad", &om) == 0 && om.meta == 0);

	/* whole GET, allocated by the client */
	struct s3_get g = { .key = "obj.bin" };
	CHECK(s3_get(c, &g) == 0);
	CHECK(g.len == OBJ_SIZE && pattern_ok(g.buf, g.len, 0));
	CHECK(g.obj.size == OBJ_SIZE && strcmp(g.obj.etag, o.etag) == 0);
	free(g.buf);

	/* ranged GET into the caller's buffer: the size is the whole object's */
	char buf[1000];
	g = (struct s3_get){ .key = "obj.bin", .ranged = true, .offset = 123456, .length = 1000,
			     .buf = buf, .cap = sizeof(buf), .if_match = o.etag };
	CHECK(s3_get(c, &g) == 0);
	CHECK(g.len == 1000 && pattern_ok(buf, 1000, 123456) && g.obj.size == OBJ_SIZE);

	/* ranged GET scattered over three buffers */
	char a[10], b[70000], d[5];
	struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { d, sizeof(d) } };
	g = (struct s3_get){ .key = "obj.bin", .ranged = true, .offset = 7, .length = 70015,
			     .iov = iov, .iovcnt = 3 };
	CHECK(s3_get(c, &g) == 0);
	CHECK(pattern_ok(a, 10, 7) && pattern_ok(b, 70000, 17) && pattern_ok(d, 5, 70017));
	/* ... with each buffer's checksum taken as the bytes arrived: the same as after */
	uint64_t sums[3] = { 0, 0, 0 };
	memset(b, 0, sizeof(b));
	g = (struct s3_get){ .key = "obj.bin", .ranged = true, .offset = 7, .length = 70015,
			     .iov = iov, .iovcnt = 3, .iov_sums = sums };
	CHECK(s3_get(c, &g) == 0 && pattern_ok(b, 70000, 17));
	CHECK(sums[0] == XXH3_64bits(a, sizeof(a)) && sums[1] == XXH3_64bits(b, sizeof(b)) &&
	      sums[2] == XXH3_64bits(d, sizeof(d)));

	/* a range that runs past the end of the object is not silently short */
	g = (struct s3_get){ .key = "obj.bin", .ranged = true, .offset = OBJ_SIZE - 10,
			     .length = 100, .buf = buf, .cap = sizeof(buf) };
	CHECK(s3_get(c, &g) == -EIO);

	/* conditional GETs */
	g = (struct s3_get){ .key = "obj.bin", .if_none_match = o.etag };
	CHECK(s3_get(c, &g) == 0 && g.not_modified && g.len == 0);
	free(g.buf);
	bool nm = false;
	struct s3_object o2;
	CHECK(s3_head_if(c, "obj.bin", o.etag, &o2, &nm) == 0 && nm);
	CHECK(s3_head_if(c, "obj.bin", "\"not-the-etag\"", &o2, &nm) == 0 && !nm &&
	      o2.size == OBJ_SIZE);
	g = (struct s3_get){ .key = "obj.bin", .if_none_match = "\"not-the-etag\"" };
	CHECK(s3_get(c, &g) == 0 && !g.not_modified && g.len == OBJ_SIZE);
	free(g.buf);
	g = (struct s3_get){ .key = "obj.bin", .ranged = true, .offset = 0, .length = 10,
			     .if_match = "\"not-the-etag\"", .buf = buf, .cap = sizeof(buf) };
	CHECK(s3_get(c, &g) == -ESTALE);
	g = (struct s3_get){ .key = "missing", .ranged = true, .offset = 0, .length = 10,
			     .buf = buf, .cap = sizeof(buf) };
	CHECK(s3_get(c, &g) == -ENOENT);

	/* paged listing: 7 keys a page over p/k00..p/k19 and the prefix p/sub/ */
	struct s3_list_page pg;
	char *token = NULL;
	int pages = 0, keys = 0, prefixes = 0, ret;
	do {
		ret = s3_list_page(c, "p/", "/", token, 7, &pg);
		free(token);
		token = NULL;
		CHECK(ret == 0);
		if (ret)
			break;
		pages++;
		for (size_t i = 0; i < pg.nobjects; i++) {
			char want[16];
			snprintf(want, sizeof(want), "p/k%02d", keys);
			CHECK(strcmp(pg.objects[i].key, want) == 0 && pg.objects[i].size == 3);
			keys++;
		}
		prefixes += (int)pg.nprefixes;
		for (size_t i = 0; i < pg.nprefixes; i++)
			CHECK(strcmp(pg.prefixes[i], "p/sub/") == 0);
		token = pg.next_token;
		pg.next_token = NULL;
		s3_list_page_free(&pg);
	} while (token && pages < 100);
	CHECK(keys == 20 && prefixes == 1 && pages >= 3);

	/* no such bucket, wrong credentials */
	struct s3_client *nb = client(argv[1], "no-such-bucket-here", "S3RVER", "S3RVER");
	CHECK(s3_list_page(nb, "", "/", NULL, 1, &pg) == -ENOENT);
	s3_client_free(nb);
	struct s3_client *wc = client(argv[1], argv[2], "WRONG", "WRONG");
	CHECK(s3_head(wc, "obj.bin", &o) == -EACCES);
	s3_client_free(wc);

	const struct s3_stats *st = s3_client_stats(c);
	CHECK(st->requests_head >= 4 && st->requests_get >= 8 && st->not_modified == 2);
	s3_client_free(c);
	return CHECK_SUMMARY();
}
