/* bench_opts: wsbroker-bench's command line: defaults per scenario, checks
 * that the numbers make sense, and the --help text. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

static const char usage[] =
"usage: wsbroker-bench [options]\n"
"  --scenario S     fanout (1 publisher -> N subscribers, one topic; default),\n"
"                   fanin (N publishers -> 1 subscriber), pairs (N publisher/\n"
"                   subscriber pairs on N topics), queue (STOMP: N producers ->\n"
"                   M competing consumers on /queue/...), idle (hold N sessions,\n"
"                   report broker RSS per connection), connect (connections/s)\n"
"  --proto P        mqtt (3.1.1, default) | stomp (1.2) | mixed (idle, connect:\n"
"                   alternate; over tcp the port must take both)\n"
"  --transport T    tcp (default) | ws (HTTP upgrade, masked client frames)\n"
"  --host H         broker address (127.0.0.1)\n"
"  --port P         broker port (ws or mixed: 8080, mqtt: 1883, stomp: 61613)\n"
"  --path P         WebSocket path (default /mqtt or /stomp by protocol)\n"
"  --user U, --pass P   login (MQTT username/password, STOMP login/passcode)\n"
"  --prefix X       topic prefix: MQTT X/tN, STOMP /topic/X.tN, /queue/X.qN (bench)\n"
"  --subscribers N  subscribers (fanout 100, pairs N, queue consumers 1);\n"
"                   idle: sessions to hold (1000)\n"
"  --slow K         fanout: K more subscribers on the topic that stop reading\n"
"                   once subscribed; the figures are the N others' (0)\n"
"  --publishers N   publishers (fanin 100, pairs N, queue producers 1; else 1)\n"
"  --topics N       topics: publisher i and subscriber j use topic i%N, j%N\n"
"                   (fanout/fanin 1, pairs N, idle 1)\n"
"  --connections N  connect: handshakes kept in parallel (10)\n"
"  --qos Q          MQTT QoS of publishes and subscriptions, 0 or 1 (0)\n"
"  --clean C        MQTT subscribers' clean-session flag, 0 or 1 (1); with 0\n"
"                   each has a stable client id, so the broker keeps its session\n"
"  --receipts       STOMP: every SEND asks for a RECEIPT, and the window counts\n"
"                   a message done at its RECEIPT (as QoS 1 does at PUBACK)\n"
"  --size B         payload bytes, >= 16 (64)\n"
"  --rate R         msgs/s per publisher; 0 = as fast as the window allows (0)\n"
"  --window W       messages in flight per publisher: sent and not yet\n"
"                   delivered to all its subscribers (or not PUBACKed, or no\n"
"                   RECEIPT yet) (256)\n"
"  --duration S     measured seconds (5); idle: seconds to hold\n"
"  --warmup S       seconds before measuring starts (1)\n"
"  --parallel N     connections handshaking at once during setup (200)\n"
"  --broker-pid P   read the broker's RSS from /proc/P/status: idle, before\n"
"                   connecting and once all are up; others, when publishing\n"
"                   starts and when the measured seconds end\n"
"  --json           one JSON line on stdout instead of the human lines\n"
"  --help           this text\n";

static int pick(const char *arg, const char *const *names, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	fprintf(stderr, "wsbroker-bench: unknown %s '%s'\n", what, arg);
	return -1;
}

static int num(const char *arg, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "wsbroker-bench: '%s' is not a number in [%g, %g]\n", arg, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* Fill in what the user left at -1 from the scenario's defaults. */
static void scenario_defaults(struct bench_opts *o)
{
	long n;

	switch (o->scenario) {
	case BS_FANOUT:
		if (o->subscribers < 0) o->subscribers = 100;
		if (o->publishers < 0) o->publishers = 1;
		if (o->topics < 0) o->topics = 1;
		break;
	case BS_FANIN:
		if (o->publishers < 0) o->publishers = 100;
		if (o->subscribers < 0) o->subscribers = 1;
		if (o->topics < 0) o->topics = 1;
		break;
	case BS_PAIRS:
		n = o->publishers >= 0 ? o->publishers : o->subscribers >= 0 ? o->subscribers : 100;
		if (o->publishers < 0) o->publishers = n;
		if (o->subscribers < 0) o->subscribers = n;
		if (o->topics < 0) o->topics = n;
		break;
	case BS_QUEUE:
		if (o->publishers < 0) o->publishers = 1;
		if (o->subscribers < 0) o->subscribers = 1;
		if (o->topics < 0) o->topics = 1;
		break;
	case BS_IDLE:
		if (o->subscribers < 0) o->subscribers = 1000;
		o->publishers = 0;
		if (o->topics < 0) o->topics = 1;
		break;
	case BS_CONNECT:
		o->subscribers = o->publishers = 0;
		o->topics = 1;
		break;
	}
	if (o->connections < 0) o->connections = 10;
	if (!o->port)
		o->port = o->ws || o->proto == BP_MIXED ? "8080" : o->proto == BP_MQTT ? "1883" : "61613";
}

static int check(const struct bench_opts *o)
{
	const char *bad = NULL;

	if (o->scenario == BS_QUEUE && o->proto != BP_STOMP)
		bad = "the queue scenario is STOMP only (--proto stomp)";
	else if (o->proto == BP_MIXED && o->scenario != BS_IDLE && o->scenario != BS_CONNECT)
		bad = "--proto mixed is for the idle and connect scenarios";
	else if (o->publishers > BENCH_MAX_PUBLISHERS)
		bad = "at most 65536 publishers";
	else if (o->topics < 1)
		bad = "--topics must be at least 1";
	else if (o->scenario <= BS_QUEUE && (o->publishers < 1 || o->subscribers < 0))
		bad = "a message scenario needs at least one publisher";
	else if (o->scenario == BS_CONNECT && o->connections < 1)
		bad = "--connections must be at least 1";
	else if (!o->clean && o->proto != BP_MQTT)
		bad = "--clean is for MQTT";
	else if (o->receipts && o->proto != BP_STOMP)
		bad = "--receipts is for STOMP (MQTT: --qos 1)";
	else if (o->slow > 0 && o->scenario != BS_FANOUT)
		bad = "--slow is for the fanout scenario";
	if (bad)
		fprintf(stderr, "wsbroker-bench: %s\n", bad);
	return bad ? -1 : 0;
}

int bench_opts_parse(struct bench_opts *o, int argc, char **argv)
{
	static const char *const scen[] = { "fanout", "fanin", "pairs", "queue", "idle", "connect" };
	static const char *const protos[] = { "mqtt", "stomp", "mixed" };
	static const char *const transports[] = { "tcp", "ws" };
	static const struct option lo[] = {
		{ "scenario", 1, 0, 'S' }, { "proto", 1, 0, 'P' }, { "transport", 1, 0, 'T' },
		{ "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "path", 1, 0, 'a' },
		{ "user", 1, 0, 'u' }, { "pass", 1, 0, 'w' }, { "prefix", 1, 0, 'x' },
		{ "subscribers", 1, 0, 's' }, { "publishers", 1, 0, 'n' }, { "topics", 1, 0, 't' },
		{ "connections", 1, 0, 'c' }, { "qos", 1, 0, 'q' }, { "size", 1, 0, 'z' },
		{ "rate", 1, 0, 'r' }, { "window", 1, 0, 'W' }, { "duration", 1, 0, 'd' },
		{ "warmup", 1, 0, 'm' }, { "parallel", 1, 0, 'l' }, { "broker-pid", 1, 0, 'b' },
		{ "json", 0, 0, 'j' }, { "help", 0, 0, 'H' }, { "clean", 1, 0, 'k' },
		{ "receipts", 0, 0, 'R' }, { "slow", 1, 0, 'K' }, { 0, 0, 0, 0 }
	};
	int ch, k;
	double v;

	*o = (struct bench_opts){
		.scenario = BS_FANOUT, .proto = BP_MQTT, .host = "127.0.0.1", .prefix = "bench",
		.subscribers = -1, .publishers = -1, .topics = -1, .connections = -1,
		.size = 64, .window = 256, .duration = 5, .warmup = 1, .parallel = 200,
		.clean = true,
	};
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		v = 0;
		switch (ch) {
		case 'S': if ((k = pick(optarg, scen, 6, "scenario")) < 0) return -1;
			  o->scenario = (enum bench_scenario)k; break;
		case 'P': if ((k = pick(optarg, protos, 3, "protocol")) < 0) return -1;
			  o->proto = (enum bench_proto)k; break;
		case 'T': if ((k = pick(optarg, transports, 2, "transport")) < 0) return -1;
			  o->ws = k == 1; break;
		case 'h': o->host = optarg; break;
		case 'p': o->port = optarg; break;
		case 'a': o->path = optarg; break;
		case 'u': o->user = optarg; break;
		case 'w': o->pass = optarg; break;
		case 'x': o->prefix = optarg; break;
		case 'j': o->json = true; break;
		case 'R': o->receipts = true; break;
		case 'H': fputs(usage, stdout); return 1;
		case '?': fputs(usage, stderr); return -1;
		default:
			if (num(optarg, 0, ch == 'z' ? 1 << 24 : ch == 'r' ? 1e9 : ch == 'k' ? 1 : 1e7,
				&v) < 0)
				return -1;
			switch (ch) {
			case 's': o->subscribers = (long)v; break;
			case 'n': o->publishers = (long)v; break;
			case 't': o->topics = (long)v; break;
			case 'c': o->connections = (long)v; break;
			case 'q': o->qos = (int)v; break;
			case 'z': o->size = (size_t)v; break;
			case 'r': o->rate = v; break;
			case 'W': o->window = (long)v; break;
			case 'd': o->duration = v; break;
			case 'm': o->warmup = v; break;
			case 'l': o->parallel = (long)v; break;
			case 'b': o->broker_pid = (int)v; break;
			case 'K': o->slow = (long)v; break;
			case 'k':
				if (v != 0 && v != 1) {
					fprintf(stderr, "wsbroker-bench: --clean takes 0 or 1\n");
					return -1;
				}
				o->clean = v == 1;
				break;
			}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wsbroker-bench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->qos > 1 || o->size < BENCH_STAMP_LEN || o->window < 1 || o->parallel < 1 ||
	    o->duration <= 0) {
		fprintf(stderr, "wsbroker-bench: need --qos 0|1, --size >= 16, --window >= 1, "
				"--parallel >= 1, --duration > 0\n");
		return -1;
	}
	scenario_defaults(o);
	return check(o);
}
