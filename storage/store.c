/* The store's write API: one function and one typed operation per kind of
 * write, and the SQL each kind runs once the writer applies it; open and
 * close. The queue and the writer thread are store_writer.c's. */
#include "store.h"
#include "store_int.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_RET_PUT] = "INSERT OR REPLACE INTO retained(topic, qos, props,"
		" payload, expiry_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_RET_DEL] = "DELETE FROM retained WHERE topic = ?1",
	[ST_SESS_PUT] = "INSERT OR REPLACE INTO mqtt_sessions(client_id, proto,"
		" expiry_s, updated_ms) VALUES(?1, ?2, ?3, ?4)",
	[ST_SESS_DEL] = "DELETE FROM mqtt_sessions WHERE client_id = ?1",
	[ST_SESS_DEL_SUBS] = "DELETE FROM mqtt_subs WHERE client_id = ?1",
	[ST_SESS_DEL_MSGS] = "DELETE FROM mqtt_msgs WHERE client_id = ?1",
	[ST_SESS_DEL_QOS2] = "DELETE FROM mqtt_qos2_in WHERE client_id = ?1",
	[ST_SUB_PUT] = "INSERT OR REPLACE INTO mqtt_subs(client_id, filter,"
		" options) VALUES(?1, ?2, ?3)",
	[ST_SUB_DEL] = "DELETE FROM mqtt_subs WHERE client_id = ?1 AND filter = ?2",
	[ST_MSG_ADD] = "INSERT OR REPLACE INTO mqtt_msgs(seq, client_id, topic,"
		" qos, retain, packet_id, state, props, payload, expiry_ms)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_MSG_UPD] = "UPDATE mqtt_msgs SET packet_id = ?2, state = ?3"
		" WHERE seq = ?1",
	[ST_MSG_DEL] = "DELETE FROM mqtt_msgs WHERE seq = ?1",
	[ST_QOS2_PUT] = "INSERT OR IGNORE INTO mqtt_qos2_in(client_id, packet_id)"
		" VALUES(?1, ?2)",
	[ST_QOS2_DEL] = "DELETE FROM mqtt_qos2_in WHERE client_id = ?1"
		" AND packet_id = ?2",
	[ST_Q_APPEND] = "INSERT OR REPLACE INTO queue_msgs(seq, queue, state,"
		" redelivered, size, props, payload, expiry_ms)"
		" VALUES(?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
	[ST_Q_MARK] = "UPDATE queue_msgs SET state = ?2,"
		" redelivered = (redelivered OR ?3) WHERE seq = ?1",
	[ST_Q_DEL] = "DELETE FROM queue_msgs WHERE seq = ?1",
};

void store_log(const struct store *s, int level, const char *fmt, ...)
{
	if (!s->log.fn)
		return;
	va_list ap;
	va_start(ap, fmt);
	s->log.fn(s->log.arg, level, fmt, ap);
	va_end(ap);
}

const char *store_status_name(enum store_status st)
{
	switch (st) {
	case STORE_OK: return "ok";
	case STORE_ERR_FULL: return "disk full";
	case STORE_ERR_IO: return "I/O error";
	case STORE_ERR_DB: return "database error";
	case STORE_ERR_NOMEM: return "out of memory";
	case STORE_ERR_INVAL: return "invalid argument";
	}
	return "?";
}

int store_parse_sync(const char *str, enum store_sync *out)
{
	static const char *const names[] = {"full", "normal", "off"};
	for (int i = 0; i < 3; i++) {
		if (strcmp(str, names[i]) == 0) {
			*out = (enum store_sync)i;
			return 0;
		}
	}
	return STORE_ERR_INVAL;
}

/* ---- applying operations (writer thread) ---- */

static void bind_blob(sqlite3_stmt *st, int i, const void *b, size_t len)
{
	if (b)
		sqlite3_bind_blob64(st, i, b, len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
	sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
}

int store_stmt_run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int run_seq(struct store *s, enum stmt_id id, uint64_t seq)
{
	sqlite3_bind_int64(s->st[id], 1, (sqlite3_int64)seq);
	return store_stmt_run(s->st[id]);
}

static int run_name(struct store *s, enum stmt_id id, const char *name)
{
	bind_text(s->st[id], 1, name);
	return store_stmt_run(s->st[id]);
}

static int apply_retained(struct store *s, const struct store_retained *r)
{
	sqlite3_stmt *st = s->st[ST_RET_PUT];
	bind_text(st, 1, r->topic);
	sqlite3_bind_int(st, 2, r->qos);
	bind_blob(st, 3, r->props, r->props_len);
	sqlite3_bind_blob64(st, 4, r->payload, r->payload_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)r->expiry_ms);
	return store_stmt_run(st);
}

static int apply_session(struct store *s, const struct store_session *ss)
{
	sqlite3_stmt *st = s->st[ST_SESS_PUT];
	bind_text(st, 1, ss->client_id);
	sqlite3_bind_int(st, 2, ss->proto_level);
	sqlite3_bind_int64(st, 3, ss->expiry_s);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)ss->updated_ms);
	return store_stmt_run(st);
}

static int apply_session_del(struct store *s, const char *client)
{
	static const enum stmt_id ids[] = {ST_SESS_DEL, ST_SESS_DEL_SUBS,
					   ST_SESS_DEL_MSGS, ST_SESS_DEL_QOS2};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		int rc = run_name(s, ids[i], client);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int apply_sub(struct store *s, const struct op_sub *sub, bool put)
{
	sqlite3_stmt *st = s->st[put ? ST_SUB_PUT : ST_SUB_DEL];
	bind_text(st, 1, sub->client_id);
	bind_text(st, 2, sub->filter);
	if (put)
		sqlite3_bind_int(st, 3, sub->options);
	return store_stmt_run(st);
}

static int apply_msg(struct store *s, const struct store_msg *m)
{
	sqlite3_stmt *st = s->st[ST_MSG_ADD];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->seq);
	bind_text(st, 2, m->client_id);
	bind_text(st, 3, m->topic);
	sqlite3_bind_int(st, 4, m->qos);
	sqlite3_bind_int(st, 5, m->retain);
	sqlite3_bind_int(st, 6, m->packet_id);
	sqlite3_bind_int(st, 7, (uint8_t)m->state);
	bind_blob(st, 8, m->props, m->props_len);
	sqlite3_bind_blob64(st, 9, m->payload, m->payload_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)m->expiry_ms);
	return store_stmt_run(st);
}

static int apply_msg_update(struct store *s, const struct op_msg_update *u)
{
	sqlite3_stmt *st = s->st[ST_MSG_UPD];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)u->seq);
	sqlite3_bind_int(st, 2, u->packet_id);
	sqlite3_bind_int(st, 3, (uint8_t)u->state);
	return store_stmt_run(st);
}

static int apply_qos2(struct store *s, const struct op_qos2 *q, bool put)
{
	sqlite3_stmt *st = s->st[put ? ST_QOS2_PUT : ST_QOS2_DEL];
	bind_text(st, 1, q->client_id);
	sqlite3_bind_int(st, 2, q->packet_id);
	return store_stmt_run(st);
}

static int apply_queue_msg(struct store *s, const struct store_qmsg *q)
{
	sqlite3_stmt *st = s->st[ST_Q_APPEND];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)q->seq);
	bind_text(st, 2, q->queue);
	sqlite3_bind_int(st, 3, q->redelivered);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)q->payload_len);
	bind_blob(st, 5, q->props, q->props_len);
	sqlite3_bind_blob64(st, 6, q->payload, q->payload_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)q->expiry_ms);
	return store_stmt_run(st);
}

static int apply_queue_mark(struct store *s, const struct op_queue_mark *m)
{
	sqlite3_stmt *st = s->st[ST_Q_MARK];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)m->seq);
	sqlite3_bind_int(st, 2, m->delivered ? 1 : 0);
	sqlite3_bind_int(st, 3, m->delivered ? 0 : 1);
	return store_stmt_run(st);
}

int store_op_apply(struct store *s, const struct store_op *op)
{
	switch (op->kind) {
	case OP_RET_PUT: return apply_retained(s, &op->u.ret);
	case OP_RET_DEL: return run_name(s, ST_RET_DEL, op->u.topic);
	case OP_SESS_PUT: return apply_session(s, &op->u.sess);
	case OP_SESS_DEL: return apply_session_del(s, op->u.client_id);
	case OP_SUB_PUT: return apply_sub(s, &op->u.sub, true);
	case OP_SUB_DEL: return apply_sub(s, &op->u.sub, false);
	case OP_MSG_ADD: return apply_msg(s, &op->u.msg);
	case OP_MSG_UPD: return apply_msg_update(s, &op->u.upd);
	case OP_MSG_DEL: return run_seq(s, ST_MSG_DEL, op->u.seq);
	case OP_QOS2_PUT: return apply_qos2(s, &op->u.qos2, true);
	case OP_QOS2_DEL: return apply_qos2(s, &op->u.qos2, false);
	case OP_Q_APPEND: return apply_queue_msg(s, &op->u.qmsg);
	case OP_Q_MARK: return apply_queue_mark(s, &op->u.mark);
	case OP_Q_DEL: return run_seq(s, ST_Q_DEL, op->u.seq);
	case OP_BARRIER: return SQLITE_OK;
	}
	return SQLITE_MISUSE;
}

/* ---- the write API (loop thread) ---- */

static size_t str_room(const char *str)
{
	return str ? strlen(str) + 1 : 0;
}

/* An operation with room bytes of data[] for the copies it keeps. */
static struct store_op *op_alloc(enum op_kind kind, size_t room,
				 store_done_fn cb, void *arg)
{
	struct store_op *op = calloc(1, sizeof(*op) + room);
	if (!op)
		return NULL;
	op->kind = kind;
	op->cb = cb;
	op->arg = arg;
	return op;
}

/* The keep_* copy into an operation's data[] at *p and advance it. Props
 * and the like: NULL stays NULL (a NULL column). */
static const void *keep_blob(uint8_t **p, const void *b, size_t len)
{
	if (!b)
		return NULL;
	if (len)
		memcpy(*p, b, len);
	*p += len;
	return *p - len;
}

static const char *keep_str(uint8_t **p, const char *str)
{
	return keep_blob(p, str, str_room(str));
}

/* A payload is never NULL, so an empty payload stays a blob. */
static const void *keep_payload(uint8_t **p, const void *b, size_t len)
{
	const void *kept = keep_blob(p, b, len);
	return kept ? kept : *p;
}

/* A name operation: one string (a topic or a client id). */
static struct store_op *name_op(enum op_kind kind, const char *name,
				store_done_fn cb, void *arg)
{
	struct store_op *op = op_alloc(kind, str_room(name), cb, arg);
	if (op) {
		uint8_t *p = op->data;
		if (kind == OP_RET_DEL)
			op->u.topic = keep_str(&p, name);
		else
			op->u.client_id = keep_str(&p, name);
	}
	return op;
}

/* Queues op, or answers for an allocation that failed. */
static int submit(struct store *s, struct store_op *op)
{
	if (!op)
		return STORE_ERR_NOMEM;
	store_submit(s, op);
	return 0;
}

/* Sequence numbers are handed out in queue order, so they also order the
 * rows of one queue or session. */
static uint64_t take_seq(struct store *s, uint64_t *seq_out)
{
	uint64_t seq = s->next_seq++;
	if (seq_out)
		*seq_out = seq;
	return seq;
}

/* A missing name would fail its NOT NULL column and with it every other
 * operation of the batch, so each write refuses one here, alone. */

int store_put_retained(struct store *s, const struct store_retained *r,
		       store_done_fn cb, void *arg)
{
	if (!r->topic)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(OP_RET_PUT, str_room(r->topic) +
				       r->payload_len + r->props_len, cb, arg);
	if (op) {
		uint8_t *p = op->data;
		op->u.ret = *r;
		op->u.ret.topic = keep_str(&p, r->topic);
		op->u.ret.payload = keep_payload(&p, r->payload, r->payload_len);
		op->u.ret.props = keep_blob(&p, r->props, r->props_len);
	}
	return submit(s, op);
}

int store_del_retained(struct store *s, const char *topic, store_done_fn cb,
		       void *arg)
{
	if (!topic)
		return STORE_ERR_INVAL;
	return submit(s, name_op(OP_RET_DEL, topic, cb, arg));
}

int store_session_put(struct store *s, const struct store_session *ss,
		      store_done_fn cb, void *arg)
{
	if (!ss->client_id)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(OP_SESS_PUT, str_room(ss->client_id), cb,
				       arg);
	if (op) {
		uint8_t *p = op->data;
		op->u.sess = *ss;
		op->u.sess.client_id = keep_str(&p, ss->client_id);
	}
	return submit(s, op);
}

int store_session_del(struct store *s, const char *client_id, store_done_fn cb,
		      void *arg)
{
	if (!client_id)
		return STORE_ERR_INVAL;
	return submit(s, name_op(OP_SESS_DEL, client_id, cb, arg));
}

static int sub_op(struct store *s, enum op_kind kind, const struct op_sub *sub,
		  store_done_fn cb, void *arg)
{
	if (!sub->client_id || !sub->filter)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(kind, str_room(sub->client_id) +
				       str_room(sub->filter), cb, arg);
	if (op) {
		uint8_t *p = op->data;
		op->u.sub = *sub;
		op->u.sub.client_id = keep_str(&p, sub->client_id);
		op->u.sub.filter = keep_str(&p, sub->filter);
	}
	return submit(s, op);
}

int store_session_sub_put(struct store *s, const char *client_id,
			  const char *filter, uint8_t options, store_done_fn cb,
			  void *arg)
{
	struct op_sub sub = {client_id, filter, options};
	return sub_op(s, OP_SUB_PUT, &sub, cb, arg);
}

int store_session_sub_del(struct store *s, const char *client_id,
			  const char *filter, store_done_fn cb, void *arg)
{
	struct op_sub sub = {client_id, filter, 0};
	return sub_op(s, OP_SUB_DEL, &sub, cb, arg);
}

int store_session_msg_add(struct store *s, const struct store_msg *m,
			  uint64_t *seq_out, store_done_fn cb, void *arg)
{
	if (!m->client_id || !m->topic)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(OP_MSG_ADD, str_room(m->client_id) +
				       str_room(m->topic) + m->payload_len +
				       m->props_len, cb, arg);
	if (!op)
		return STORE_ERR_NOMEM;
	uint8_t *p = op->data;
	op->u.msg = *m;
	op->u.msg.client_id = keep_str(&p, m->client_id);
	op->u.msg.topic = keep_str(&p, m->topic);
	op->u.msg.payload = keep_payload(&p, m->payload, m->payload_len);
	op->u.msg.props = keep_blob(&p, m->props, m->props_len);
	op->u.msg.seq = take_seq(s, seq_out);
	return submit(s, op);
}

int store_session_msg_update(struct store *s, uint64_t seq, uint16_t packet_id,
			     enum store_msg_state state, store_done_fn cb,
			     void *arg)
{
	struct store_op *op = op_alloc(OP_MSG_UPD, 0, cb, arg);
	if (op)
		op->u.upd = (struct op_msg_update){seq, packet_id, state};
	return submit(s, op);
}

static int seq_op(struct store *s, enum op_kind kind, uint64_t seq,
		  store_done_fn cb, void *arg)
{
	struct store_op *op = op_alloc(kind, 0, cb, arg);
	if (op)
		op->u.seq = seq;
	return submit(s, op);
}

int store_session_msg_del(struct store *s, uint64_t seq, store_done_fn cb,
			  void *arg)
{
	return seq_op(s, OP_MSG_DEL, seq, cb, arg);
}

static int qos2_op(struct store *s, enum op_kind kind, const char *client_id,
		   uint16_t packet_id, store_done_fn cb, void *arg)
{
	if (!client_id)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(kind, str_room(client_id), cb, arg);
	if (op) {
		uint8_t *p = op->data;
		op->u.qos2.client_id = keep_str(&p, client_id);
		op->u.qos2.packet_id = packet_id;
	}
	return submit(s, op);
}

int store_session_qos2_put(struct store *s, const char *client_id,
			   uint16_t packet_id, store_done_fn cb, void *arg)
{
	return qos2_op(s, OP_QOS2_PUT, client_id, packet_id, cb, arg);
}

int store_session_qos2_del(struct store *s, const char *client_id,
			   uint16_t packet_id, store_done_fn cb, void *arg)
{
	return qos2_op(s, OP_QOS2_DEL, client_id, packet_id, cb, arg);
}

int store_queue_append(struct store *s, const struct store_qmsg *q,
		       uint64_t *seq_out, store_done_fn cb, void *arg)
{
	if (!q->queue)
		return STORE_ERR_INVAL;
	struct store_op *op = op_alloc(OP_Q_APPEND, str_room(q->queue) +
				       q->payload_len + q->props_len, cb, arg);
	if (!op)
		return STORE_ERR_NOMEM;
	uint8_t *p = op->data;
	op->u.qmsg = *q;
	op->u.qmsg.queue = keep_str(&p, q->queue);
	op->u.qmsg.payload = keep_payload(&p, q->payload, q->payload_len);
	op->u.qmsg.props = keep_blob(&p, q->props, q->props_len);
	op->u.qmsg.seq = take_seq(s, seq_out);
	return submit(s, op);
}

int store_queue_mark(struct store *s, uint64_t seq, bool delivered,
		     store_done_fn cb, void *arg)
{
	struct store_op *op = op_alloc(OP_Q_MARK, 0, cb, arg);
	if (op)
		op->u.mark = (struct op_queue_mark){seq, delivered};
	return submit(s, op);
}

int store_queue_delete(struct store *s, uint64_t seq, store_done_fn cb,
		       void *arg)
{
	return seq_op(s, OP_Q_DEL, seq, cb, arg);
}

int store_barrier(struct store *s, uint64_t since, store_done_fn cb, void *arg)
{
	struct store_op *op = op_alloc(OP_BARRIER, 0, cb, arg);
	if (op)
		op->u.since = since;
	return submit(s, op);
}

/* ---- open and close ---- */

static int prepare_all(struct store *s, char *err, size_t errlen)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &s->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare statement: %s",
				 sqlite3_errmsg(s->db));
			return STORE_ERR_DB;
		}
	}
	return 0;
}

/* Frees what store_open built; the writer must not be running. */
static void store_free(struct store *s)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db)
		sqlite3_close(s->db);
	store_writer_fini(s);
	free(s);
}

static int open_db(struct store *s, const char *path, enum store_sync sync,
		   char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
				 SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return STORE_ERR_DB;
	}
	sqlite3_extended_result_codes(s->db, 1);
	bool in_memory = strcmp(path, ":memory:") == 0 || path[0] == '\0';
	char why[256];
	rc = store_db_setup(s, s->db, in_memory, sync, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return rc;
	}
	rc = prepare_all(s, err, errlen);
	if (rc < 0)
		return rc;
	uint64_t max = 0;
	rc = store_db_max_seq(s->db, &max);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
		return rc;
	}
	s->next_seq = max + 1;
	return 0;
}

struct store *store_open(const char *path, enum store_sync sync,
			 const struct store_log *log, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (log)
		s->log = *log;
	store_writer_init(s);
	if (open_db(s, path, sync, err, errlen) < 0) {
		store_free(s);
		return NULL;
	}
	if (store_writer_start(s, err, errlen) < 0) {
		store_free(s);
		return NULL;
	}
	return s;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_writer_stop(s);
	store_free(s);
}
