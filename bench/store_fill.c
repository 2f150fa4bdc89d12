/* store-fill: writes messages into a wsbroker database through the store's
 * own API (storage/store.h), so that a benchmark can time a broker starting
 * on a big database without publishing a million messages first. STOMP queue
 * messages are spread round-robin over Q queues; MQTT session messages over S
 * persistent sessions, each created with one subscription. The broker's caps
 * (queue_max_messages, mqtt_max_queued) are checked here too: a fill that
 * the broker could never have stored is refused.
 *
 * Writes go through the writer thread like the broker's own, with a bounded
 * number outstanding so memory stays flat however many are asked for. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "log.h"
#include "store.h"

#define MAX_OUTSTANDING 50000   /* operations queued and not yet committed */

struct fill_opts {
	const char *db;
	enum store_sync sync;
	uint64_t queue_msgs, queues, queue_max;
	const char *queue_prefix;
	uint64_t session_msgs, sessions, session_max;
	const char *session_prefix;
	const char *topic;
	size_t size;
};

struct fill {
	struct store *st;
	uint64_t queued, done;
	enum store_status first_error;
};

static const char usage[] =
"usage: store-fill --db PATH [options]\n"
"  --db PATH            database file (created if missing; appended to)\n"
"  --queue-msgs N       STOMP queue messages in all (0)\n"
"  --queues Q           spread round-robin over Q queues (10)\n"
"  --queue-prefix P     queue names P0..P(Q-1) (bench.q: /queue/bench.qN)\n"
"  --queue-max N        refuse more than N per queue (100000, the broker's\n"
"                       queue_max_messages default)\n"
"  --session-msgs N     MQTT QoS 1 messages queued for absent sessions (0)\n"
"  --sessions S         spread over S persistent sessions (1000)\n"
"  --session-prefix P   client ids P0..P(S-1) (wsb-bench-s: wsbroker-bench\n"
"                       --clean 0 subscribers find them)\n"
"  --session-max N      refuse more than N per session (1000, the broker's\n"
"                       mqtt_max_queued default)\n"
"  --topic T            the sessions' subscription and the messages' topic\n"
"                       (bench/t0)\n"
"  --size B             payload bytes (64)\n"
"  --sync S             full | normal | off while filling (off)\n"
"  --help               this text\n";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void op_done(void *arg, enum store_status status)
{
	struct fill *f = arg;

	f->done++;
	if (status != STORE_OK && f->first_error == STORE_OK)
		f->first_error = status;
}

/* Let the writer catch up before queueing more. */
static void throttle(struct fill *f)
{
	while (f->queued - f->done > MAX_OUTSTANDING) {
		if (store_poll(f->st) == 0)
			usleep(500);
	}
}

/* Every store_* write returns 0 or -1 (out of memory). */
static int queued(struct fill *f, int rc)
{
	if (rc < 0) {
		fprintf(stderr, "store-fill: cannot queue a write (out of memory?)\n");
		return -1;
	}
	f->queued++;
	throttle(f);
	return 0;
}

static int fill_queues(struct fill *f, const struct fill_opts *o, const uint8_t *payload)
{
	char name[256];
	uint64_t seq;

	for (uint64_t i = 0; i < o->queue_msgs; i++) {
		snprintf(name, sizeof(name), "%s%" PRIu64, o->queue_prefix, i % o->queues);
		struct store_qmsg q = { .queue = name, .payload = payload, .payload_len = o->size };

		if (queued(f, store_queue_append(f->st, &q, &seq, op_done, f)) < 0)
			return -1;
	}
	return 0;
}

static int fill_sessions(struct fill *f, const struct fill_opts *o, const uint8_t *payload)
{
	char id[256];
	uint64_t seq, wall = clock_wall_ms();

	for (uint64_t k = 0; k < o->sessions; k++) {
		snprintf(id, sizeof(id), "%s%" PRIu64, o->session_prefix, k);
		struct store_session ss = { .client_id = id, .proto_level = 4, .updated_ms = wall };

		if (queued(f, store_session_put(f->st, &ss, op_done, f)) < 0 ||
		    queued(f, store_session_sub_put(f->st, id, o->topic, 1, op_done, f)) < 0)
			return -1;
	}
	for (uint64_t i = 0; i < o->session_msgs; i++) {
		snprintf(id, sizeof(id), "%s%" PRIu64, o->session_prefix, i % o->sessions);
		struct store_msg m = {
			.client_id = id, .topic = o->topic, .payload = payload,
			.payload_len = o->size, .qos = 1, .state = STORE_MSG_QUEUED,
		};

		if (queued(f, store_session_msg_add(f->st, &m, &seq, op_done, f)) < 0)
			return -1;
	}
	return 0;
}

static int count(const char *arg, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(arg, &end, 10);

	if (end == arg || *end || arg[0] == '-') {
		fprintf(stderr, "store-fill: '%s' is not a count\n", arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* 0 run, 1 --help printed, -1 bad options (message printed). */
static int parse(struct fill_opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", 1, 0, 'd' }, { "queue-msgs", 1, 0, 'm' }, { "queues", 1, 0, 'q' },
		{ "queue-prefix", 1, 0, 'p' }, { "queue-max", 1, 0, 'x' },
		{ "session-msgs", 1, 0, 'M' }, { "sessions", 1, 0, 'S' },
		{ "session-prefix", 1, 0, 'P' }, { "session-max", 1, 0, 'X' },
		{ "topic", 1, 0, 't' }, { "size", 1, 0, 'z' }, { "sync", 1, 0, 'y' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	uint64_t size = 64;
	int ch, r = 0;

	*o = (struct fill_opts){
		.sync = STORE_SYNC_OFF, .queues = 10, .queue_max = 100000, .queue_prefix = "bench.q",
		.sessions = 1000, .session_max = 1000, .session_prefix = "wsb-bench-s",
		.topic = "bench/t0",
	};
	while (r == 0 && (ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd': o->db = optarg; break;
		case 'p': o->queue_prefix = optarg; break;
		case 'P': o->session_prefix = optarg; break;
		case 't': o->topic = optarg; break;
		case 'm': r = count(optarg, &o->queue_msgs); break;
		case 'q': r = count(optarg, &o->queues); break;
		case 'x': r = count(optarg, &o->queue_max); break;
		case 'M': r = count(optarg, &o->session_msgs); break;
		case 'S': r = count(optarg, &o->sessions); break;
		case 'X': r = count(optarg, &o->session_max); break;
		case 'z': r = count(optarg, &size); break;
		case 'y':
			if (store_parse_sync(optarg, &o->sync) < 0) {
				fprintf(stderr, "store-fill: --sync takes full, normal or off\n");
				r = -1;
			}
			break;
		case 'h': fputs(usage, stdout); return 1;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (r < 0)
		return -1;
	o->size = (size_t)size;
	const char *bad = NULL;

	if (optind < argc)
		bad = "unexpected argument";
	else if (!o->db)
		bad = "--db is required";
	else if (size > (64u << 20))
		bad = "--size is at most 64 MiB";
	else if ((o->queue_msgs && !o->queues) || (o->session_msgs && !o->sessions))
		bad = "messages need at least one queue / session";
	else if (o->queues && (o->queue_msgs + o->queues - 1) / o->queues > o->queue_max)
		bad = "more messages per queue than --queue-max (the broker would refuse them)";
	else if (o->sessions && (o->session_msgs + o->sessions - 1) / o->sessions > o->session_max)
		bad = "more messages per session than --session-max (the broker would refuse them)";
	if (bad) {
		fprintf(stderr, "store-fill: %s\n", bad);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fill_opts o;
	struct fill f = { 0 };
	char err[512];
	int rc = parse(&o, argc, argv);

	if (rc)
		return rc > 0 ? 0 : 2;
	uint8_t *payload = malloc(o.size ? o.size : 1);
	if (!payload)
		return 1;
	memset(payload, 'x', o.size);
	double t0 = now_s();

	f.st = store_open(o.db, o.sync, &(struct store_log){.fn = log_sink}, err, sizeof(err));
	if (!f.st) {
		fprintf(stderr, "store-fill: %s: %s\n", o.db, err);
		free(payload);
		return 1;
	}
	rc = fill_queues(&f, &o, payload) < 0 ||
	     (o.session_msgs && fill_sessions(&f, &o, payload) < 0);
	store_close(f.st);
	free(payload);
	double secs = now_s() - t0;

	if (rc || f.first_error != STORE_OK) {
		fprintf(stderr, "store-fill: %s: writing failed: %s\n", o.db,
			f.first_error != STORE_OK ? store_status_name(f.first_error) : "see above");
		return 1;
	}
	printf("store-fill: %" PRIu64 " queue messages in %" PRIu64 " queues, %" PRIu64
	       " session messages in %" PRIu64 " sessions, %zu B each: %" PRIu64
	       " writes in %.2f s (%.0f/s)\n",
	       o.queue_msgs, o.queue_msgs ? o.queues : 0, o.session_msgs,
	       o.session_msgs ? o.sessions : 0, o.size, f.done, secs,
	       secs > 0 ? (double)f.done / secs : 0);
	return 0;
}
