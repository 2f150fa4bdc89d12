/* Runs every fuzz target without libFuzzer, as part of `make check`: each
 * target gets its hand-written seeds, then deterministic mutations of them and
 * plain random bytes. Every input sits in a heap block of exactly its size so
 * that ASan reports any read past the end. A crash or abort is the failure;
 * the same inputs are generated on every run, so a failure reproduces.
 * Optional argument: the number of generated inputs per target. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_INPUT 4096
#define DEFAULT_RUNS 20000

struct seed {
	const char *bytes;
	size_t len;
};

#define S(lit) { lit, sizeof(lit) - 1 }

#define H4 "a:\n" "b: 1\n" "a:2\n" "c:\t\n"
#define H16 H4 H4 H4 H4
static const struct seed http_seeds[] = {
	S("GET /stomp HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive, Upgrade\r\n"
	  "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
	  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	  "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, mqtt\r\n"
	  "Origin: http://localhost:8080\r\n\r\n"),
	S("GET /healthz HTTP/1.0\nHost: a\nX:  trimmed \t\n\n"),
	S("GET /metrics?x=1 HTTP/1.1\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\nbody"),
	S("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"),
	S("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
	S("GET / HTTP/1.1\n" H16 H16 H16 H16 "\n"),      /* 64 fields: the most */
};

/* First byte: options for the ws target (see fuzz_ws_frame.c). */
static const struct seed ws_seeds[] = {
	/* masked "Hello", masked ping, close 1000 "bye" */
	S("\x01\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	  "\x89\x80\x01\x02\x03\x04"
	  "\x88\x85\x00\x00\x00\x00\x03\xe8" "bye"),
	/* fragmented text "Hel"+"lo" with a ping in between, unmasked */
	S("\x42\x01\x03Hel\x89\x01p\x80\x02lo"),
	/* a euro sign split across fragments, then binary 126 bytes header */
	S("\x02\x01\x01\xe2\x00\x02\x82\xac\x80\x00\x82\x7e\x00\x7e"),
	/* 64-bit length, continuation without a start, bad close */
	S("\x00\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"),
	S("\x02\x80\x01x\x88\x02\x03\xed"),
	S("\x03\x88\x83\x00\x00\x00\x00\x03\xe8\xff"),
	/* read as a handshake key too */
	S("\x00" "dGhlIHNhbXBsZSBub25jZQ=="),
};

static const struct seed stomp_seeds[] = {
	S("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:10000,10000\n\n\0"),
	S("STOMP\r\naccept-version:1.0,1.1,1.2\r\nhost:broker\r\nlogin:guest\r\n"
	  "passcode:guest\r\n\r\n\0"),
	S("SEND\ndestination:/queue/a\ncontent-type:text/plain\ncontent-length:5\n\nhe\0lo\0"),
	S("SUBSCRIBE\nid:0\ndestination:/topic/a.b\nack:client-individual\n\n\0\n\n"),
	S("SEND\ndestination:/topic/x\nescaped:a\\nb\\cc\\\\\n\nbody\0"),
	S("\n\nDISCONNECT\nreceipt:77\n\n\0"),
};

static const struct seed mqtt_seeds[] = {
	/* CONNECT 3.1.1 client "c1", PUBLISH qos1, SUBSCRIBE, PINGREQ, DISCONNECT */
	S("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02" "c1"),
	S("\x32\x09\x00\x03" "a/b\x00\x01" "hi"),
	S("\x82\x08\x00\x01\x00\x03" "a/#\x01"),
	S("\xc0\x00\xe0\x00"),
	/* CONNECT 5.0 with session expiry, CONNECT 3.1 (MQIsdp) */
	S("\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x05\x11\x00\x00\x00\x3c\x00\x00"),
	S("\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02" "c1"),
	/* remaining length in 4 bytes */
	S("\x30\x80\x80\x80\x01\x00\x01t"),
};

static const struct seed acl_seeds[] = {
	S("# anonymous\ntopic read public/#\nuser alice\ntopic readwrite a/#\n"
	  "topic deny a/secret\nqueue read jobs.*\nqueue write jobs.in\n"
	  "pattern readwrite devices/%c/#\npattern read inbox/%u\n"),
	S("a/+/c\na/#\n"),
	S("#\n$SYS/x\n"),
	S("+/x\n$SYS/#\n"),
	S("user  bob smith \r\n  topic  write  x y \r\ntopic b\n"),
	S("topic read\n"),
};

struct target {
	const char *name;
	int (*fn)(const uint8_t *data, size_t size);
	const struct seed *seeds;
	size_t nseeds;
};

#define T(name, seeds) { #name, name, seeds, sizeof(seeds) / sizeof(seeds[0]) }

static const struct target targets[] = {
	T(fuzz_http_parse, http_seeds),
	T(fuzz_ws_frame, ws_seeds),
	T(fuzz_stomp_codec, stomp_seeds),
	T(fuzz_mqtt_codec, mqtt_seeds),
	T(fuzz_acl, acl_seeds),
};

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* Bytes that parsers treat specially: delimiters, lengths, boundaries. */
static uint8_t interesting(void)
{
	static const uint8_t v[] = { 0x00, 0x01, 0x0a, 0x0d, 0x20, 0x3a, 0x5c, 0x7e,
		0x7f, 0x80, 0x81, 0x88, 0xbf, 0xc0, 0xe2, 0xed, 0xf4, 0xff };
	return v[below(sizeof v)];
}

/* One random edit of buf[0..*len) (capacity MAX_INPUT). */
static void mutate_once(uint8_t *buf, size_t *len, const struct target *t)
{
	size_t n = *len, at = below(n + 1), k;
	switch (rnd() % 8) {
	case 0:         /* flip a bit */
		if (n)
			buf[below(n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1:         /* set a byte */
		if (n)
			buf[below(n)] = rnd() & 1 ? interesting() : (uint8_t)rnd();
		break;
	case 2:         /* insert bytes */
		k = 1 + below(8);
		if (n + k > MAX_INPUT)
			break;
		memmove(buf + at + k, buf + at, n - at);
		for (size_t i = 0; i < k; i++)
			buf[at + i] = rnd() & 1 ? interesting() : (uint8_t)rnd();
		*len = n + k;
		break;
	case 3:         /* delete bytes */
		k = below(n - at + 1);
		memmove(buf + at, buf + at + k, n - at - k);
		*len = n - k;
		break;
	case 4:         /* duplicate a chunk (repeated frames, headers) */
	{
		uint8_t chunk[64];
		k = 1 + below(n < sizeof chunk ? n : sizeof chunk);
		if (!n || n + k > MAX_INPUT)
			break;
		memcpy(chunk, buf + below(n - k + 1), k);
		memmove(buf + at + k, buf + at, n - at);
		memcpy(buf + at, chunk, k);
		*len = n + k;
		break;
	}
	case 5:         /* append another seed (several frames in one read) */
	{
		const struct seed *s = &t->seeds[below(t->nseeds)];
		k = s->len < MAX_INPUT - n ? s->len : MAX_INPUT - n;
		memcpy(buf + n, s->bytes, k);
		*len = n + k;
		break;
	}
	case 6:         /* truncate */
		*len = at;
		break;
	default:        /* overwrite a run of bytes with one value */
		k = below(n - at + 1);
		memset(buf + at, interesting(), k);
		break;
	}
}

/* Runs fn on an exact-size heap copy. */
static void run(const struct target *t, const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy) {
		perror("malloc");
		exit(2);
	}
	memcpy(copy, p, n);
	t->fn(copy, n);
	free(copy);
}

static void run_target(const struct target *t, size_t runs, uint8_t *buf)
{
	for (size_t i = 0; i < t->nseeds; i++)
		run(t, (const uint8_t *)t->seeds[i].bytes, t->seeds[i].len);
	for (size_t i = 0; i < runs; i++) {
		size_t len;
		if (i % 16 == 15) {
			/* random bytes, mostly short */
			len = below(rnd() & 1 ? 64 : MAX_INPUT + 1);
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)rnd();
		} else {
			const struct seed *s = &t->seeds[below(t->nseeds)];
			len = s->len;
			memcpy(buf, s->bytes, len);
			for (size_t m = 1 + below(8); m > 0; m--)
				mutate_once(buf, &len, t);
		}
		run(t, buf, len);
	}
}

int main(int argc, char **argv)
{
	size_t runs = argc > 1 ? strtoul(argv[1], NULL, 10) : DEFAULT_RUNS;
	size_t ntargets = sizeof targets / sizeof targets[0];
	static uint8_t buf[MAX_INPUT];

	for (size_t i = 0; i < ntargets; i++)
		run_target(&targets[i], runs, buf);
	printf("fuzz_smoke: %zu targets, %zu generated inputs each plus seeds: no crash\n",
	       ntargets, runs);
	return 0;
}
