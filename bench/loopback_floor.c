/* loopback-floor: the latency floor of a fan-out on this machine, with no
 * broker in the way. It opens N loopback TCP connections, and for each
 * message writes one stamped record to every connection (from one writer
 * thread, or split across several), while one reader thread reads them all
 * through epoll, as the load generator's subscribers do. The latency of a
 * record is the time from the stamp taken before the first write of its
 * message to the read that completes it.
 *
 * A broker fanning one message out to N sockets cannot beat this: it does at
 * least these writes, and the load generator at least these reads. bench/compare
 * runs it beside the fan-out latency runs so the two can be read together. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WRITERS 8
#define MAX_SIZE 65536

struct floor_opts {
	int conns, writers, messages, size;
	double interval_ms;
	bool json;
};

struct floor_run {
	struct floor_opts o;
	int *wfd, *rfd;
	size_t *rgot;               /* bytes of the current record read, per reader fd */
	uint8_t *head;              /* the current record's stamp bytes, 8 per reader fd */
	uint64_t *lat;              /* one per record read */
	atomic_size_t nlat;
	atomic_bool stop;
	pthread_barrier_t start, done;
	uint64_t stamp;             /* of the message being written */
	uint64_t write_ns;          /* writer 0's time in its write loop, in all */
};

struct writer_arg {
	struct floor_run *run;
	int from, to;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "loopback-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Blocking full write: the sockets' buffers are far larger than what one
 * run puts in flight, so this never waits in practice. */
static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

static void write_slice(struct floor_run *r, int from, int to, uint64_t stamp)
{
	uint8_t rec[MAX_SIZE];

	memset(rec, 'x', (size_t)r->o.size);
	memcpy(rec, &stamp, sizeof stamp);
	for (int i = from; i < to; i++)
		write_all(r->wfd[i], rec, (size_t)r->o.size);
}

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	struct floor_run *r = a->run;

	for (;;) {
		pthread_barrier_wait(&r->start);
		if (atomic_load(&r->stop))
			return NULL;
		write_slice(r, a->from, a->to, r->stamp);
		pthread_barrier_wait(&r->done);
	}
}

/* Reads every connection until told to stop; a record is complete once
 * `size` bytes of it are in, and its first 8 bytes are the stamp. */
static void *reader_main(void *p)
{
	struct floor_run *r = p;
	struct epoll_event ev[256];
	uint8_t buf[MAX_SIZE];
	int ep = epoll_create1(0);

	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < r->o.conns; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, r->rfd[i], &e) < 0)
			die("epoll_ctl");
	}
	while (!atomic_load(&r->stop)) {
		int n = epoll_wait(ep, ev, 256, 50);

		for (int k = 0; k < n; k++) {
			int i = (int)ev[k].data.u32;
			ssize_t got = read(r->rfd[i], buf, sizeof buf);

			for (ssize_t off = 0; off < got;) {
				size_t want = (size_t)r->o.size - r->rgot[i];
				size_t take = (size_t)(got - off) < want ? (size_t)(got - off) : want;

				for (size_t b = 0; b < take && r->rgot[i] + b < 8; b++)
					r->head[(size_t)i * 8 + r->rgot[i] + b] = buf[off + (ssize_t)b];
				r->rgot[i] += take;
				off += (ssize_t)take;
				if (r->rgot[i] == (size_t)r->o.size) {
					uint64_t stamp;

					memcpy(&stamp, r->head + (size_t)i * 8, 8);
					r->rgot[i] = 0;
					r->lat[atomic_fetch_add(&r->nlat, 1)] = now_ns() - stamp;
				}
			}
		}
	}
	close(ep);
	return NULL;
}

static void raise_nofile(int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)need ? rl.rlim_max : (rlim_t)need;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void open_pairs(struct floor_run *r)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof sa;
	int one = 1;
	int ls = socket(AF_INET, SOCK_STREAM, 0);

	raise_nofile(2 * r->o.conns + 64);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &len) < 0)
		die("listen on 127.0.0.1");
	for (int i = 0; i < r->o.conns; i++) {
		r->rfd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (r->rfd[i] < 0 || connect(r->rfd[i], (struct sockaddr *)&sa, sizeof sa) < 0)
			die("connect (is the open-files limit high enough?)");
		r->wfd[i] = accept(ls, NULL, NULL);
		if (r->wfd[i] < 0)
			die("accept");
		setsockopt(r->wfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		fcntl(r->rfd[i], F_SETFL, O_NONBLOCK);
	}
	close(ls);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)((double)n * p);

	return n ? (double)v[i < n ? i : n - 1] / 1e6 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loopback-floor [--connections N] [--writers W] [--messages M]\n"
		"                      [--interval-ms MS] [--size BYTES] [--json]\n"
		"  --connections N   loopback TCP connections, one record each per message (1000)\n"
		"  --writers W       threads splitting the writes of each message (1, at most %d)\n"
		"  --messages M      messages measured (100)\n"
		"  --interval-ms MS  pause between messages (20)\n"
		"  --size BYTES      record size, at least 8 (64)\n"
		"  --json            one JSON line instead of the human line\n",
		MAX_WRITERS);
}

static int parse(int argc, char **argv, struct floor_opts *o)
{
	static const struct option longs[] = {
		{ "connections", 1, 0, 'c' }, { "writers", 1, 0, 'w' }, { "messages", 1, 0, 'm' },
		{ "interval-ms", 1, 0, 'i' }, { "size", 1, 0, 's' },   { "json", 0, 0, 'j' },
		{ "help", 0, 0, 'h' },        { 0, 0, 0, 0 }
	};
	int c;

	*o = (struct floor_opts){ .conns = 1000, .writers = 1, .messages = 100, .size = 64,
				  .interval_ms = 20 };
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'c': o->conns = atoi(optarg); break;
		case 'w': o->writers = atoi(optarg); break;
		case 'm': o->messages = atoi(optarg); break;
		case 'i': o->interval_ms = atof(optarg); break;
		case 's': o->size = atoi(optarg); break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->conns < 1 || o->conns > 100000 || o->writers < 1 || o->writers > MAX_WRITERS ||
	    o->writers > o->conns || o->messages < 1 || o->messages > 100000 || o->size < 8 ||
	    o->size > MAX_SIZE || o->interval_ms < 0) {
		fprintf(stderr, "loopback-floor: an option is out of range\n");
		usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct floor_run r = { 0 };
	struct writer_arg wa[MAX_WRITERS];
	pthread_t wt[MAX_WRITERS], rt;

	if (parse(argc, argv, &r.o) < 0)
		return 2;
	r.wfd = calloc((size_t)r.o.conns, sizeof *r.wfd);
	r.rfd = calloc((size_t)r.o.conns, sizeof *r.rfd);
	r.rgot = calloc((size_t)r.o.conns, sizeof *r.rgot);
	r.head = calloc((size_t)r.o.conns, 8);
	r.lat = calloc((size_t)r.o.conns * (size_t)r.o.messages, sizeof *r.lat);
	if (!r.wfd || !r.rfd || !r.rgot || !r.head || !r.lat)
		die("calloc");
	open_pairs(&r);
	pthread_barrier_init(&r.start, NULL, (unsigned)r.o.writers);
	pthread_barrier_init(&r.done, NULL, (unsigned)r.o.writers);
	for (int t = 0; t < r.o.writers; t++)
		wa[t] = (struct writer_arg){ &r, r.o.conns * t / r.o.writers,
					     r.o.conns * (t + 1) / r.o.writers };
	for (int t = 1; t < r.o.writers; t++)
		pthread_create(&wt[t], NULL, writer_main, &wa[t]);
	pthread_create(&rt, NULL, reader_main, &r);

	/* Writer 0 is this thread; it paces the messages. */
	for (int m = 0; m < r.o.messages; m++) {
		struct timespec pause = { 0, (long)(r.o.interval_ms * 1e6) };

		nanosleep(&pause, NULL);
		r.stamp = now_ns();
		pthread_barrier_wait(&r.start);
		write_slice(&r, wa[0].from, wa[0].to, r.stamp);
		r.write_ns += now_ns() - r.stamp;
		pthread_barrier_wait(&r.done);
	}
	size_t want = (size_t)r.o.conns * (size_t)r.o.messages;
	for (uint64_t t0 = now_ns(); atomic_load(&r.nlat) < want && now_ns() - t0 < 5000000000ull;)
		usleep(1000);
	atomic_store(&r.stop, true);
	pthread_barrier_wait(&r.start);
	for (int t = 1; t < r.o.writers; t++)
		pthread_join(wt[t], NULL);
	pthread_join(rt, NULL);

	size_t n = atomic_load(&r.nlat);
	qsort(r.lat, n, sizeof *r.lat, cmp_u64);
	double write_us = (double)r.write_ns / r.o.messages / wa[0].to * 1e-3;
	if (r.o.json)
		printf("{\"connections\":%d,\"writers\":%d,\"messages\":%d,\"size\":%d,"
		       "\"records\":%zu,\"missing\":%zu,\"write_us\":%.2f,\"latency_ms\":{\"p50\":%.4f,"
		       "\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f}}\n",
		       r.o.conns, r.o.writers, r.o.messages, r.o.size, n, want - n, write_us,
		       pct_ms(r.lat, n, 0.5), pct_ms(r.lat, n, 0.99), pct_ms(r.lat, n, 0.999),
		       pct_ms(r.lat, n, 1.0));
	else
		printf("loopback floor: %d connections, %d writer thread(s), %d x %d B: "
		       "p50 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms; %.2f us per write; "
		       "%zu of %zu records read\n",
		       r.o.conns, r.o.writers, r.o.messages, r.o.size, pct_ms(r.lat, n, 0.5),
		       pct_ms(r.lat, n, 0.99), pct_ms(r.lat, n, 0.999), pct_ms(r.lat, n, 1.0),
		       write_us, n, want);
	for (int i = 0; i < r.o.conns; i++) {
		close(r.wfd[i]);
		close(r.rfd[i]);
	}
	free(r.wfd);
	free(r.rfd);
	free(r.rgot);
	free(r.head);
	free(r.lat);
	return n == want ? 0 : 1;
}
