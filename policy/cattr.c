/*
 * cattr.c - attributes packed for keeping (cattr.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cattr.h"
#include "policy.h"

enum { FORM_NONE = 0, FORM_COPY = 1, FORM_MD5 = 2 };

static const char HEX[] = "0123456789abcdef";

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static size_t unpack_etag(const struct tfs_cattr *c, char *buf, size_t n)
{
	char tmp[S3_ETAG_MAX];
	size_t len = 0;
	if (c->etag_form == FORM_NONE)
		tmp[0] = '\0';
	else if (c->etag_form == FORM_COPY)
		len = (size_t)snprintf(tmp, sizeof(tmp), "%s", c->etag.copy);
	else {
		tmp[len++] = '"';
		for (int i = 0; i < 16; i++) {
			tmp[len++] = HEX[c->etag.md5[i] >> 4];
			tmp[len++] = HEX[c->etag.md5[i] & 15];
		}
		if (c->etag_form > FORM_MD5)
			len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "-%u",
						c->etag_form - FORM_MD5);
		tmp[len++] = '"';
		tmp[len] = '\0';
	}
	if (len >= sizeof(tmp))
		len = sizeof(tmp) - 1;
	if (n) {
		size_t k = len < n ? len : n - 1;
		memcpy(buf, tmp, k);
		buf[k] = '\0';
	}
	return len;
}

/* The packed form of etag if it has one (*form >= FORM_MD5), checked by unpacking it. */
static bool pack_md5(const char *etag, struct tfs_cattr *out)
{
	size_t len = strlen(etag);
	if (len < 34 || etag[0] != '"' || etag[len - 1] != '"')
		return false;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(etag[1 + 2 * i]), lo = hexval(etag[2 + 2 * i]);
		if (hi < 0 || lo < 0)
			return false;
		out->etag.md5[i] = (unsigned char)(hi << 4 | lo);
	}
	out->etag_form = FORM_MD5;
	if (len > 34) {
		/* "-N" with N in 1..UINT32_MAX - FORM_MD5, no leading zero */
		if (etag[33] != '-' || len > 34 + 11 || etag[34] < '1' || etag[34] > '9')
			return false;
		uint64_t parts = 0;
		for (size_t i = 34; i < len - 1; i++) {
			if (etag[i] < '0' || etag[i] > '9')
				return false;
			parts = parts * 10 + (uint64_t)(etag[i] - '0');
		}
		if (parts > UINT32_MAX - FORM_MD5)
			return false;
		out->etag_form = FORM_MD5 + (uint32_t)parts;
	}
	char back[S3_ETAG_MAX];
	unpack_etag(out, back, sizeof(back));
	return strcmp(back, etag) == 0;
}

int tfs_cattr_set(struct tfs_cattr *c, const struct tfs_attr *a)
{
	struct tfs_cattr n = {
		.size = a->size, .mtime = a->mtime, .uid = a->uid, .gid = a->gid, .mode = a->mode,
		.meta = a->meta, .is_dir = a->is_dir,
	};
	if (a->etag[0] && !pack_md5(a->etag, &n)) {
		n.etag_form = FORM_COPY;
		if (!(n.etag.copy = strdup(a->etag)))
			return -ENOMEM;
	}
	tfs_cattr_clear(c);
	*c = n;
	return 0;
}

void tfs_cattr_get(const struct tfs_cattr *c, struct tfs_attr *a)
{
	a->is_dir = c->is_dir;
	a->meta = c->meta;
	a->mode = c->mode;
	a->uid = c->uid;
	a->gid = c->gid;
	a->size = c->size;
	a->mtime = c->mtime;
	unpack_etag(c, a->etag, sizeof(a->etag));
}

size_t tfs_cattr_etag(const struct tfs_cattr *c, char *buf, size_t n)
{
	return unpack_etag(c, buf, n);
}

bool tfs_cattr_etag_is(const struct tfs_cattr *c, const char *etag)
{
	if (c->etag_form == FORM_NONE)
		return false;
	if (c->etag_form == FORM_COPY)
		return strcmp(c->etag.copy, etag) == 0;
	char mine[S3_ETAG_MAX];
	unpack_etag(c, mine, sizeof(mine));
	return strcmp(mine, etag) == 0;
}

void tfs_cattr_clear(struct tfs_cattr *c)
{
	if (c->etag_form == FORM_COPY)
		free(c->etag.copy);
	c->etag_form = FORM_NONE;
	memset(&c->etag, 0, sizeof(c->etag));
}
