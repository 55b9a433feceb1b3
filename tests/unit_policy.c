/*
 * unit_policy.c - unit tests of the parsers, the listing rules and chunk buffers, without a mount.
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "conc.h"
#include "l1.h"
#include "log.h"
#include "ctlproto.h"
#include "meta.h"
#include "predict.h"
#include "s3.h"
#include "tier.h"
#include "util.h"
#include "xmeta.h"


static void test_parse_size(void)
{
	uint64_t v;
	CHECK(tfs_parse_size("4096", &v) == 0 && v == 4096);
	CHECK(tfs_parse_size("64K", &v) == 0 && v == 65536);
	CHECK(tfs_parse_size("1M", &v) == 0 && v == 1048576);
	CHECK(tfs_parse_size("10G", &v) == 0 && v == 10ull << 30);
	CHECK(tfs_parse_size("2MiB", &v) == 0 && v == 2ull << 20);
	CHECK(tfs_parse_size("1t", &v) == 0 && v == 1ull << 40);
	CHECK(tfs_parse_size("", &v) == -EINVAL);
	CHECK(tfs_parse_size("-1", &v) == -EINVAL);
	CHECK(tfs_parse_size("1X", &v) == -EINVAL);
	CHECK(tfs_parse_size("1MM", &v) == -EINVAL);
	CHECK(tfs_parse_size("99999999999999999999", &v) == -EINVAL);
	CHECK(tfs_parse_size("17179869184T", &v) == -EINVAL); /* overflows 64 bits */
	CHECK(tfs_parse_size(" 1", &v) == -EINVAL);
}

static void test_parse_duration(void)
{
	uint64_t v;
	CHECK(tfs_parse_duration("300", &v) == 0 && v == 300);
	CHECK(tfs_parse_duration("30s", &v) == 0 && v == 30);
	CHECK(tfs_parse_duration("5m", &v) == 0 && v == 300);
	CHECK(tfs_parse_duration("1h", &v) == 0 && v == 3600);
	CHECK(tfs_parse_duration("2d", &v) == 0 && v == 172800);
	CHECK(tfs_parse_duration("0", &v) == 0 && v == 0);
	CHECK(tfs_parse_duration("never", &v) == 0 && v == TFS_TTL_NEVER);
	CHECK(tfs_parse_duration("-5", &v) == -EINVAL);
	CHECK(tfs_parse_duration("abc", &v) == -EINVAL);
	CHECK(tfs_parse_duration("10x", &v) == -EINVAL);
	CHECK(tfs_parse_duration("", &v) == -EINVAL);
	CHECK(tfs_parse_duration("5 m", &v) == -EINVAL);
	CHECK(tfs_parse_duration("999999999999d", &v) == -EINVAL);
	CHECK(tfs_parse_duration("Never", &v) == -EINVAL);
}

static void test_uri_encode(void)
{
	char *s = tfs_uri_encode("a b/c+d%e?f=g&h~i.j-k_l\xc3\xa9", true);
	CHECK(s && strcmp(s, "a%20b/c%2Bd%25e%3Ff%3Dg%26h~i.j-k_l%C3%A9") == 0);
	free(s);
	s = tfs_uri_encode("x/y", false);
	CHECK(s && strcmp(s, "x%2Fy") == 0);
	free(s);
}

static void test_name_ok(void)
{
	const char *why;
	char longname[NAME_MAX + 2];
	memset(longname, 'n', sizeof(longname));
	CHECK(policy_name_ok("a", 1, &why));
	CHECK(policy_name_ok("...", 3, &why));
	CHECK(policy_name_ok(".hidden", 7, &why));
	CHECK(!policy_name_ok("", 0, &why));
	CHECK(!policy_name_ok(".", 1, &why));
	CHECK(!policy_name_ok("..", 2, &why));
	CHECK(policy_name_ok(longname, NAME_MAX, &why));
	CHECK(!policy_name_ok(longname, NAME_MAX + 1, &why));
}

static const char *xml_page =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>b</Name><Prefix>d/</Prefix><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>tok/en=</NextContinuationToken>"
	"<Contents><Key>d/</Key><Size>0</Size><ETag>&quot;e0&quot;</ETag>"
	"<LastModified>2026-11-21T17:02:24.000Z</LastModified></Contents>"
	"<Contents><Key>d/file.txt</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag>"
	"<LastModified>2026-11-21T17:02:24.000Z</LastModified></Contents>"
	"<Contents><Key>d/a</Key><Size>3</Size><ETag>&quot;aa&quot;</ETag></Contents>"
	"<CommonPrefixes><Prefix>d/a/</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>d//</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>d/./</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>d/../</Prefix></CommonPrefixes>"
	"<CommonPrefixes><Prefix>d/sub/</Prefix></CommonPrefixes>"
	"</ListBucketResult>";

static void test_list_xml(void)
{
	struct s3_list_page pg;
	CHECK(s3_parse_list_xml(xml_page, strlen(xml_page), &pg) == 0);
	CHECK(pg.nobjects == 3 && pg.nprefixes == 5);
	CHECK(pg.next_token && strcmp(pg.next_token, "tok/en=") == 0);
	CHECK(strcmp(pg.objects[1].key, "d/file.txt") == 0 && pg.objects[1].size == 12);
	CHECK(strcmp(pg.objects[1].etag, "\"abc\"") == 0);
	CHECK(pg.objects[1].mtime == 1795280544);

	/* The listing rules: marker skipped, "", ".", ".." skipped, "a" hidden by "a/". */
	struct tfs_listing *l = NULL;
	CHECK(meta_listing_from_pages("d/", &pg, 1, &l) == 0);
	if (l) {
		CHECK(l->n == 3);
		CHECK(l->n == 3 && strcmp(l->ents[0].name, "a") == 0 && l->ents[0].attr.is_dir);
		CHECK(l->n == 3 && strcmp(l->ents[1].name, "file.txt") == 0 &&
		      !l->ents[1].attr.is_dir && l->ents[1].attr.size == 12);
		CHECK(l->n == 3 && strcmp(l->ents[2].name, "sub") == 0 && l->ents[2].attr.is_dir);
		policy_listing_put(l);
	}
	s3_list_page_free(&pg);

	/* An empty directory: an empty listing */
	l = NULL;
	CHECK(meta_listing_from_pages("d/", &pg, 0, &l) == 0 && l && l->n == 0);
	policy_listing_put(l);

	/* A name longer than NAME_MAX is skipped; 255 bytes is fine. */
	char *xml = NULL, n255[256], n256[257];
	memset(n255, 'x', 255);
	n255[255] = 0;
	memset(n256, 'y', 256);
	n256[256] = 0;
	CHECK(asprintf(&xml,
		       "<ListBucketResult><IsTruncated>false</IsTruncated>"
		       "<Contents><Key>%s</Key><Size>1</Size></Contents>"
		       "<Contents><Key>%s</Key><Size>1</Size></Contents></ListBucketResult>",
		       n255, n256) > 0);
	CHECK(s3_parse_list_xml(xml, strlen(xml), &pg) == 0);
	CHECK(meta_listing_from_pages("", &pg, 1, &l) == 0);
	CHECK(l->n == 1 && strlen(l->ents[0].name) == 255);
	policy_listing_put(l);
	s3_list_page_free(&pg);
	free(xml);

	/* EncodingType url: keys are decoded, control characters come through. */
	const char *enc = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<IsTruncated>false</IsTruncated>"
			  "<Contents><Key>ctl%01x+y%20z</Key><Size>1</Size></Contents>"
			  "<CommonPrefixes><Prefix>sp%20ace/</Prefix></CommonPrefixes>"
			  "</ListBucketResult>";
	CHECK(s3_parse_list_xml(enc, strlen(enc), &pg) == 0);
	CHECK(pg.nobjects == 1 && strcmp(pg.objects[0].key, "ctl\x01x+y z") == 0);
	CHECK(pg.nprefixes == 1 && strcmp(pg.prefixes[0], "sp ace/") == 0);
	s3_list_page_free(&pg);
	const char *badenc = "<ListBucketResult><EncodingType>url</EncodingType>"
			     "<Contents><Key>nul%00</Key><Size>1</Size></Contents>"
			     "</ListBucketResult>";
	CHECK(s3_parse_list_xml(badenc, strlen(badenc), &pg) == -EINVAL);

	/* Malformed or hostile bodies are refused, not half-read. */
	const char *bad[] = {
		"", "<", "not xml at all", "<Error><Code>x</Code></Error>",
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key>",
		"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
		"<ListBucketResult><Contents><Key>&e;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = s3_parse_list_xml(bad[i], strlen(bad[i]), &pg);
		if (r == 0) {
			/* The external entity must never be expanded. */
			CHECK(pg.nobjects == 0 || strstr(pg.objects[0].key, "root:") == NULL);
			s3_list_page_free(&pg);
			CHECK(i == 8);
		} else {
			CHECK(r == -EINVAL);
		}
	}
}

/* Packed attributes give back exactly what was packed, whatever the ETag looks like. */
static void test_cattr(void)
{
	const char *etags[] = {
		"", "\"0123456789abcdef0123456789abcdef\"", "\"0123456789abcdef0123456789abcdef-1\"",
		"\"0123456789abcdef0123456789abcdef-10000\"",
		"\"0123456789abcdef0123456789abcdef-4294967293\"",
		"\"0123456789abcdef0123456789abcdef-4294967294\"", /* one past the packed range */
		"\"0123456789abcdef0123456789abcdef-99999999999\"",
		"\"0123456789ABCDEF0123456789abcdef\"",     /* upper case: kept as a copy */
		"\"0123456789abcdef0123456789abcdef-01\"",  /* a leading zero */
		"\"0123456789abcdef0123456789abcdef-0\"", "\"0123456789abcdef0123456789abcdef-\"",
		"\"0123456789abcdef0123456789abcdef-1x\"", "0123456789abcdef0123456789abcdef",
		"\"0123456789abcdef0123456789abcde\"", "\"0123456789abcdef0123456789abcdefa\"",
		"\"abc\"", "W/\"weak\"", "\"",
	};
	struct tfs_cattr c = { 0 };
	struct tfs_attr out;
	CHECK(!tfs_cattr_has_etag(&c) && !tfs_cattr_etag_is(&c, ""));
	for (size_t k = 0; k < sizeof(etags) / sizeof(etags[0]); k++) {
		struct tfs_attr a = { .is_dir = k == 3, .meta = (uint8_t)k, .mode = 0640,
				      .uid = 1000 + (uint32_t)k, .gid = 7, .size = (1ull << 40) + k,
				      .mtime = 1795280544 + (time_t)k };
		snprintf(a.etag, sizeof(a.etag), "%s", etags[k]);
		CHECK(tfs_cattr_set(&c, &a) == 0);
		memset(&out, 0x5a, sizeof(out));
		tfs_cattr_get(&c, &out);
		CHECK(strcmp(out.etag, etags[k]) == 0);
		CHECK(out.is_dir == a.is_dir && out.meta == a.meta && out.mode == a.mode &&
		      out.uid == a.uid && out.gid == a.gid && out.size == a.size &&
		      out.mtime == a.mtime);
		CHECK(tfs_cattr_has_etag(&c) == (etags[k][0] != 0));
		CHECK(tfs_cattr_etag_is(&c, etags[k]) == (etags[k][0] != 0));
		CHECK(!tfs_cattr_etag_is(&c, "\"0123456789abcdef0123456789abcdee\""));
		char buf[S3_ETAG_MAX];
		CHECK(tfs_cattr_etag(&c, buf, sizeof(buf)) == strlen(etags[k]) &&
		      strcmp(buf, etags[k]) == 0);
	}
	/* the longest ETag S3 may give: a copy, exact */
	struct tfs_attr a = { 0 };
	memset(a.etag, 'e', sizeof(a.etag) - 1);
	a.etag[sizeof(a.etag) - 1] = '\0';
	CHECK(tfs_cattr_set(&c, &a) == 0);
	tfs_cattr_get(&c, &out);
	CHECK(strcmp(out.etag, a.etag) == 0);
	/* the common forms take no copy */
	snprintf(a.etag, sizeof(a.etag), "\"00ff00ff00ff00ff00ff00ff00ff00ff-3\"");
	CHECK(tfs_cattr_set(&c, &a) == 0 && c.etag_form == 2 + 3);
	tfs_cattr_clear(&c);
	CHECK(!tfs_cattr_has_etag(&c));
	tfs_cattr_clear(&c); /* twice is harmless */
}

static void test_error_xml(void)
{
	char code[64], msg[128];
	const char *x = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
			"<Message>The specified key does not exist.</Message></Error>";
	s3_parse_error_xml(x, strlen(x), code, sizeof(code), msg, sizeof(msg));
	CHECK(strcmp(code, "NoSuchKey") == 0);
	CHECK(strcmp(msg, "The specified key does not exist.") == 0);
	s3_parse_error_xml("garbage", 7, code, sizeof(code), msg, sizeof(msg));
	CHECK(code[0] == 0 && msg[0] == 0);
}

/* TTL resolution and freshness, driven with explicit times (the clock is an argument). */
static void test_ttl(void)
{
	char from[256];
	uint64_t v;
	int err;
	struct s3_client *s3 = closed_s3();
	struct policy_config cfg = { .chunk_size = 1 << 20, .ttl_s = 60, .root_key = "mnt/",
				     .connections = 0, .prefetch_manual = true };
	struct policy *pp = s3 ? policy_new(&cfg, s3, &err) : NULL;
	CHECK(pp != NULL);
	if (!pp) {
		s3_client_free(s3);
		return;
	}

	CHECK(policy_ttl_effective(pp, "mnt/a/b/c.txt", from, sizeof(from)) == 60 && !from[0]);
	CHECK(policy_ttl_set(pp, "mnt/a/", 300) == 0);
	CHECK(policy_ttl_effective(pp, "mnt/a/b/c.txt", from, sizeof(from)) == 300);
	CHECK(strcmp(from, "mnt/a/") == 0);
	CHECK(policy_ttl_effective(pp, "mnt/a/", from, sizeof(from)) == 300); /* its own */
	CHECK(policy_ttl_effective(pp, "mnt/ab.txt", NULL, 0) == 60); /* a sibling prefix: no */
	CHECK(policy_ttl_set(pp, "mnt/a/b/c.txt", 5) == 0);            /* the nearest wins */
	CHECK(policy_ttl_effective(pp, "mnt/a/b/c.txt", from, sizeof(from)) == 5);
	CHECK(strcmp(from, "mnt/a/b/c.txt") == 0);
	CHECK(policy_ttl_set(pp, "mnt/", TFS_TTL_NEVER) == 0);          /* the mount's root */
	CHECK(policy_ttl_effective(pp, "mnt/z/y", NULL, 0) == TFS_TTL_NEVER);
	CHECK(policy_ttl_set(pp, "", 1) == 0);                          /* above the root: ignored */
	CHECK(policy_ttl_remove(pp, "mnt/") == 0);
	CHECK(policy_ttl_effective(pp, "mnt/z/y", NULL, 0) == 60);
	CHECK(policy_ttl_get(pp, "mnt/a/", &v) == 0 && v == 300);
	CHECK(policy_ttl_get(pp, "mnt/a/b/", &v) == -ENODATA);
	CHECK(policy_ttl_remove(pp, "mnt/a/b/") == -ENODATA);
	CHECK(policy_ttl_remove(pp, "mnt/a/b/c.txt") == 0);
	CHECK(policy_ttl_effective(pp, "mnt/a/b/c.txt", NULL, 0) == 300);

	/* freshness at chosen times: learned at t=1000 ms, TTL 300 s from mnt/a/ */
	CHECK(policy_fresh(pp, "mnt/a/x", 1000, 1000));
	CHECK(policy_fresh(pp, "mnt/a/x", 1000, 1000 + 299999));
	CHECK(!policy_fresh(pp, "mnt/a/x", 1000, 1000 + 300000));
	CHECK(!policy_fresh(pp, "mnt/other", 1000, 1000 + 60000));  /* the mount's 60 s */
	CHECK(!policy_fresh(pp, "mnt/a/x", 0, 1));                   /* never learned */
	CHECK(policy_ttl_set(pp, "mnt/a/", 0) == 0);                 /* 0: always ask */
	CHECK(!policy_fresh(pp, "mnt/a/x", 1000, 1000));
	CHECK(policy_ttl_set(pp, "mnt/a/", TFS_TTL_NEVER) == 0);
	CHECK(policy_fresh(pp, "mnt/a/x", 1000, UINT64_MAX / 2));
	policy_free(pp);
	s3_client_free(s3);
}

/* L1's rules at chosen times. */
static void test_l1_rules(void)
{
	CHECK(!l1_should_promote(4, 5));
	CHECK(l1_should_promote(5, 5));
	CHECK(l1_should_promote(6, 5));
	CHECK(!l1_should_promote(100, 0)); /* 0: never */
	uint64_t hour = 3600 * 1000;
	CHECK(!l1_should_demote(10 * hour, 10 * hour + hour - 1, hour));
	CHECK(l1_should_demote(10 * hour, 11 * hour, hour));
	CHECK(!l1_should_demote(10 * hour, 9 * hour, hour)); /* a clock going back demotes nothing */
}

/* The interval predictor on its own: times are arguments, so the clock is the test's. */
static void test_predict(void)
{
	struct pred_hist h = { 0 };
	uint64_t next = 0, avg = 0;
	CHECK(pred_note(&h, 100000) == 0);
	CHECK(pred_next(&h, 100000, &next) == -EAGAIN);
	CHECK(pred_note(&h, 100500) == -EALREADY); /* the same access, opened twice */
	CHECK(pred_note(&h, 110000) == 0);
	CHECK(pred_next(&h, 110000, &next) == -EAGAIN); /* one interval is not enough */
	CHECK(pred_note(&h, 120000) == 0);
	CHECK(pred_next(&h, 120000, &next) == 0 && next == 130000);
	/* recency-weighted: a slower rhythm moves the prediction toward the recent intervals */
	CHECK(pred_note(&h, 132000) == 0);
	CHECK(pred_note(&h, 144000) == 0);
	CHECK(pred_interval(&h, &avg) == 0);
	CHECK(avg > 11000 && avg < 12000);
	CHECK(pred_next(&h, 144000, &next) == 0 && next == 144000 + avg);
	/* overdue by more than half an interval: the reader stopped */
	CHECK(pred_next(&h, 144000 + avg + avg / 2 - 1, &next) == 0);
	CHECK(pred_next(&h, 144000 + avg + avg / 2 + 1, &next) == -ESTALE);
	/* the history is a ring: many accesses later, only the last PRED_HISTORY count */
	struct pred_hist r = { 0 };
	for (uint64_t t = 0; t < 100; t++)
		CHECK(pred_note(&r, 1000000 + t * 5000) == 0);
	CHECK(pred_interval(&r, &avg) == 0 && avg == 5000);
	CHECK(pred_next(&r, 1000000 + 99 * 5000, &next) == 0 && next == 1000000 + 100 * 5000);
	/* irregular accesses are not predicted */
	struct pred_hist irr = { 0 };
	uint64_t times[] = { 0, 2000, 30000, 31000, 90000, 92000 };
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		pred_note(&irr, 5000000 + times[i]);
	CHECK(pred_interval(&irr, &avg) == -ERANGE);
	/* a clock that goes back is not a new access */
	CHECK(pred_note(&r, 1000) == -EALREADY);
}

static _Atomic uint64_t fake_ms; /* read by the policy's threads too */
static uint64_t fake_clock(void) { return fake_ms; }

/* The interval predictor inside a policy, driven with an injected clock.  S3 is a closed port
 * and no fetch thread runs, so what a pass does shows in the queue and the counters. */
static void test_prefetch_pass(void)
{
	int err = 0;
	struct s3_client *s3 = closed_s3();
	CHECK(s3 != NULL);
	if (!s3)
		return;
	struct policy_config cfg = {
		.chunk_size = 1 << 20, .ttl_s = 1, .mem_bytes = 64 << 20,
		.readahead_max = 8 << 20, .connections = 0, .prefetch = true,
		.prefetch_window_ms = 60000, .prefetch_interval_ms = 1000,
		.prefetch_budget = 256 << 20, .prefetch_manual = true, .now_ms = fake_clock,
	};
	struct policy *p = policy_new(&cfg, s3, &err);
	CHECK(p != NULL);
	if (!p) {
		s3_client_free(s3);
		return;
	}
	struct tfs_attr a = { .size = 3 << 20 };
	snprintf(a.etag, sizeof(a.etag), "\"e1\"");
	const struct policy_stats *st = policy_stats(p);

	/* opened every 10 s: t = 0, 10, 20 s */
	for (int i = 0; i < 3; i++) {
		fake_ms = 1000000 + (uint64_t)i * 10000;
		policy_file_opened(p, "data/a.bin", &a, fake_ms);
	}
	/* t = 21 s: the next access (30 s) is within the window: its 3 chunks are queued on the
	 * low-priority queue (nothing holds them); revalidation waits until 2 passes before */
	fake_ms = 1021000;
	policy_prefetch_pass(p);
	struct policy_snapshot snap;
	policy_snapshot(p, &snap);
	CHECK(snap.queued_low == 3 && snap.queued == 0);
	CHECK(st->pf_inflight_bytes == 3 << 20);
	CHECK(st->pf_revalidations == 0);
	/* acted on once: a second pass queues nothing more */
	policy_prefetch_pass(p);
	CHECK(st->pf_inflight_bytes == 3 << 20);
	/* t = 28 s: the metadata (TTL 1 s) would be stale at 30 s: revalidated (S3 is down, so it
	 * fails), once per predicted access */
	fake_ms = 1028000;
	policy_prefetch_pass(p);
	CHECK(st->pf_revalidations == 1);
	policy_prefetch_pass(p);
	CHECK(st->pf_revalidations == 1);
	struct tfs_attr got;
	uint64_t at;
	CHECK(policy_prefetch_confirmed(p, "data/a.bin", 0, &got, &at) == -ENOENT);
	/* t = 40 s: the reader did not come at 30 s: overdue, nothing more happens */
	fake_ms = 1040000;
	policy_prefetch_pass(p);
	CHECK(st->pf_revalidations == 1);
	/* prefetch=off: opens teach nothing */
	policy_free(p);
	cfg.prefetch = false;
	p = policy_new(&cfg, s3, &err);
	CHECK(p != NULL);
	if (p) {
		for (int i = 0; i < 4; i++) {
			fake_ms = 2000000 + (uint64_t)i * 10000;
			policy_file_opened(p, "data/a.bin", &a, fake_ms);
		}
		policy_prefetch_pass(p);
		policy_snapshot(p, &snap);
		CHECK(snap.queued_low == 0 && policy_stats(p)->pf_inflight_bytes == 0);
		policy_free(p);
	}
	s3_client_free(s3);
}

/* Regression: the demotion pass ran once per queued fetch (it waited on the fetch queue's
 * condition variable).  200 chunks queued at once must not run it more than its interval
 * allows; and it does run, every interval. */
static void test_demote_interval(void)
{
	struct s3_client *s3 = closed_s3();
	int err = 0;
	struct policy_config cfg = {
		.chunk_size = 1 << 20, .ttl_s = 1, .mem_bytes = 512ull << 20,
		.readahead_max = 200 << 20, .connections = 0, .prefetch = true,
		.prefetch_window_ms = 60000, .prefetch_interval_ms = 1000,
		.prefetch_budget = 512ull << 20, .prefetch_manual = true, .now_ms = fake_clock,
		.l1_size = 64 << 20, .promote_after = 5, .demote_after_ms = 3600000,
		.demote_interval_ms = 1000,
	};
	struct policy *p = s3 ? policy_new(&cfg, s3, &err) : NULL;
	CHECK(p != NULL);
	if (!p) {
		s3_client_free(s3);
		return;
	}
	const struct policy_stats *st = policy_stats(p);
	struct tfs_attr a = { .size = 200 << 20 };
	snprintf(a.etag, sizeof(a.etag), "\"e1\"");
	for (int i = 0; i < 3; i++) {
		fake_ms = 1000000 + (uint64_t)i * 10000;
		policy_file_opened(p, "big.bin", &a, fake_ms);
	}
	fake_ms = 1021000;
	uint64_t t0 = tfs_now_ms(), before = st->demote_passes;
	policy_prefetch_pass(p);
	struct policy_snapshot snap;
	policy_snapshot(p, &snap);
	CHECK(snap.queued_low == 200);
	uint64_t after = st->demote_passes, dt = tfs_now_ms() - t0;
	printf("demotion passes while 200 chunks were queued (%llu ms): %llu\n",
	       (unsigned long long)dt, (unsigned long long)(after - before));
	CHECK(after - before <= 1 + dt / 1000);
	/* it runs on its own, every interval: wait for two of them */
	uint64_t deadline = tfs_now_ms() + 10000;
	while (st->demote_passes < after + 2 && tfs_now_ms() < deadline)
		usleep(50000);
	CHECK(st->demote_passes >= after + 2);
	policy_free(p);
	s3_client_free(s3);
}

static int collect(void *ctx, char *line)
{
	int *n = ctx;
	(*n)++;
	return strcmp(line, "fail") == 0 ? -EINVAL : 0;
}

/* The control protocol without a mount: parsing, lines, and the limit per line. */
static void test_ctlproto(void)
{
	struct ctl_cmd c;
	const char *why = NULL;
	char l1[] = "invalidate \"a b\"/c\\ d";
	CHECK(ctl_parse(l1, &c, &why) == 0 && c.verb == CTL_INVALIDATE && c.nargs == 1 &&
	      strcmp(c.args[0], "a b/c d") == 0);
	char l2[] = "  warm x y\tz ";
	CHECK(ctl_parse(l2, &c, &why) == 0 && c.verb == CTL_WARM && c.nargs == 3 &&
	      strcmp(c.args[2], "z") == 0);
	char l3[] = "";
	CHECK(ctl_parse(l3, &c, &why) == 0 && c.verb == CTL_NOP);
	char l4[] = "purge now";
	CHECK(ctl_parse(l4, &c, &why) == -EINVAL && strstr(why, "no arguments"));
	char l5[] = "invalidate";
	CHECK(ctl_parse(l5, &c, &why) == -EINVAL && strstr(why, "usage"));
	char l6[] = "frobnicate";
	CHECK(ctl_parse(l6, &c, &why) == -EINVAL && strstr(why, "unknown"));
	char l7[] = "warm \"open";
	CHECK(ctl_parse(l7, &c, &why) == -EINVAL && strstr(why, "quotes"));
	char l8[] = "demote";
	CHECK(ctl_parse(l8, &c, &why) == 0 && c.verb == CTL_DEMOTE && c.nargs == 0);

	struct ctl_lines cl = { 0 };
	int n = 0;
	CHECK(ctl_lines_feed(&cl, "a\nb\npart", 8, false, collect, &n) == 0 && n == 2 &&
	      cl.len == 4);
	CHECK(ctl_lines_feed(&cl, "ial\n", 4, false, collect, &n) == 0 && n == 3 && cl.len == 0);
	CHECK(ctl_lines_feed(&cl, "last", 4, true, collect, &n) == 0 && n == 4 && cl.len == 0);
	n = 0; /* after a failure, no more lines run */
	CHECK(ctl_lines_feed(&cl, "x\nfail\ny\n", 9, false, collect, &n) == -EINVAL && n == 2);
	/* many short lines in one piece are fine; one long line is not, however it comes */
	static char big[70000];
	for (size_t i = 0; i < sizeof(big); i += 7)
		memcpy(big + i, "demote\n", 7);
	n = 0;
	CHECK(ctl_lines_feed(&cl, big, sizeof(big), false, collect, &n) == 0 && n == 10000);
	memset(big, 'x', sizeof(big));
	CHECK(ctl_lines_feed(&cl, big, 40000, false, collect, &n) == 0);
	CHECK(ctl_lines_feed(&cl, big, 40000, false, collect, &n) == -EMSGSIZE && cl.len == 0);
	big[sizeof(big) - 1] = '\n';
	CHECK(ctl_lines_feed(&cl, big, sizeof(big), false, collect, &n) == -EMSGSIZE);
	ctl_lines_free(&cl);

	/* rendering from a snapshot: the figures given are the figures shown */
	struct policy_snapshot s;
	memset(&s, 0, sizeof(s));
	s.s3_get = 7;
	s.l2.hits = 5;
	s.l2.misses = 5;
	s.st.demote_passes = 3;
	s.queued = 11;
	struct ctl_info in = { .version = "v", .bucket = "b", .prefix = "p/", .prefetch = true,
			       .prefetch_budget = 1 << 20 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ctl_render_json(&in, &s, f);
	fclose(f);
	CHECK(strstr(buf, "\"get\": 7,") && strstr(buf, "\"hit_rate\": 0.5000") &&
	      strstr(buf, "\"demote_passes\": 3") && strstr(buf, "\"queued\": 11"));
	free(buf);
	f = open_memstream(&buf, &len);
	ctl_render_metrics(&in, &s, f);
	fclose(f);
	CHECK(strstr(buf, "tierfs_s3_requests_total{kind=\"get\"} 7\n") != NULL);
	free(buf);
	f = open_memstream(&buf, &len);
	ctl_render_text(&in, &s, f);
	fclose(f);
	CHECK(strstr(buf, "bucket b  prefix p/") != NULL);
	free(buf);
}

/* Inputs that once crashed (or might): tests/fuzz/regressions/list-*, replayed through the
 * listing parser and builder, which must neither crash nor leak (valgrind, ASan builds). */
static void test_fuzz_regressions(void)
{
	const char *dir = getenv("TIERFS_FUZZ_REGRESSIONS");
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "list-", 5) != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		static char buf[1 << 20];
		size_t len = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		struct s3_list_page pg;
		struct tfs_listing *l;
		if (s3_parse_list_xml(buf, len, &pg) == 0) {
			if (meta_listing_from_pages("d/", &pg, 1, &l) == 0)
				policy_listing_put(l);
			s3_list_page_free(&pg);
		}
		n++;
	}
	if (d)
		closedir(d);
	CHECK(!dir || n >= 4); /* the directory is found and replayed */
}

/* The S3 gate's limit, driven with a clock of the test's own and a model of the network:
 * the throughput a given number of connections gets. */
static unsigned run_ctl(double (*tput)(unsigned), unsigned cap, int epochs, unsigned *max_seen)
{
	struct conc_ctl c;
	uint64_t now = 1000000000ull, bytes = 0;
	conc_ctl_init(&c, cap, now, bytes);
	*max_seen = c.limit;
	for (int e = 0; e < epochs; e++) {
		uint64_t step = CONC_EPOCH_MS * 1000000ull;
		bytes += (uint64_t)(tput(c.limit) * (double)step / 1e9);
		now += step;
		conc_ctl_busy(&c); /* readers always wait: the network is the limit */
		conc_ctl_tick(&c, now, bytes);
		if (c.limit > *max_seen)
			*max_seen = c.limit;
	}
	return c.limit;
}

/* real S3 behind a 400 MB/s link: 40 MB/s per connection */
static double net_s3(unsigned n) { return n * 40e6 < 400e6 ? n * 40e6 : 400e6; }
/* a server on this machine: more connections buy nothing */
static double net_local(unsigned n) { (void)n; return 500e6; }
/* 20 MB/s per connection and a 10 Gb/s link */
static double net_far(unsigned n) { return n * 20e6 < 1.25e9 ? n * 20e6 : 1.25e9; }

static struct conc gate;
static _Atomic uint64_t gate_bytes;

static pthread_barrier_t gate_start;

static void *gate_user(void *arg)
{
	bool urgent = (intptr_t)arg & 1;
	pthread_barrier_wait(&gate_start); /* all at once, whatever the scheduler (TSan's too) */
	for (int i = 0; i < 20; i++) {
		conc_enter(&gate, urgent);
		struct timespec d = { 0, 200000 };
		/* the first slots are held until someone waits for one (at most a second): twelve
		 * users of four slots must wait, however slowly the threads start */
		for (int k = 0; k < (i == 0 ? 1000 : 1); k++) {
			struct conc_stats cs;
			conc_get_stats(&gate, &cs);
			if (i == 0 && cs.waits > 0)
				break;
			d.tv_nsec = i == 0 ? 1000000 : 200000;
			nanosleep(&d, NULL);
		}
		conc_leave(&gate, 0);
	}
	return NULL;
}

/* The gate under threads: never more in flight than the limit (urgent ones: the cap). */
static void test_conc_gate(void)
{
	pthread_t t[12];
	conc_init(&gate, 4, &gate_bytes); /* the limit starts at the cap, 4 */
	pthread_barrier_init(&gate_start, NULL, 12);
	for (intptr_t i = 0; i < 12; i++)
		CHECK(pthread_create(&t[i], NULL, gate_user, (void *)i) == 0);
	for (int i = 0; i < 12; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&gate_start);
	struct conc_stats cs;
	conc_get_stats(&gate, &cs);
	CHECK(cs.in_flight == 0 && cs.peak <= 4 && cs.waits > 0);
	conc_destroy(&gate);
}

static void test_conc(void)
{
	unsigned max_seen, l;
	/* it climbs to where the link saturates (10 connections), not to the cap */
	l = run_ctl(net_s3, 256, 200, &max_seen);
	CHECK(l >= 10 && l <= 20);
	CHECK(max_seen <= 40);
	/* a local server: no raise buys anything, so it stays near the start */
	l = run_ctl(net_local, 256, 200, &max_seen);
	CHECK(l == CONC_INITIAL);
	CHECK(max_seen <= 2 * CONC_INITIAL);
	/* far away: as many as it takes (63 for 1.25 GB/s), bounded by the cap */
	l = run_ctl(net_far, 256, 400, &max_seen);
	CHECK(l >= 56 && l <= 90);
	l = run_ctl(net_far, 32, 100, &max_seen);
	CHECK(l == 32 && max_seen == 32);

	/* SlowDown cuts the limit by 30%, and no raise follows for CONC_HOLD_MS */
	struct conc_ctl c;
	uint64_t now = 1, bytes = 0, step = CONC_EPOCH_MS * 1000000ull;
	conc_ctl_init(&c, 64, now, bytes);
	for (int e = 0; e < 4; e++) { /* slow start: 8, 16, 32, 64 */
		bytes += (uint64_t)(net_far(c.limit) * (double)step / 1e9);
		now += step;
		conc_ctl_busy(&c);
		conc_ctl_tick(&c, now, bytes);
	}
	CHECK(c.limit == 64);
	conc_ctl_backoff(&c);
	now += step;
	CHECK(conc_ctl_tick(&c, now, bytes) == 44);
	for (uint64_t t = 0; t + step < CONC_HOLD_MS * 1000000ull; t += step) {
		now += step;
		bytes += 1000000;
		conc_ctl_busy(&c);
		CHECK(conc_ctl_tick(&c, now, bytes) == 44);
	}
	/* with no waiting work, nothing is learnt: the limit stays */
	conc_ctl_init(&c, 64, now, bytes);
	for (int e = 0; e < 20; e++) {
		now += step;
		bytes += 100000000;
		conc_ctl_tick(&c, now, bytes);
	}
	CHECK(c.limit == CONC_INITIAL && c.raises == 0);
	/* the byte counter reset under it: the epoch is not counted */
	now += step;
	conc_ctl_busy(&c);
	CHECK(conc_ctl_tick(&c, now, 0) == CONC_INITIAL && c.raises == 0);
}

/* The user metadata table: by key and version, and bounded. */
static void test_xmeta(void)
{
	struct xmeta *x = xmeta_new(1000);
	CHECK(x != NULL);
	struct tfs_attr a = { .meta = TFS_META_READ | TFS_META_MODE, .mode = 0755, .mtime = 7 };
	strcpy(a.etag, "\"v1\"");
	xmeta_put(x, "d/f", &a);
	struct tfs_attr q = { .mtime = 1 };
	strcpy(q.etag, "\"v1\"");
	CHECK(xmeta_get(x, "d/f", &q) && q.mode == 0755 && q.mtime == 7 &&
	      q.meta == (TFS_META_READ | TFS_META_MODE));
	struct tfs_attr other = { 0 };
	strcpy(other.etag, "\"v2\"");     /* another version: nothing */
	CHECK(!xmeta_get(x, "d/f", &other) && other.meta == 0);
	CHECK(!xmeta_get(x, "d/g", &q));
	a.mode = 0700;
	xmeta_put(x, "d/f", &a);           /* the same key again: replaced */
	CHECK(xmeta_get(x, "d/f", &q) && q.mode == 0700);
	/* past its bound the oldest half goes, the newest stays */
	char key[32];
	for (unsigned i = 0; i < 1000 + 10; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		xmeta_put(x, key, &a);
	}
	struct tfs_attr n = { 0 };
	strcpy(n.etag, a.etag);
	snprintf(key, sizeof(key), "k%u", 1000 + 9);
	CHECK(xmeta_get(x, key, &n));
	CHECK(!xmeta_get(x, "k0", &n));
	xmeta_clear(x);
	CHECK(!xmeta_get(x, key, &n));
	xmeta_free(x);
}

/* Chunk buffers (buf.c): of every size a chunk or an object's last chunk can have, pieces of
 * huge pages or mappings or heap, each page-aligned, each its own (a pattern written into all
 * of them at once survives), kept by the pool and handed out again. */
static void test_bufs(void)
{
	static const size_t sizes[] = { 1, 4096, 65536, 100000, 256 << 10, 300000, 512 << 10,
					1 << 20, (1 << 20) - 4096, 2 << 20, (3 << 20) + 5, 8 << 20 };
	enum { N = 7 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct buf_pool bp;
		struct tfs_buf *b[N];
		size_t len = sizes[k];
		buf_pool_init(&bp, len);
		for (int round = 0; round < 2; round++) { /* the second from the pool */
			for (int i = 0; i < N; i++) {
				b[i] = tfs_buf_get(&bp, len);
				CHECK(b[i] && ((uintptr_t)b[i]->data & 4095) == 0);
				if (b[i])
					memset(b[i]->data, 'a' + i, len);
			}
			for (int i = 0; i < N; i++) {
				bool same = b[i] != NULL;
				for (size_t off = 0; same && off < len; off += 997)
					same = b[i]->data[off] == 'a' + i;
				CHECK(same && b[i]->data[len - 1] == 'a' + i);
			}
			for (int i = 0; i < N; i++)
				tfs_buf_put(b[i]);
		}
		buf_pool_destroy(&bp);
	}
}

int main(void)
{
	tfs_log_set_level(TFS_LOG_ERROR);
	test_parse_size();
	test_bufs();
	test_parse_duration();
	test_uri_encode();
	test_name_ok();
	test_list_xml();
	test_cattr();
	test_error_xml();
	test_ttl();
	test_l1_rules();
	test_predict();
	test_prefetch_pass();
	test_demote_interval();
	test_ctlproto();
	test_conc();
	test_conc_gate();
	test_xmeta();
	test_fuzz_regressions();
	return CHECK_SUMMARY();
}
