/*
 * notify.c - the kernel notifier (notify.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notify.h"

struct notify_item {
	struct notify_item *next;
	fuse_ino_t ino;             /* the inode, or the parent of name */
	char name[];                /* "" for an inode's attributes */
};

static void send_one(struct tfs_notifier *n, const struct notify_item *it)
{
	int r;
	if (it->name[0]) {
		r = fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name, strlen(it->name));
	} else {
		/* Attributes only (offset -1): invalidating pages makes the kernel wait for page
		 * locks that a read in flight holds, and a daemon killed at that moment can never
		 * finish dying (a kill -9 test found it).  The pages go anyway: at the next open
		 * (keep_cache is off for a new version) and, for a file held open, when the kernel
		 * sees the new mtime (auto_inval_data). */
		r = fuse_lowlevel_notify_inval_inode(n->se, it->ino, -1, 0);
	}
	if (r < 0 && r != -ENOENT)
		tfs_debug("kernel cache invalidation of inode %llu%s%s: %s",
			  (unsigned long long)it->ino, it->name[0] ? " entry " : "", it->name,
			  strerror(-r));
}

static void *notifier_main(void *arg)
{
	struct tfs_notifier *n = arg;
	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->head && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		struct notify_item *batch = n->head;
		n->head = n->tail = NULL;
		if (!batch && n->stop)
			break;
		pthread_mutex_unlock(&n->lock);
		while (batch) {
			struct notify_item *next = batch->next;
			send_one(n, batch);
			free(batch);
			batch = next;
		}
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct tfs_notifier *n, struct fuse_session *se)
{
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->se = se;
	n->head = n->tail = NULL;
	n->stop = false;
	int r = pthread_create(&n->thread, NULL, notifier_main, n);
	n->started = r == 0;
	if (r) {
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
	}
	return -r;
}

void notifier_stop(struct tfs_notifier *n)
{
	if (!n->started)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	n->started = false;
}

static void queue(struct tfs_notifier *n, fuse_ino_t ino, const char *name)
{
	if (!n->started)
		return;
	size_t len = strlen(name);
	struct notify_item *it = malloc(sizeof(*it) + len + 1);
	if (!it) {
		tfs_warn("out of memory: a kernel cache invalidation of inode %llu is lost",
			 (unsigned long long)ino);
		return;
	}
	it->next = NULL;
	it->ino = ino;
	memcpy(it->name, name, len + 1);
	pthread_mutex_lock(&n->lock);
	if (n->tail)
		n->tail->next = it;
	else
		n->head = it;
	n->tail = it;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

void notify_inval_inode(struct tfs_notifier *n, fuse_ino_t ino) { queue(n, ino, ""); }

void notify_inval_entry(struct tfs_notifier *n, fuse_ino_t parent, const char *name)
{
	if (name[0])
		queue(n, parent, name);
}
