/*
 * handles.h - the open file, directory and control handles, on one list, so that any the
 * kernel never released (an unmount racing with an asynchronous RELEASE) are freed at shutdown.
 * A handle struct embeds struct tfs_handle first.
 *
 * Thread-safe.  Lock: hl->lock guards the list.
 */
#ifndef TIERFS_HANDLES_H
#define TIERFS_HANDLES_H

#include <pthread.h>

struct tfs_handle {
	struct tfs_handle *prev, *next;
	void (*free_fn)(struct tfs_handle *h);
};

struct tfs_handles {
	pthread_mutex_t lock;       /* guards the list */
	struct tfs_handle head;
};

void handles_init(struct tfs_handles *hl);
void handle_add(struct tfs_handles *hl, struct tfs_handle *h,
		void (*free_fn)(struct tfs_handle *));
void handle_del(struct tfs_handles *hl, struct tfs_handle *h);
/* Frees every handle still open (after the session ended). */
void handles_free_all(struct tfs_handles *hl);

#endif
