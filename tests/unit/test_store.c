/* Unit tests for storage/store.c: every table survives close and reopen,
 * migrations upgrade an old file and refuse a newer one, queued writes are
 * committed in batches, in-flight queue messages come back redelivered, a
 * failed commit fails its whole batch and nothing after it, and completions
 * run on the event loop's thread. Each test gets its own file under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"

static const struct store_log test_log = {.fn = log_sink};

struct tmpdb {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct tmpdb *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	strcpy(t->dir, "/tmp/wsb-store-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tmpdb *t = *state;
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char p[128];
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
		unlink(p);
	}
	rmdir(t->dir);
	free(t);
	return 0;
}

static struct store *open_ok(const char *path)
{
	char err[256] = "";
	struct store *s = store_open(path, STORE_SYNC_NORMAL, &test_log, err, sizeof(err));
	if (!s)
		fail_msg("store_open(%s): %s", path, err);
	return s;
}

/* Counts completions by status. */
struct done {
	unsigned ok, failed;
	enum store_status last;
};

static void on_done(void *arg, enum store_status st)
{
	struct done *d = arg;
	if (st == STORE_OK)
		d->ok++;
	else
		d->failed++;
	d->last = st;
}

/* ---- retained ---- */

#define MAX_ROWS 16

struct retained_seen {
	size_t n;
	char topic[MAX_ROWS][32];
	char payload[MAX_ROWS][32];
	size_t payload_len[MAX_ROWS];
	bool has_props[MAX_ROWS];
	char props[MAX_ROWS][16];
	uint8_t qos[MAX_ROWS];
	uint64_t expiry[MAX_ROWS];
};

static int on_retained(void *arg, const struct store_retained *r)
{
	struct retained_seen *v = arg;
	assert_true(v->n < MAX_ROWS);
	assert_non_null(r->payload);
	assert_true(r->payload_len < 32 && r->props_len < 16);
	size_t i = v->n++;
	snprintf(v->topic[i], 32, "%s", r->topic);
	memcpy(v->payload[i], r->payload, r->payload_len);
	v->payload_len[i] = r->payload_len;
	v->has_props[i] = r->props != NULL;
	if (r->props)
		memcpy(v->props[i], r->props, r->props_len);
	v->qos[i] = r->qos;
	v->expiry[i] = r->expiry_ms;
	return 0;
}

static ssize_t find_topic(const struct retained_seen *v, const char *topic)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->topic[i], topic) == 0)
			return (ssize_t)i;
	return -1;
}

static void test_retained_round_trip(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done d = {0};
	struct store_retained a = {.topic = "a/b", .payload = "hello",
				   .payload_len = 5, .qos = 1, .props = "ct\0x",
				   .props_len = 4, .expiry_ms = 1234};
	struct store_retained e = {.topic = "empty", .payload = "",
				   .payload_len = 0, .qos = 0};
	struct store_retained gone = {.topic = "gone", .payload = "x",
				      .payload_len = 1, .qos = 2};
	struct store_retained a2 = a;
	a2.payload = "bye";
	a2.payload_len = 3;
	assert_int_equal(store_put_retained(s, &a, on_done, &d), 0);
	assert_int_equal(store_put_retained(s, &e, on_done, &d), 0);
	assert_int_equal(store_put_retained(s, &gone, on_done, &d), 0);
	assert_int_equal(store_del_retained(s, "gone", on_done, &d), 0);
	assert_int_equal(store_put_retained(s, &a2, on_done, &d), 0);
	assert_int_equal(store_flush_sync(s), 5);
	assert_int_equal(d.ok, 5);
	store_close(s);

	s = open_ok(t->path);
	struct retained_seen v = {0};
	assert_int_equal(store_load_retained(s, on_retained, &v), 0);
	store_close(s);
	assert_int_equal(v.n, 2);
	ssize_t i = find_topic(&v, "a/b");
	assert_true(i >= 0);
	assert_int_equal(v.payload_len[i], 3);
	assert_memory_equal(v.payload[i], "bye", 3);
	assert_true(v.has_props[i]);
	assert_memory_equal(v.props[i], "ct\0x", 4);
	assert_int_equal(v.qos[i], 1);
	assert_int_equal(v.expiry[i], 1234);
	i = find_topic(&v, "empty");
	assert_true(i >= 0);
	assert_int_equal(v.payload_len[i], 0);
	assert_false(v.has_props[i]);
	assert_int_equal(find_topic(&v, "gone"), -1);
}

/* A callback may stop a load; the loader passes its answer on. */
static int stop_at_first(void *arg, const struct store_retained *r)
{
	(*(unsigned *)arg)++;
	return 7;
}

static void test_load_stops_on_request(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	for (int i = 0; i < 3; i++) {
		char topic[8];
		snprintf(topic, sizeof(topic), "t%d", i);
		struct store_retained r = {.topic = topic, .payload = "p", .payload_len = 1};
		assert_int_equal(store_put_retained(s, &r, NULL, NULL), 0);
	}
	assert_int_equal(store_flush_sync(s), 3);
	unsigned calls = 0;
	assert_int_equal(store_load_retained(s, stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);
	store_close(s);
}

/* ---- MQTT sessions ---- */

struct sessions_seen {
	char log[2048];
	size_t len;
	uint64_t seqs[MAX_ROWS];
	size_t nseqs;
};

static void seen_add(struct sessions_seen *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(v->log + v->len, sizeof(v->log) - v->len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(v->log) - v->len);
	v->len += (size_t)n;
}

static int on_session(void *arg, const struct store_session *ss)
{
	seen_add(arg, "S %s %u %u %llu\n", ss->client_id, ss->proto_level,
		 ss->expiry_s, (unsigned long long)ss->updated_ms);
	return 0;
}

static int on_sub(void *arg, const char *client_id, const char *filter,
		  uint8_t options)
{
	seen_add(arg, "U %s %s %u\n", client_id, filter, options);
	return 0;
}

static int on_msg(void *arg, const struct store_msg *m)
{
	struct sessions_seen *v = arg;
	assert_true(v->nseqs < MAX_ROWS);
	v->seqs[v->nseqs++] = m->seq;
	seen_add(arg, "M %s %s %.*s %.*s q%u r%d p%u s%d e%llu\n", m->client_id,
		 m->topic, (int)m->payload_len, (const char *)m->payload,
		 m->props ? (int)m->props_len : 4,
		 m->props ? (const char *)m->props : "null", m->qos, m->retain,
		 m->packet_id, (int)m->state, (unsigned long long)m->expiry_ms);
	return 0;
}

static int on_qos2(void *arg, const char *client_id, uint16_t packet_id)
{
	seen_add(arg, "Q %s %u\n", client_id, packet_id);
	return 0;
}

static const struct store_session_loader loader = {
	.session = on_session, .sub = on_sub, .msg = on_msg, .qos2 = on_qos2,
};

static void test_sessions_round_trip(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done d = {0};
	struct store_session c1 = {.client_id = "c1", .proto_level = 4,
				   .expiry_s = 0, .updated_ms = 99};
	struct store_session c2 = {.client_id = "c2", .proto_level = 5,
				   .expiry_s = 3600, .updated_ms = 1};
	assert_int_equal(store_session_put(s, &c1, on_done, &d), 0);
	assert_int_equal(store_session_put(s, &c2, on_done, &d), 0);
	c1.updated_ms = 100;
	assert_int_equal(store_session_put(s, &c1, on_done, &d), 0);
	assert_int_equal(store_session_sub_put(s, "c1", "a/+", 1, on_done, &d), 0);
	assert_int_equal(store_session_sub_put(s, "c1", "b/#", 2, on_done, &d), 0);
	assert_int_equal(store_session_sub_del(s, "c1", "b/#", on_done, &d), 0);
	assert_int_equal(store_session_sub_put(s, "c2", "z", 1, on_done, &d), 0);

	uint64_t seq[4];
	struct store_msg m = {.client_id = "c1", .topic = "a/x", .payload = "m1",
			      .payload_len = 2, .qos = 1};
	assert_int_equal(store_session_msg_add(s, &m, &seq[0], on_done, &d), 0);
	m.payload = "m2";
	m.qos = 2;
	m.retain = true;
	m.props = "P";
	m.props_len = 1;
	m.expiry_ms = 5;
	assert_int_equal(store_session_msg_add(s, &m, &seq[1], on_done, &d), 0);
	m = (struct store_msg){.client_id = "c1", .topic = "a/y", .payload = "m3",
			       .payload_len = 2, .qos = 1};
	assert_int_equal(store_session_msg_add(s, &m, &seq[2], on_done, &d), 0);
	m.client_id = "c2";
	assert_int_equal(store_session_msg_add(s, &m, &seq[3], on_done, &d), 0);
	assert_true(seq[0] < seq[1] && seq[1] < seq[2] && seq[2] < seq[3]);
	/* m1 acknowledged, m2 half way through QoS 2, m3 still queued. */
	assert_int_equal(store_session_msg_update(s, seq[0], 7, STORE_MSG_SENT,
						  on_done, &d), 0);
	assert_int_equal(store_session_msg_del(s, seq[0], on_done, &d), 0);
	assert_int_equal(store_session_msg_update(s, seq[1], 8, STORE_MSG_RELEASED,
						  on_done, &d), 0);
	assert_int_equal(store_session_qos2_put(s, "c1", 11, on_done, &d), 0);
	assert_int_equal(store_session_qos2_put(s, "c1", 12, on_done, &d), 0);
	assert_int_equal(store_session_qos2_del(s, "c1", 11, on_done, &d), 0);
	assert_int_equal(store_session_qos2_put(s, "c2", 1, on_done, &d), 0);
	/* Deleting c2 takes its subscriptions, messages and ids with it. */
	assert_int_equal(store_session_del(s, "c2", on_done, &d), 0);
	assert_int_equal(store_flush_sync(s), 19);
	assert_int_equal(d.ok, 19);
	store_close(s);

	s = open_ok(t->path);
	struct sessions_seen v = {0};
	assert_int_equal(store_load_sessions(s, &loader, &v), 0);
	/* A new message is numbered after everything already stored. */
	uint64_t next;
	assert_int_equal(store_session_msg_add(s, &m, &next, NULL, NULL), 0);
	assert_true(next > seq[2]); /* c2's seq[3] went with c2 */
	store_close(s);
	assert_string_equal(v.log,
			    "S c1 4 0 100\n"
			    "U c1 a/+ 1\n"
			    "M c1 a/x m2 P q2 r1 p8 s2 e5\n"
			    "M c1 a/y m3 null q1 r0 p0 s0 e0\n"
			    "Q c1 12\n");
	assert_int_equal(v.nseqs, 2);
	assert_int_equal(v.seqs[0], seq[1]);
	assert_int_equal(v.seqs[1], seq[2]);
}

/* ---- STOMP queues ---- */

struct queue_seen {
	size_t n;
	char line[MAX_ROWS][64];
	bool had_payload[MAX_ROWS];
};

static int on_qmsg(void *arg, const struct store_qmsg *q)
{
	struct queue_seen *v = arg;
	assert_true(v->n < MAX_ROWS);
	size_t i = v->n++;
	v->had_payload[i] = q->payload != NULL;
	snprintf(v->line[i], sizeof(v->line[i]), "%s %.*s %zu %s%s", q->queue,
		 q->payload ? (int)q->payload_len : 1,
		 q->payload ? (const char *)q->payload : "-", q->payload_len,
		 q->redelivered ? "R" : "-",
		 q->props ? (const char *)q->props : "");
	return 0;
}

static void test_queue_round_trip_and_recovery(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done d = {0};
	static const char *const bodies[] = {"one", "two", "three", "four", "five"};
	uint64_t seq[5], bseq;
	for (int i = 0; i < 5; i++) {
		struct store_qmsg q = {.queue = "work", .payload = bodies[i],
				       .payload_len = strlen(bodies[i]),
				       .props = i == 4 ? "h\0" : NULL,
				       .props_len = i == 4 ? 2 : 0};
		assert_int_equal(store_queue_append(s, &q, &seq[i], on_done, &d), 0);
		if (i == 1) {
			struct store_qmsg b = {.queue = "alpha", .payload = "B",
					       .payload_len = 1};
			assert_int_equal(store_queue_append(s, &b, &bseq, on_done, &d), 0);
		}
	}
	assert_int_equal(store_queue_delete(s, seq[0], on_done, &d), 0);     /* ACKed */
	assert_int_equal(store_queue_mark(s, seq[1], true, on_done, &d), 0); /* in flight */
	assert_int_equal(store_queue_mark(s, seq[3], true, on_done, &d), 0);
	assert_int_equal(store_queue_mark(s, seq[3], false, on_done, &d), 0); /* NACKed */
	assert_int_equal(store_flush_sync(s), 10);
	assert_int_equal(d.ok, 10);
	store_close(s);

	/* The in-flight message's consumer died with the broker: it is back,
	 * flagged, in its original place. */
	s = open_ok(t->path);
	struct queue_seen v = {0};
	assert_int_equal(store_load_queue(s, STORE_LOAD_PAYLOADS, on_qmsg, &v), 0);
	assert_int_equal(v.n, 5);
	assert_string_equal(v.line[0], "alpha B 1 -");
	assert_string_equal(v.line[1], "work two 3 R");
	assert_string_equal(v.line[2], "work three 5 -");
	assert_string_equal(v.line[3], "work four 4 R");
	assert_string_equal(v.line[4], "work five 4 -h");

	/* Index only: lengths and flags, no payloads. */
	struct queue_seen w = {0};
	assert_int_equal(store_load_queue(s, 0, on_qmsg, &w), 0);
	assert_int_equal(w.n, 5);
	assert_false(w.had_payload[1]);
	assert_string_equal(w.line[1], "work - 3 R");
	assert_string_equal(w.line[2], "work - 5 -");

	/* Delivered again, then the broker stops once more: still one copy,
	 * still flagged. */
	assert_int_equal(store_queue_mark(s, seq[2], true, on_done, &d), 0);
	assert_int_equal(store_flush_sync(s), 1);
	store_close(s);
	s = open_ok(t->path);
	struct queue_seen x = {0};
	assert_int_equal(store_load_queue(s, STORE_LOAD_PAYLOADS, on_qmsg, &x), 0);
	store_close(s);
	assert_int_equal(x.n, 5);
	assert_string_equal(x.line[2], "work three 5 R");
	assert_string_equal(x.line[1], "work two 3 R");
}

/* ---- migrations ---- */

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The schema as wsbroker's first release wrote it, with some data. */
static void make_v1_db(const char *path)
{
	sqlite3 *db = raw_open(path);
	exec_ok(db,
		"CREATE TABLE schema_version(version INTEGER NOT NULL);"
		"INSERT INTO schema_version VALUES(1);"
		"CREATE TABLE retained(topic TEXT PRIMARY KEY, qos INTEGER NOT NULL,"
		" props BLOB, payload BLOB NOT NULL);"
		"CREATE TABLE mqtt_sessions(client_id TEXT PRIMARY KEY,"
		" proto INTEGER NOT NULL, expiry_s INTEGER NOT NULL,"
		" updated_ms INTEGER NOT NULL);"
		"CREATE TABLE mqtt_subs(client_id TEXT NOT NULL, filter TEXT NOT NULL,"
		" options INTEGER NOT NULL, PRIMARY KEY(client_id, filter)) WITHOUT ROWID;"
		"CREATE TABLE mqtt_msgs(seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL,"
		" topic TEXT NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
		" packet_id INTEGER NOT NULL, state INTEGER NOT NULL, props BLOB,"
		" payload BLOB NOT NULL);"
		"CREATE INDEX mqtt_msgs_client ON mqtt_msgs(client_id, seq);"
		"CREATE TABLE mqtt_qos2_in(client_id TEXT NOT NULL,"
		" packet_id INTEGER NOT NULL, PRIMARY KEY(client_id, packet_id))"
		" WITHOUT ROWID;"
		"CREATE TABLE queue_msgs(seq INTEGER PRIMARY KEY, queue TEXT NOT NULL,"
		" state INTEGER NOT NULL, redelivered INTEGER NOT NULL,"
		" size INTEGER NOT NULL, props BLOB, payload BLOB NOT NULL);"
		"CREATE INDEX queue_msgs_queue ON queue_msgs(queue, seq);"
		"INSERT INTO retained VALUES('old/topic', 1, NULL, x'6f6c64');"
		"INSERT INTO queue_msgs VALUES(40, 'q', 1, 0, 3, NULL, x'616263');"
		"INSERT INTO mqtt_sessions VALUES('dev', 4, 0, 5);");
	sqlite3_close(db);
}

static void test_migration_upgrades_v1(void **state)
{
	struct tmpdb *t = *state;
	make_v1_db(t->path);
	struct store *s = open_ok(t->path);
	struct retained_seen v = {0};
	assert_int_equal(store_load_retained(s, on_retained, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.topic[0], "old/topic");
	assert_memory_equal(v.payload[0], "old", 3);
	assert_int_equal(v.expiry[0], 0);
	struct queue_seen q = {0};
	assert_int_equal(store_load_queue(s, 0, on_qmsg, &q), 0);
	assert_int_equal(q.n, 1);
	assert_string_equal(q.line[0], "q - 3 R");
	/* New columns take writes, and numbering continues after old rows. */
	struct store_qmsg m = {.queue = "q", .payload = "new", .payload_len = 3,
			       .expiry_ms = 77};
	uint64_t seq;
	assert_int_equal(store_queue_append(s, &m, &seq, NULL, NULL), 0);
	assert_true(seq > 40);
	assert_int_equal(store_flush_sync(s), 1);
	store_close(s);

	sqlite3 *db = raw_open(t->path);
	assert_int_equal(raw_int(db, "SELECT version FROM schema_version"),
			 STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version"), 1);
	assert_int_equal(raw_int(db, "SELECT expiry_ms FROM queue_msgs WHERE seq > 40"), 77);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE"
				 " name = 'queue_msgs_load'"), 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM mqtt_sessions"), 1);
	sqlite3_close(db);
}

static void test_new_db_is_current_version(void **state)
{
	struct tmpdb *t = *state;
	store_close(open_ok(t->path));
	sqlite3 *db = raw_open(t->path);
	assert_int_equal(raw_int(db, "SELECT version FROM schema_version"),
			 STORE_SCHEMA_VERSION);
	/* WAL, so that a commit is one append. */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_newer_version_refused(void **state)
{
	struct tmpdb *t = *state;
	sqlite3 *db = raw_open(t->path);
	exec_ok(db, "CREATE TABLE schema_version(version INTEGER NOT NULL);"
		"INSERT INTO schema_version VALUES(99);"
		"CREATE TABLE future(x);");
	sqlite3_close(db);
	char err[256] = "";
	struct store *s = store_open(t->path, STORE_SYNC_FULL, &test_log, err, sizeof(err));
	assert_null(s);
	char want[64];
	assert_non_null(strstr(err, t->path));
	assert_non_null(strstr(err, "version 99"));
	snprintf(want, sizeof(want), "version %d", STORE_SCHEMA_VERSION);
	assert_non_null(strstr(err, want));
	/* Refusing it did not touch it. */
	db = raw_open(t->path);
	assert_int_equal(raw_int(db, "SELECT version FROM schema_version"), 99);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE"
				 " name = 'retained'"), 0);
	sqlite3_close(db);
}

/* ---- group commit ---- */

static void test_group_commit(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done d = {0};
	store_test_pause(s, true);
	for (int i = 0; i < 1000; i++) {
		struct store_qmsg q = {.queue = "bulk", .payload = &i,
				       .payload_len = sizeof(i)};
		assert_int_equal(store_queue_append(s, &q, NULL, on_done, &d), 0);
	}
	/* Nothing is durable yet, so nothing has completed. */
	assert_int_equal(store_poll(s), 0);
	store_test_pause(s, false);
	assert_int_equal(store_flush_sync(s), 1000);
	assert_int_equal(d.ok, 1000);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.ops, 1000);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.largest_batch, 1000);
	assert_int_equal(st.failed_batches, 0);
	store_close(s);

	sqlite3 *db = raw_open(t->path);
	long long n = raw_int(db, "SELECT count(*) FROM queue_msgs WHERE queue = 'bulk'");
	sqlite3_close(db);
	assert_int_equal(n, 1000);
}

/* ---- a failed commit ---- */

static void test_failed_commit(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done bad = {0}, good = {0};
	store_test_pause(s, true);
	store_test_fail_next_commit(s, STORE_ERR_FULL);
	struct store_retained r = {.topic = "lost", .payload = "x", .payload_len = 1};
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_put_retained(s, &r, on_done, &bad), 0);
	struct store_qmsg q = {.queue = "q", .payload = "y", .payload_len = 1};
	assert_int_equal(store_queue_append(s, &q, NULL, on_done, &bad), 0);
	store_test_pause(s, false);
	assert_int_equal(store_flush_sync(s), 6);
	assert_int_equal(bad.failed, 6);
	assert_int_equal(bad.ok, 0);
	assert_int_equal(bad.last, STORE_ERR_FULL);

	/* The store keeps working after the failure. */
	r.topic = "kept";
	assert_int_equal(store_put_retained(s, &r, on_done, &good), 0);
	assert_int_equal(store_queue_append(s, &q, NULL, on_done, &good), 0);
	assert_int_equal(store_flush_sync(s), 2);
	assert_int_equal(good.ok, 2);
	assert_int_equal(good.failed, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	assert_int_equal(st.failed_batches, 1);
	assert_int_equal(st.failed_ops, 6);
	assert_int_equal(st.ops, 2);
	store_close(s);

	s = open_ok(t->path);
	struct retained_seen v = {0};
	assert_int_equal(store_load_retained(s, on_retained, &v), 0);
	struct queue_seen w = {0};
	assert_int_equal(store_load_queue(s, 0, on_qmsg, &w), 0);
	store_close(s);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.topic[0], "kept");
	assert_int_equal(w.n, 1);
}

/* ---- completions through the event loop ---- */

struct loop_done {
	struct event_base *base;
	pthread_t loop_thread;
	unsigned n, on_loop_thread;
};

static void on_loop_done(void *arg, enum store_status st)
{
	struct loop_done *l = arg;
	assert_int_equal(st, STORE_OK);
	l->n++;
	if (pthread_equal(pthread_self(), l->loop_thread))
		l->on_loop_thread++;
	if (l->n == 50)
		event_base_loopbreak(l->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void test_completions_on_loop(void **state)
{
	struct tmpdb *t = *state;
	assert_int_equal(evthread_use_pthreads(), 0);
	struct event_base *base = event_base_new();
	assert_non_null(base);
	struct store *s = open_ok(t->path);
	assert_int_equal(store_attach_loop(s, base), 0);
	struct loop_done l = {.base = base, .loop_thread = pthread_self()};
	for (int i = 0; i < 50; i++) {
		struct store_session ss = {.client_id = "c", .proto_level = 4,
					   .updated_ms = (uint64_t)i};
		assert_int_equal(store_session_put(s, &ss, on_loop_done, &l), 0);
	}
	/* A guard so a lost wake-up fails the test instead of hanging it. */
	struct event *guard = evtimer_new(base, on_timeout, base);
	struct timeval tv = {5, 0};
	evtimer_add(guard, &tv);
	event_base_dispatch(base);
	assert_int_equal(l.n, 50);
	assert_int_equal(l.on_loop_thread, 50);
	store_close(s);
	event_free(guard);
	event_base_free(base);
	libevent_global_shutdown();
}

/* ---- misc ---- */

static void test_memory_db(void **state)
{
	struct store *s = open_ok(":memory:");
	struct store_retained r = {.topic = "m", .payload = "v", .payload_len = 1};
	assert_int_equal(store_put_retained(s, &r, NULL, NULL), 0);
	assert_int_equal(store_flush_sync(s), 1);
	struct retained_seen v = {0};
	assert_int_equal(store_load_retained(s, on_retained, &v), 0);
	assert_int_equal(v.n, 1);
	store_close(s);
}

static void test_close_commits_queued_work(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done d = {0};
	struct store_retained r = {.topic = "late", .payload = "v", .payload_len = 1};
	assert_int_equal(store_put_retained(s, &r, on_done, &d), 0);
	store_close(s);
	assert_int_equal(d.ok, 1);
	s = open_ok(t->path);
	struct retained_seen v = {0};
	assert_int_equal(store_load_retained(s, on_retained, &v), 0);
	store_close(s);
	assert_int_equal(v.n, 1);
}

/* Completions come back in the order their operations were queued, and an
 * operation without its name is refused alone instead of failing a batch. */
struct order {
	unsigned next, wrong;
};

struct ordered_op {
	struct order *o;
	unsigned idx;
};

static void on_ordered(void *arg, enum store_status st)
{
	struct ordered_op *op = arg;
	if (st != STORE_OK || op->idx != op->o->next)
		op->o->wrong++;
	op->o->next++;
}

static void test_completion_order_and_bad_args(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct order o = {0};
	struct ordered_op ops[200];
	for (unsigned i = 0; i < 200; i++) {
		ops[i] = (struct ordered_op){&o, i};
		struct store_qmsg q = {.queue = i % 2 ? "odd" : "even",
				       .payload = "p", .payload_len = 1};
		assert_int_equal(store_queue_append(s, &q, NULL, on_ordered, &ops[i]), 0);
		if (i == 100) {
			struct store_retained r = {.payload = "x", .payload_len = 1};
			assert_int_equal(store_put_retained(s, &r, on_ordered, &ops[i]),
					 STORE_ERR_INVAL);
			assert_int_equal(store_session_sub_put(s, "c", NULL, 1, NULL, NULL),
					 STORE_ERR_INVAL);
		}
	}
	store_flush_sync(s);
	store_close(s);
	assert_int_equal(o.next, 200);
	assert_int_equal(o.wrong, 0);
}

static void test_parse_sync(void **state)
{
	enum store_sync m;
	assert_int_equal(store_parse_sync("full", &m), 0);
	assert_int_equal(m, STORE_SYNC_FULL);
	assert_int_equal(store_parse_sync("normal", &m), 0);
	assert_int_equal(m, STORE_SYNC_NORMAL);
	assert_int_equal(store_parse_sync("off", &m), 0);
	assert_int_equal(m, STORE_SYNC_OFF);
	assert_int_equal(store_parse_sync("fast", &m), STORE_ERR_INVAL);
}

/* Errors are negative, as every module's, and each has its own name. */
static void test_status_names(void **state)
{
	(void)state;
	static const struct {
		enum store_status st;
		const char *name;
	} names[] = {
		{STORE_OK, "ok"},
		{STORE_ERR_FULL, "disk full"},
		{STORE_ERR_IO, "I/O error"},
		{STORE_ERR_DB, "database error"},
		{STORE_ERR_NOMEM, "out of memory"},
		{STORE_ERR_INVAL, "invalid argument"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_string_equal(store_status_name(names[i].st), names[i].name);
		if (i > 0)
			assert_true(names[i].st < 0);
	}
	assert_int_equal(STORE_OK, 0);
}

/* ---- barriers ---- */

/* A barrier answers for the writes queued after its mark even when they
 * went in an earlier batch than the barrier itself. */
static void test_barrier_reports_earlier_failure(void **state)
{
	struct tmpdb *t = *state;
	struct store *s = open_ok(t->path);
	struct done w = {0}, b1 = {0}, b2 = {0}, b3 = {0};
	struct store_retained r = {.topic = "t", .payload = "x", .payload_len = 1};
	uint64_t mark = store_submitted(s);

	store_test_fail_next_commit(s, STORE_ERR_IO);
	assert_int_equal(store_put_retained(s, &r, on_done, &w), 0);
	assert_int_equal(store_submitted(s), mark + 1);
	/* the write's batch fails on its own ... */
	assert_int_equal(store_flush_sync(s), 1);
	assert_int_equal(w.failed, 1);
	/* ... and a barrier queued afterwards, in a batch of its own, still
	 * says so to whoever marked before the write */
	assert_int_equal(store_barrier(s, mark, on_done, &b1), 0);
	/* but not to a request that wrote nothing since */
	assert_int_equal(store_barrier(s, store_submitted(s), on_done, &b2), 0);
	assert_int_equal(store_submitted(s), mark + 1);   /* barriers are not writes */
	assert_int_equal(store_flush_sync(s), 2);
	assert_int_equal(b1.failed, 1);
	assert_int_equal(b1.last, STORE_ERR_IO);
	assert_int_equal(b2.ok, 1);
	/* a later write that succeeds makes its own barrier succeed */
	mark = store_submitted(s);
	assert_int_equal(store_put_retained(s, &r, NULL, NULL), 0);
	assert_int_equal(store_barrier(s, mark, on_done, &b3), 0);
	assert_int_equal(store_flush_sync(s), 2);
	assert_int_equal(b3.ok, 1);
	store_close(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	log_set_level(LOGL_WARN);
	const struct CMUnitTest tests[] = {
		T(test_retained_round_trip),
		T(test_load_stops_on_request),
		T(test_sessions_round_trip),
		T(test_queue_round_trip_and_recovery),
		T(test_migration_upgrades_v1),
		T(test_new_db_is_current_version),
		T(test_newer_version_refused),
		T(test_group_commit),
		T(test_failed_commit),
		T(test_barrier_reports_earlier_failure),
		T(test_completions_on_loop),
		cmocka_unit_test(test_memory_db),
		T(test_close_commits_queued_work),
		T(test_completion_order_and_bad_args),
		cmocka_unit_test(test_parse_sync),
		cmocka_unit_test(test_status_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
