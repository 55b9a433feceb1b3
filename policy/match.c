/*
 * match.c - what an invalidation names (policy_match, policy.h): a path or a glob, matched
 * against keys.  Pure: no locks, no I/O.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "policy_i.h"

int policy_match_init(struct policy *p, const char *spec, struct policy_match *m)
{
	memset(m, 0, sizeof(*m));
	while (*spec == '/')
		spec++;
	size_t n = strlen(spec);
	while (n && spec[n - 1] == '/')
		n--;
	if (!(m->root = strdup(p->cfg.root_key)))
		return -ENOMEM;
	char *s = strndup(spec, n);
	if (!s) {
		policy_match_free(m);
		return -ENOMEM;
	}
	if (strpbrk(s, "*?["))
		m->glob = s;
	else
		m->path = s;
	return 0;
}

void policy_match_free(struct policy_match *m)
{
	free(m->root);
	free(m->path);
	free(m->glob);
	memset(m, 0, sizeof(*m));
}

bool policy_match_key(const struct policy_match *m, const char *key)
{
	size_t rl = strlen(m->root);
	if (strncmp(key, m->root, rl) != 0)
		return false;
	const char *rel = key + rl;
	if (m->path) {
		size_t pl = strlen(m->path);
		if (pl == 0)
			return true; /* the whole mount */
		return strncmp(rel, m->path, pl) == 0 && (rel[pl] == '\0' || rel[pl] == '/');
	}
	/* the glob against the key and each directory above it */
	char *r = strdup(rel);
	bool yes = false;
	if (!r)
		return false;
	size_t n = strlen(r);
	if (n && r[n - 1] == '/')
		r[--n] = '\0';
	for (;;) {
		if (fnmatch(m->glob, r, FNM_PATHNAME) == 0) {
			yes = true;
			break;
		}
		char *slash = strrchr(r, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	free(r);
	return yes;
}

