/*
 * handles.c - the list of open handles (handles.h).
 */
#include <stddef.h>

#include "handles.h"
#include "log.h"

void handles_init(struct tfs_handles *hl)
{
	pthread_mutex_init(&hl->lock, NULL);
	hl->head.prev = hl->head.next = &hl->head;
}

void handle_add(struct tfs_handles *hl, struct tfs_handle *h,
		void (*free_fn)(struct tfs_handle *))
{
	h->free_fn = free_fn;
	pthread_mutex_lock(&hl->lock);
	h->next = hl->head.next;
	h->prev = &hl->head;
	hl->head.next->prev = h;
	hl->head.next = h;
	pthread_mutex_unlock(&hl->lock);
}

void handle_del(struct tfs_handles *hl, struct tfs_handle *h)
{
	pthread_mutex_lock(&hl->lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&hl->lock);
}

void handles_free_all(struct tfs_handles *hl)
{
	size_t n = 0;
	while (hl->head.next != &hl->head) {
		struct tfs_handle *h = hl->head.next;
		handle_del(hl, h);
		h->free_fn(h);
		n++;
	}
	if (n)
		tfs_debug("freed %zu handles the kernel did not release before unmounting", n);
	pthread_mutex_destroy(&hl->lock);
}
