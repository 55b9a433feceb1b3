/*
 * versions.c - "key now has ETag e", however it was noticed (a revalidation, a listing, an
 * open), told to every tier in one place.  A chunk of one version is never served as another
 * (the ETag is part of its identity); what this adds is that the old version's chunks stop
 * taking room.
 */
#include <string.h>

#include "log.h"
#include "policy_i.h"

static void tell_tiers(struct policy *p, const char *key, const char *etag, bool changed)
{
	for (int k = 0; k < p->ntiers; k++) {
		int r = p->tiers[k]->ops->drop_version(p->tiers[k], key, etag, changed);
		if (r < 0)
			tfs_debug("%s: dropping old versions: %s", p->tiers[k]->name, strerror(-r));
	}
}

void policy_object_changed(struct policy *p, const char *key, const char *etag)
{
	atomic_fetch_add_explicit(&p->stats.revalidated_changed, 1, memory_order_relaxed);
	tell_tiers(p, key, etag, true);
}

void policy_open_object(struct policy *p, const char *key, const char *etag)
{
	if (etag[0])
		tell_tiers(p, key, etag, false);
}
