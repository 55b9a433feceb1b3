/*
 * worker.c - periodic background threads (worker.h).
 */
#include <errno.h>
#include <time.h>

#include "util.h"
#include "worker.h"

static void *worker_main(void *arg)
{
	struct tfs_worker *w = arg;
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		struct timespec until = tfs_deadline_in(w->interval_ms);
		while (!w->stop && !w->kicked &&
		       pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
			;
		if (w->stop)
			break;
		w->kicked = false;
		pthread_mutex_unlock(&w->lock);
		w->fn(w->arg);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int tfs_worker_start(struct tfs_worker *w, uint64_t interval_ms, void (*fn)(void *arg), void *arg)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->interval_ms = interval_ms ? interval_ms : 1;
	w->fn = fn;
	w->arg = arg;
	w->stop = w->kicked = false;
	int r = pthread_create(&w->thread, NULL, worker_main, w);
	w->started = r == 0;
	if (r) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
	}
	return -r;
}

void tfs_worker_kick(struct tfs_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->kicked = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void tfs_worker_stop(struct tfs_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	w->started = false;
}
