#include "store.h"
#include "store_int.h"

#include <stdio.h>
#include <string.h>

/* ---- schema ---- */

/* Applied in order; migrations[i] takes a file from version i to i + 1. A
 * released entry never changes: a change is a new entry. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {
	/* 1: the tables. Payloads are the last column so that reading the small
	 * columns of a row never walks a big payload's overflow pages. */
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
	"CREATE INDEX queue_msgs_queue ON queue_msgs(queue, seq);",

	/* 2: message expiry (MQTT 5, STOMP expires), and an index that covers
	 * everything a start-up load of the queues needs, so that loading a
	 * million queued messages reads the index and never the rows. */
	"ALTER TABLE retained ADD COLUMN expiry_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mqtt_msgs ADD COLUMN expiry_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE queue_msgs ADD COLUMN expiry_ms INTEGER NOT NULL DEFAULT 0;"
	"DROP INDEX queue_msgs_queue;"
	"CREATE INDEX queue_msgs_load ON queue_msgs(queue, seq, state,"
	" redelivered, size, expiry_ms);",
};

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return STORE_ERR_DB;
}

/* The single-value answer of a query, or STORE_ERR_DB with err set. */
static int query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out,
		     bool *found, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return STORE_ERR_DB;
	}
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (*found)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return STORE_ERR_DB;
	}
	return 0;
}

static int migrate_locked(struct store *s, sqlite3 *db, char *err, size_t errlen)
{
	if (exec(db, "CREATE TABLE IF NOT EXISTS schema_version("
		 "version INTEGER NOT NULL)", err, errlen) < 0)
		return STORE_ERR_DB;
	sqlite3_int64 v = 0;
	bool found;
	if (query_int(db, "SELECT version FROM schema_version", &v, &found, err,
		      errlen) < 0)
		return STORE_ERR_DB;
	if (!found)
		v = 0;
	if (v > STORE_SCHEMA_VERSION || v < 0) {
		snprintf(err, errlen, "database schema version %lld is newer than "
			 "this wsbroker supports (version %d); run a newer "
			 "wsbroker or use another database file",
			 (long long)v, STORE_SCHEMA_VERSION);
		return STORE_ERR_DB;
	}
	if (v == STORE_SCHEMA_VERSION)
		return 0;
	for (sqlite3_int64 i = v; i < STORE_SCHEMA_VERSION; i++) {
		if (exec(db, migrations[i], err, errlen) < 0)
			return STORE_ERR_DB;
	}
	char sql[96];
	snprintf(sql, sizeof(sql), found ? "UPDATE schema_version SET version = %d"
		 : "INSERT INTO schema_version(version) VALUES(%d)",
		 STORE_SCHEMA_VERSION);
	if (exec(db, sql, err, errlen) < 0)
		return STORE_ERR_DB;
	if (v > 0)
		store_log(s, STORE_LOG_INFO, "store: database upgraded from schema version "
			 "%lld to %d", (long long)v, STORE_SCHEMA_VERSION);
	return 0;
}

/* All of a migration or none of it: a crash halfway leaves the old version. */
static int migrate(struct store *s, sqlite3 *db, char *err, size_t errlen)
{
	if (exec(db, "BEGIN IMMEDIATE", err, errlen) < 0)
		return STORE_ERR_DB;
	if (migrate_locked(s, db, err, errlen) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return STORE_ERR_DB;
	}
	return exec(db, "COMMIT", err, errlen);
}

int store_db_setup(struct store *s, sqlite3 *db, bool in_memory,
		   enum store_sync sync, char *err, size_t errlen)
{
	static const char *const sync_sql[] = {
		[STORE_SYNC_FULL] = "PRAGMA synchronous = FULL",
		[STORE_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
		[STORE_SYNC_OFF] = "PRAGMA synchronous = OFF",
	};
	sqlite3_busy_timeout(db, 5000);
	/* WAL: a commit appends to one file, and readers never block it. */
	if (!in_memory && exec(db, "PRAGMA journal_mode = WAL", err, errlen) < 0)
		return STORE_ERR_DB;
	if ((unsigned)sync > STORE_SYNC_OFF) {
		snprintf(err, errlen, "unknown sync mode %d", (int)sync);
		return STORE_ERR_INVAL;
	}
	if (exec(db, sync_sql[sync], err, errlen) < 0)
		return STORE_ERR_DB;
	return migrate(s, db, err, errlen);
}

int store_db_max_seq(sqlite3 *db, uint64_t *out)
{
	char err[256];
	sqlite3_int64 v;
	bool found;
	/* max() of an INTEGER PRIMARY KEY is one b-tree descent, not a scan. */
	if (query_int(db, "SELECT max(coalesce((SELECT max(seq) FROM mqtt_msgs), 0),"
		      " coalesce((SELECT max(seq) FROM queue_msgs), 0))", &v, &found,
		      err, sizeof(err)) < 0)
		return STORE_ERR_DB;
	*out = found && v > 0 ? (uint64_t)v : 0;
	return 0;
}

/* ---- start-up loaders ---- */

/* Pointer and length of a blob column; an empty payload is "" not NULL. */
static const void *col_blob(sqlite3_stmt *st, int i, size_t *len, bool nullable)
{
	const void *p = sqlite3_column_blob(st, i);
	*len = (size_t)sqlite3_column_bytes(st, i);
	if (!p && !(nullable && sqlite3_column_type(st, i) == SQLITE_NULL))
		p = "";
	return p;
}

typedef int (*row_fn)(sqlite3_stmt *st, void *ctx);

/* Runs sql and calls row for each row; row's nonzero answer stops the load. */
static int each_row(struct store *s, sqlite3 *db, const char *sql, row_fn row,
		    void *ctx)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		store_log(s, STORE_LOG_ERROR, "store: load: %s", sqlite3_errmsg(db));
		return STORE_ERR_DB;
	}
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = row(st, ctx);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		store_log(s, STORE_LOG_ERROR, "store: load: %s", sqlite3_errmsg(db));
		ret = STORE_ERR_DB;
	}
	sqlite3_finalize(st);
	return ret;
}

struct load_ctx {
	int (*retained)(void *arg, const struct store_retained *r);
	int (*qmsg)(void *arg, const struct store_qmsg *q);
	const struct store_session_loader *l;
	void *arg;
	bool payloads;
};

static int retained_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	struct store_retained r = {
		.topic = (const char *)sqlite3_column_text(st, 0),
		.qos = (uint8_t)sqlite3_column_int(st, 1),
		.expiry_ms = (uint64_t)sqlite3_column_int64(st, 4),
	};
	r.props = col_blob(st, 2, &r.props_len, true);
	r.payload = col_blob(st, 3, &r.payload_len, false);
	return c->retained(c->arg, &r);
}

int store_load_retained(struct store *s,
			int (*fn)(void *arg, const struct store_retained *r),
			void *arg)
{
	struct load_ctx c = {.retained = fn, .arg = arg};
	sqlite3 *db = store_db_lock(s);
	int rc = each_row(s, db, "SELECT topic, qos, props, payload, expiry_ms"
			  " FROM retained", retained_row, &c);
	store_db_unlock(s);
	return rc;
}

static int session_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	struct store_session ss = {
		.client_id = (const char *)sqlite3_column_text(st, 0),
		.proto_level = (uint8_t)sqlite3_column_int(st, 1),
		.expiry_s = (uint32_t)sqlite3_column_int64(st, 2),
		.updated_ms = (uint64_t)sqlite3_column_int64(st, 3),
	};
	return c->l->session(c->arg, &ss);
}

static int sub_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	return c->l->sub(c->arg, (const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1),
			 (uint8_t)sqlite3_column_int(st, 2));
}

static int msg_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	struct store_msg m = {
		.seq = (uint64_t)sqlite3_column_int64(st, 0),
		.client_id = (const char *)sqlite3_column_text(st, 1),
		.topic = (const char *)sqlite3_column_text(st, 2),
		.qos = (uint8_t)sqlite3_column_int(st, 3),
		.retain = sqlite3_column_int(st, 4) != 0,
		.packet_id = (uint16_t)sqlite3_column_int(st, 5),
		.state = (enum store_msg_state)sqlite3_column_int(st, 6),
		.expiry_ms = (uint64_t)sqlite3_column_int64(st, 9),
	};
	m.props = col_blob(st, 7, &m.props_len, true);
	m.payload = col_blob(st, 8, &m.payload_len, false);
	return c->l->msg(c->arg, &m);
}

static int qos2_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	return c->l->qos2(c->arg, (const char *)sqlite3_column_text(st, 0),
			  (uint16_t)sqlite3_column_int(st, 1));
}

int store_load_sessions(struct store *s, const struct store_session_loader *l,
			void *arg)
{
	const struct {
		bool wanted;
		row_fn row;
		const char *sql;
	} parts[] = {
		{l->session != NULL, session_row,
		 "SELECT client_id, proto, expiry_s, updated_ms FROM mqtt_sessions"},
		{l->sub != NULL, sub_row,
		 "SELECT client_id, filter, options FROM mqtt_subs"},
		{l->msg != NULL, msg_row,
		 "SELECT seq, client_id, topic, qos, retain, packet_id, state, props,"
		 " payload, expiry_ms FROM mqtt_msgs ORDER BY seq"},
		{l->qos2 != NULL, qos2_row,
		 "SELECT client_id, packet_id FROM mqtt_qos2_in"},
	};
	struct load_ctx c = {.l = l, .arg = arg};
	sqlite3 *db = store_db_lock(s);
	int rc = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == 0; i++) {
		if (parts[i].wanted)
			rc = each_row(s, db, parts[i].sql, parts[i].row, &c);
	}
	store_db_unlock(s);
	return rc;
}

static int qmsg_row(sqlite3_stmt *st, void *ctx)
{
	struct load_ctx *c = ctx;
	struct store_qmsg q = {
		.queue = (const char *)sqlite3_column_text(st, 0),
		.seq = (uint64_t)sqlite3_column_int64(st, 1),
		.redelivered = sqlite3_column_int(st, 2) != 0,
		.payload_len = (size_t)sqlite3_column_int64(st, 3),
		.expiry_ms = (uint64_t)sqlite3_column_int64(st, 4),
	};
	if (c->payloads) {
		q.props = col_blob(st, 5, &q.props_len, true);
		q.payload = col_blob(st, 6, &q.payload_len, false);
	}
	return c->qmsg(c->arg, &q);
}

int store_load_queue(struct store *s, unsigned flags,
		     int (*fn)(void *arg, const struct store_qmsg *q),
		     void *arg)
{
	/* Delivered but never acknowledged: the consumer is gone with the old
	 * process, so the message goes back to its queue, flagged. The subquery
	 * finds them from the covering index without reading the rows. */
	static const char recover[] =
		"UPDATE queue_msgs SET state = 0, redelivered = 1 WHERE seq IN"
		" (SELECT seq FROM queue_msgs INDEXED BY queue_msgs_load"
		" WHERE state = 1)";
	bool payloads = (flags & STORE_LOAD_PAYLOADS) != 0;
	struct load_ctx c = {.qmsg = fn, .arg = arg, .payloads = payloads};
	char err[256];
	sqlite3 *db = store_db_lock(s);
	int rc = exec(db, recover, err, sizeof(err));
	if (rc < 0)
		store_log(s, STORE_LOG_ERROR, "store: load queues: %s", err);
	else
		rc = each_row(s, db, payloads
			      ? "SELECT queue, seq, redelivered, size, expiry_ms,"
				" props, payload FROM queue_msgs"
				" ORDER BY queue, seq"
			      : "SELECT queue, seq, redelivered, size, expiry_ms"
				" FROM queue_msgs INDEXED BY queue_msgs_load"
				" ORDER BY queue, seq",
			      qmsg_row, &c);
	store_db_unlock(s);
	return rc;
}
