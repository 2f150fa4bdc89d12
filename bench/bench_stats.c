/* bench_stats: what the load generator measures, kept apart from sockets so
 * that it stays simple to check: payload stamps, per-stream sequence
 * tracking (lost, duplicated, out of order) and the latency histogram. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 64 printable characters, none of them special to STOMP or JSON. */
static const char stamp_alphabet[65] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int stamp_digit(uint8_t ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

void bench_stamp_write(uint8_t *p, uint64_t ts, uint32_t pub, uint32_t seq)
{
	/* 96 bits: ts (48) | pub (16) as the high word, seq (32) low. */
	uint64_t hi = (ts & 0xffffffffffffULL) << 16 | (pub & 0xffff);
	uint32_t lo = seq;

	for (int i = 15; i >= 0; i--) {
		p[i] = (uint8_t)stamp_alphabet[lo & 63];
		lo = lo >> 6 | (uint32_t)(hi & 63) << 26;
		hi >>= 6;
	}
}

int bench_stamp_read(const uint8_t *p, size_t n, uint64_t *ts, uint32_t *pub, uint32_t *seq)
{
	uint64_t hi = 0;
	uint32_t lo = 0;

	if (n < BENCH_STAMP_LEN)
		return -1;
	for (int i = 0; i < BENCH_STAMP_LEN; i++) {
		int d = stamp_digit(p[i]);

		if (d < 0)
			return -1;
		hi = hi << 6 | lo >> 26;
		lo = lo << 6 | (uint32_t)d;
	}
	*ts = hi >> 16;
	*pub = (uint32_t)(hi & 0xffff);
	*seq = lo;
	return 0;
}

void bench_seq_note(struct bench_seq *s, uint32_t seq, struct bench_counts *c)
{
	if (seq == s->next) {
		s->seen = s->seen << 1 | 1;
		s->next++;
		return;
	}
	if (seq > s->next) {
		uint32_t gap = seq - s->next;

		c->lost += gap;
		s->seen = gap + 1 >= 64 ? 1 : s->seen << (gap + 1) | 1;
		s->next = seq + 1;
		return;
	}
	/* Behind the newest: a message counted lost arriving late, or a copy. */
	uint32_t back = s->next - 1 - seq;

	if (back < 64) {
		uint64_t bit = (uint64_t)1 << back;

		if (s->seen & bit) {
			c->dup++;
			return;
		}
		s->seen |= bit;
	}
	/* Further back than the window remembers: taken as late, not a copy. */
	c->ooo++;
	if (c->lost)
		c->lost--;
}

static size_t hist_index(uint64_t v)
{
	if (v < 2 * BENCH_HIST_SUB)
		return (size_t)v;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 5;
	size_t i = (size_t)shift * BENCH_HIST_SUB + (size_t)(v >> shift);

	return i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1;
}

/* Lowest value and width of bucket i (the inverse of hist_index). */
static void hist_bucket(size_t i, uint64_t *low, uint64_t *width)
{
	if (i < 2 * BENCH_HIST_SUB) {
		*low = i;
		*width = 1;
		return;
	}
	unsigned shift = (unsigned)(i / BENCH_HIST_SUB) - 1;

	*low = (uint64_t)(i - (size_t)shift * BENCH_HIST_SUB) << shift;
	*width = (uint64_t)1 << shift;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.5), seen = 0;

	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t low, width;

			hist_bucket(i, &low, &width);
			uint64_t mid = low + width / 2;
			return mid < h->max ? mid : h->max;
		}
	}
	return h->max;
}

uint64_t bench_rss_bytes(int pid)
{
	char path[64], line[256];
	uint64_t kib = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
			kib = v;
			break;
		}
	}
	fclose(f);
	return kib * 1024;
}
