/*
 * worker.h - one periodic background thread: it runs fn every interval_ms, or at once when
 * kicked, until stopped.
 *
 * Each worker has its own lock and condition variable, so that nothing but its interval, a kick
 * or a stop wakes it.  (Borrowing another module's condition variable made the L1 demotion pass
 * run once per queued fetch and L2 upkeep once per fill.)  fn runs with no lock held; a stop
 * waits for a run in progress to end.  The clock is CLOCK_MONOTONIC: changing the wall clock
 * neither delays nor hurries a worker.
 *
 * Thread-safety: start and stop from one owner thread; kick and runs from any thread.
 */
#ifndef TIERFS_WORKER_H
#define TIERFS_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct tfs_worker {
	pthread_mutex_t lock;   /* guards stop and kicked */
	pthread_cond_t cond;    /* signalled on a kick or a stop */
	uint64_t interval_ms;   /* immutable while running */
	void (*fn)(void *arg);  /* immutable while running */
	void *arg;
	bool stop, kicked;
	bool started;           /* the owner's: the thread exists */
	pthread_t thread;
};

/* Starts the thread (w must be zeroed or stopped).  0 or -errno. */
int tfs_worker_start(struct tfs_worker *w, uint64_t interval_ms, void (*fn)(void *arg), void *arg);
/* Runs fn as soon as possible (once, however many kicks arrive meanwhile). */
void tfs_worker_kick(struct tfs_worker *w);
/* Stops the thread and waits for it; a worker never started (zeroed) is left as it is. */
void tfs_worker_stop(struct tfs_worker *w);

#endif
