/*
 * s3_xml.c - parsing of ListObjectsV2 results and S3 error bodies with libxml2.
 *
 * The input is untrusted: no network access, no entity substitution, no DTD loading, and
 * element names are matched by local name only (S3 puts everything in its own namespace).
 * Oversized fields are rejected, not truncated.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3.h"
#include "util.h"

#define KEY_MAX 4096 /* S3 keys are at most 1024 bytes; be generous, but bounded */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* The text of an element, malloc'ed ("" when empty), or NULL on ENOMEM. */
static char *text_of(xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	char *s = strdup(t ? (const char *)t : "");
	xmlFree(t);
	return s;
}

static int parse_contents(xmlNode *n, struct s3_list_entry *e)
{
	int ret = -EINVAL;
	memset(e, 0, sizeof(*e));
	for (xmlNode *c = n->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		char *t = text_of(c);
		if (!t)
			return -ENOMEM;
		if (is(c, "Key")) {
			if (e->key || strlen(t) > KEY_MAX) {
				free(t);
				goto fail;
			}
			e->key = t;
			continue;
		} else if (is(c, "Size")) {
			if (tfs_parse_uint(t, 0, UINT64_MAX, &e->size) < 0) {
				free(t);
				goto fail;
			}
		} else if (is(c, "LastModified")) {
			time_t m;
			if (tfs_parse_iso8601(t, &m) == 0)
				e->mtime = m;
		} else if (is(c, "ETag")) {
			if (strlen(t) < S3_ETAG_MAX)
				memcpy(e->etag, t, strlen(t) + 1);
		}
		free(t);
	}
	if (!e->key)
		goto fail;
	return 0;
fail:
	free(e->key);
	e->key = NULL;
	return ret;
}

/* Decodes %XX escapes in place (EncodingType url).  -EINVAL on a bad escape or an encoded NUL. */
static int url_decode(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (*p != '%') {
			*o++ = *p;
			continue;
		}
		int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -EINVAL;
		*o++ = (char)(hi << 4 | lo);
		p += 2;
	}
	*o = '\0';
	return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *na = realloc(*arr, ncap * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

int s3_parse_list_xml(const char *xml, size_t len, struct s3_list_page *out)
{
	size_t ocap = 0, pcap = 0;
	int ret = -EINVAL;
	bool truncated = false, url_encoded = false;

	memset(out, 0, sizeof(*out));
	if (!xml || len == 0 || len > INT_MAX)
		return -EINVAL;
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "list.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return -EINVAL;
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!root || !is(root, "ListBucketResult"))
		goto fail;
	for (xmlNode *n = root->children; n; n = n->next) {
		if (is(n, "Contents")) {
			if ((ret = grow((void **)&out->objects, &ocap, out->nobjects,
					sizeof(*out->objects))) < 0)
				goto fail;
			if ((ret = parse_contents(n, &out->objects[out->nobjects])) < 0)
				goto fail;
			out->nobjects++;
		} else if (is(n, "CommonPrefixes")) {
			for (xmlNode *c = n->children; c; c = c->next) {
				if (!is(c, "Prefix"))
					continue;
				if ((ret = grow((void **)&out->prefixes, &pcap, out->nprefixes,
						sizeof(*out->prefixes))) < 0)
					goto fail;
				char *t = text_of(c);
				if (!t || strlen(t) > KEY_MAX) {
					ret = t ? -EINVAL : -ENOMEM;
					free(t);
					goto fail;
				}
				out->prefixes[out->nprefixes++] = t;
			}
		} else if (is(n, "IsTruncated")) {
			char *t = text_of(n);
			truncated = t && strcmp(t, "true") == 0;
			free(t);
		} else if (is(n, "EncodingType")) {
			char *t = text_of(n);
			url_encoded = t && strcmp(t, "url") == 0;
			free(t);
		} else if (is(n, "NextContinuationToken")) {
			free(out->next_token);
			if (!(out->next_token = text_of(n))) {
				ret = -ENOMEM;
				goto fail;
			}
		}
	}
	ret = -EINVAL;
	if (url_encoded) {
		for (size_t i = 0; i < out->nobjects; i++)
			if (url_decode(out->objects[i].key) < 0)
				goto fail;
		for (size_t i = 0; i < out->nprefixes; i++)
			if (url_decode(out->prefixes[i]) < 0)
				goto fail;
	}
	if (truncated && (!out->next_token || !out->next_token[0]))
		goto fail; /* a truncated page we could never continue */
	if (!truncated) {
		free(out->next_token);
		out->next_token = NULL;
	}
	xmlFreeDoc(doc);
	return 0;
fail:
	xmlFreeDoc(doc);
	s3_list_page_free(out);
	return ret;
}

void s3_list_page_free(struct s3_list_page *p)
{
	for (size_t i = 0; i < p->nobjects; i++)
		free(p->objects[i].key);
	for (size_t i = 0; i < p->nprefixes; i++)
		free(p->prefixes[i]);
	free(p->objects);
	free(p->prefixes);
	free(p->next_token);
	memset(p, 0, sizeof(*p));
}

void s3_parse_error_xml(const char *xml, size_t len, char *code, size_t codesz, char *msg,
			size_t msgsz)
{
	code[0] = msg[0] = '\0';
	if (!xml || !len || len > INT_MAX)
		return;
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "error.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc)
		return;
	xmlNode *root = xmlDocGetRootElement(doc);
	for (xmlNode *n = root ? root->children : NULL; n; n = n->next) {
		char *dst = is(n, "Code") ? code : is(n, "Message") ? msg : NULL;
		size_t dsz = dst == code ? codesz : msgsz;
		if (!dst)
			continue;
		xmlChar *t = xmlNodeGetContent(n);
		if (t) {
			size_t l = strlen((const char *)t);
			if (l >= dsz)
				l = dsz - 1;
			memcpy(dst, t, l);
			dst[l] = '\0';
			xmlFree(t);
		}
	}
	xmlFreeDoc(doc);
}
