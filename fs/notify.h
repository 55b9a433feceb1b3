/*
 * notify.h - the kernel notifier: invalidations of the kernel's caches (an inode's attributes,
 * a name's entry, negative ones included), sent from a thread of its own, never from inside a
 * FUSE operation, where libfuse warns they can deadlock.
 *
 * The queue has no bound: an invalidation is never dropped (after invalidating a tree of any
 * size the kernel keeps none of its old attributes).  Each queued item is a few dozen bytes;
 * the thread drains the queue as fast as the kernel takes them.
 *
 * Thread-safe.  Lock: n->lock guards the queue and stop; the kernel is called without it.
 */
#ifndef TIERFS_NOTIFY_H
#define TIERFS_NOTIFY_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>

struct notify_item;

struct tfs_notifier {
	pthread_mutex_t lock;       /* guards head, tail and stop */
	pthread_cond_t cond;
	struct notify_item *head, *tail;
	bool stop;
	bool started;               /* the owner's */
	pthread_t thread;
	struct fuse_session *se;
};

int notifier_start(struct tfs_notifier *n, struct fuse_session *se);
/* Sends what is queued, then stops the thread. */
void notifier_stop(struct tfs_notifier *n);
/* Queues "drop the kernel's cached attributes of ino" (its pages go at the next open, or when
 * the kernel sees the new mtime). */
void notify_inval_inode(struct tfs_notifier *n, fuse_ino_t ino);
/* Queues "drop the kernel's entry for name in parent" (a negative one too). */
void notify_inval_entry(struct tfs_notifier *n, fuse_ino_t parent, const char *name);

#endif
