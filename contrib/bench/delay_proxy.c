/*
 * delay_proxy.c - the S3 model of the benchmarks: a TCP proxy on loopback that puts the server
 * far away (a fixed delay each way) behind a per-connection bandwidth cap, as real S3 is (tens
 * of ms, tens of MB/s per connection: a client gets more by opening more connections).  The
 * same model as delay_proxy.py, at a small fraction of its CPU, so that on a 2-core machine the
 * model does not take the CPU the client under test needs.
 *
 *   delay_proxy --listen-port P --target-port T --rtt-ms 20 [--conn-mbps 40]
 *
 * Each piece of data is delivered rtt/2 after it arrived and, with a cap, not before the
 * pieces ahead of it have left the capped link (MB = 10^6 bytes).  Each direction holds at
 * most about four round trips at the cap (at least 1 MiB) before it stops reading, so the
 * sender is slowed by TCP's own flow control.  Connection set-up pays a round trip too.
 * SIGTERM or SIGINT stops it.  Bench tooling, not part of tierfs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PIECE (256 * 1024)

static int target_port;
static uint64_t delay_ns;
static double rate; /* bytes per ns, 0: no cap */

struct piece {
	uint64_t due;
	size_t len; /* 0: end of stream */
	char data[PIECE];
};

struct pipe_dir {
	int src, dst;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct piece *ring;
	size_t cap, head, count;
	uint64_t link_free;
	bool failed;      /* the receiving end is gone: the reader stops */
	int *refs; /* the connection's: the last direction to finish closes both sockets */
	pthread_mutex_t *conn_lock;
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *deliver(void *arg)
{
	struct pipe_dir *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->lock);
		while (!d->count)
			pthread_cond_wait(&d->cond, &d->lock);
		struct piece *p = &d->ring[d->head];
		pthread_mutex_unlock(&d->lock);
		sleep_until(p->due);
		if (!p->len) {
			shutdown(d->dst, SHUT_WR);
			break;
		}
		size_t off = 0;
		while (off < p->len) {
			ssize_t n = send(d->dst, p->data + off, p->len - off, MSG_NOSIGNAL);
			if (n <= 0)
				goto out;
			off += (size_t)n;
		}
		pthread_mutex_lock(&d->lock);
		d->head = (d->head + 1) % d->cap;
		d->count--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
out:
	pthread_mutex_lock(&d->lock);
	d->failed = true;
	d->count = 0;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	shutdown(d->src, SHUT_RD); /* unblocks the reader's recv */
	return NULL;
}

static void *pump(void *arg)
{
	struct pipe_dir *d = arg;
	pthread_t t;
	pthread_create(&t, NULL, deliver, d);
	for (;;) {
		pthread_mutex_lock(&d->lock);
		while (d->count == d->cap && !d->failed)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->failed) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		struct piece *p = &d->ring[(d->head + d->count) % d->cap];
		pthread_mutex_unlock(&d->lock);
		ssize_t n = recv(d->src, p->data, PIECE, 0);
		uint64_t now = now_ns();
		p->len = n > 0 ? (size_t)n : 0;
		p->due = now + delay_ns;
		if (n > 0 && rate > 0) {
			d->link_free = (d->link_free > now ? d->link_free : now) +
				       (uint64_t)((double)n / rate);
			p->due = d->link_free + delay_ns;
		}
		pthread_mutex_lock(&d->lock);
		bool failed = d->failed;
		if (!failed)
			d->count++;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		if (n <= 0 || failed)
			break;
	}
	pthread_join(t, NULL);
	pthread_mutex_lock(d->conn_lock);
	int last = --*d->refs == 0;
	pthread_mutex_unlock(d->conn_lock);
	if (last) {
		close(d->src);
		close(d->dst);
		free(d->refs);
		pthread_mutex_destroy(d->conn_lock);
		free(d->conn_lock);
	}
	free(d->ring);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
	return NULL;
}

static struct pipe_dir *dir_new(int src, int dst, int *refs, pthread_mutex_t *cl)
{
	struct pipe_dir *d = calloc(1, sizeof(*d));
	double hold = rate > 0 ? rate * (double)delay_ns * 4 : 0;
	size_t bytes = hold > (1 << 20) ? (size_t)hold : (1 << 20);
	d->cap = bytes / PIECE + 2;
	d->ring = malloc(d->cap * sizeof(*d->ring));
	d->src = src;
	d->dst = dst;
	d->refs = refs;
	d->conn_lock = cl;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	return d;
}

static void *handle(void *arg)
{
	int c = (int)(intptr_t)arg;
	sleep_until(now_ns() + delay_ns); /* the SYN's way there ... */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)target_port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(c);
		if (s >= 0)
			close(s);
		return NULL;
	}
	sleep_until(now_ns() + delay_ns); /* ... and the SYN-ACK's way back */
	int one = 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int *refs = malloc(sizeof(*refs));
	pthread_mutex_t *cl = malloc(sizeof(*cl));
	*refs = 2;
	pthread_mutex_init(cl, NULL);
	pthread_t t1, t2;
	pthread_create(&t1, NULL, pump, dir_new(c, s, refs, cl));
	pthread_create(&t2, NULL, pump, dir_new(s, c, refs, cl));
	pthread_detach(t1);
	pthread_detach(t2);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	int port = 0;
	double rtt_ms = -1, mbps = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen-port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--target-port"))
			target_port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rtt-ms"))
			rtt_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--conn-mbps"))
			mbps = atof(argv[i + 1]);
	}
	if (!port || !target_port || rtt_ms < 0) {
		fprintf(stderr, "usage: delay_proxy --listen-port P --target-port T --rtt-ms MS "
				"[--conn-mbps MB/s]\n");
		return 2;
	}
	delay_ns = (uint64_t)(rtt_ms * 1e6 / 2);
	rate = mbps * 1e6 / 1e9;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 256) < 0) {
		perror("delay_proxy: listen");
		return 1;
	}
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, handle, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
}
