#include "store.h"
#include "store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_RET_PUT, ST_RET_DEL,
	ST_SESS_PUT, ST_SESS_DEL, ST_SESS_DEL_SUBS, ST_SESS_DEL_MSGS,
	ST_SESS_DEL_QOS2,
	ST_SUB_PUT, ST_SUB_DEL,
	ST_MSG_ADD, ST_MSG_UPD, ST_MSG_DEL,
	ST_QOS2_PUT, ST_QOS2_DEL,
	ST_Q_APPEND, ST_Q_MARK, ST_Q_DEL,
	ST_COUNT
};

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

/* ---- operations ---- */

enum op_kind {
	OP_RET_PUT, OP_RET_DEL,
	OP_SESS_PUT, OP_SESS_DEL, OP_SUB_PUT, OP_SUB_DEL,
	OP_MSG_ADD, OP_MSG_UPD, OP_MSG_DEL, OP_QOS2_PUT, OP_QOS2_DEL,
	OP_Q_APPEND, OP_Q_MARK, OP_Q_DEL,
	OP_BARRIER,
};

/* One queued write. Strings and blobs are copied into data[] so the caller's
 * buffers may go away as soon as the call returns. */
struct store_op {
	struct store_op *next;
	enum op_kind kind;
	store_done_fn cb;
	void *arg;
	enum store_status status;
	const char *s1, *s2;
	const uint8_t *b1, *b2;
	size_t l1, l2;
	uint64_t seq, u64, expiry;
	uint32_t u32;
	uint16_t pid;
	uint8_t u8a, u8b;
	bool flag;
	bool wants_seq;
	uint64_t opno;          /* 1, 2, ... in queue order (barriers: the last
				 * write queued before them) */
	uint64_t since;         /* barrier: writes after this one count */
	uint8_t data[];
};

struct op_list {
	struct store_op *head, *tail;
	size_t n;
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	/* Held by whoever uses db: the writer during a batch, a loader. */
	pthread_mutex_t dbmu;

	pthread_t writer;
	/* mu guards everything below. */
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* writer: work queued or stop */
	pthread_cond_t idle;    /* flush: a batch finished */
	struct op_list queued;
	struct op_list done;
	bool busy;              /* the writer holds a batch */
	bool stop;
	bool paused;
	bool failing;           /* the last batch failed: log again on recovery */
	enum store_status fail_next;
	uint64_t next_seq;
	uint64_t submitted;     /* operations queued since open; loop thread only */
	uint64_t last_failed;   /* opno of the newest write that failed */
	enum store_status last_failure;
	struct store_stats stats;
	struct event *ev;       /* runs completions on the loop */
	struct store_log log;
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

static void list_append(struct op_list *l, struct store_op *op)
{
	op->next = NULL;
	if (l->tail)
		l->tail->next = op;
	else
		l->head = op;
	l->tail = op;
	l->n++;
}

static void list_splice(struct op_list *dst, struct op_list *src)
{
	if (!src->head)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->n += src->n;
	*src = (struct op_list){0};
}

static enum store_status status_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return STORE_OK;
	case SQLITE_FULL:
		return STORE_ERR_FULL;
	case SQLITE_IOERR:
		return STORE_ERR_IO;
	default:
		return STORE_ERR_DB;
	}
}

const char *store_status_name(enum store_status st)
{
	switch (st) {
	case STORE_OK: return "ok";
	case STORE_ERR_FULL: return "disk full";
	case STORE_ERR_IO: return "I/O error";
	case STORE_ERR_DB: return "database error";
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
	return -1;
}

/* ---- the writer thread ---- */

static void bind_blob(sqlite3_stmt *st, int i, const uint8_t *b, size_t len)
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

/* Steps a statement whose parameters are bound; SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int run_seq(struct store *s, enum stmt_id id, uint64_t seq)
{
	sqlite3_bind_int64(s->st[id], 1, (sqlite3_int64)seq);
	return run(s->st[id]);
}

static int run_client(struct store *s, enum stmt_id id, const char *client)
{
	bind_text(s->st[id], 1, client);
	return run(s->st[id]);
}

static int apply_session_del(struct store *s, const char *client)
{
	static const enum stmt_id ids[] = {ST_SESS_DEL, ST_SESS_DEL_SUBS,
					   ST_SESS_DEL_MSGS, ST_SESS_DEL_QOS2};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		int rc = run_client(s, ids[i], client);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int apply_op(struct store *s, const struct store_op *op)
{
	sqlite3_stmt *st;
	switch (op->kind) {
	case OP_RET_PUT:
		st = s->st[ST_RET_PUT];
		bind_text(st, 1, op->s1);
		sqlite3_bind_int(st, 2, op->u8a);
		bind_blob(st, 3, op->b2, op->l2);
		sqlite3_bind_blob64(st, 4, op->b1, op->l1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)op->expiry);
		return run(st);
	case OP_RET_DEL:
		return run_client(s, ST_RET_DEL, op->s1);
	case OP_SESS_PUT:
		st = s->st[ST_SESS_PUT];
		bind_text(st, 1, op->s1);
		sqlite3_bind_int(st, 2, op->u8a);
		sqlite3_bind_int64(st, 3, op->u32);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)op->u64);
		return run(st);
	case OP_SESS_DEL:
		return apply_session_del(s, op->s1);
	case OP_SUB_PUT:
	case OP_SUB_DEL:
		st = s->st[op->kind == OP_SUB_PUT ? ST_SUB_PUT : ST_SUB_DEL];
		bind_text(st, 1, op->s1);
		bind_text(st, 2, op->s2);
		if (op->kind == OP_SUB_PUT)
			sqlite3_bind_int(st, 3, op->u8a);
		return run(st);
	case OP_MSG_ADD:
		st = s->st[ST_MSG_ADD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		bind_text(st, 2, op->s1);
		bind_text(st, 3, op->s2);
		sqlite3_bind_int(st, 4, op->u8a);
		sqlite3_bind_int(st, 5, op->flag);
		sqlite3_bind_int(st, 6, op->pid);
		sqlite3_bind_int(st, 7, op->u8b);
		bind_blob(st, 8, op->b2, op->l2);
		sqlite3_bind_blob64(st, 9, op->b1, op->l1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, (sqlite3_int64)op->expiry);
		return run(st);
	case OP_MSG_UPD:
		st = s->st[ST_MSG_UPD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		sqlite3_bind_int(st, 2, op->pid);
		sqlite3_bind_int(st, 3, op->u8b);
		return run(st);
	case OP_MSG_DEL:
		return run_seq(s, ST_MSG_DEL, op->seq);
	case OP_QOS2_PUT:
	case OP_QOS2_DEL:
		st = s->st[op->kind == OP_QOS2_PUT ? ST_QOS2_PUT : ST_QOS2_DEL];
		bind_text(st, 1, op->s1);
		sqlite3_bind_int(st, 2, op->pid);
		return run(st);
	case OP_Q_APPEND:
		st = s->st[ST_Q_APPEND];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		bind_text(st, 2, op->s1);
		sqlite3_bind_int(st, 3, op->flag);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)op->l1);
		bind_blob(st, 5, op->b2, op->l2);
		sqlite3_bind_blob64(st, 6, op->b1, op->l1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)op->expiry);
		return run(st);
	case OP_Q_MARK:
		st = s->st[ST_Q_MARK];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)op->seq);
		sqlite3_bind_int(st, 2, op->flag ? 1 : 0);
		sqlite3_bind_int(st, 3, op->flag ? 0 : 1);
		return run(st);
	case OP_Q_DEL:
		return run_seq(s, ST_Q_DEL, op->seq);
	case OP_BARRIER:
		return SQLITE_OK;
	}
	return SQLITE_MISUSE;
}

/* Runs a batch in one transaction. On any failure the whole transaction is
 * rolled back: the batch's operations are then all not durable, which is
 * what their callbacks are told. */
static enum store_status run_batch(struct store *s, const struct op_list *b,
				   enum store_status forced)
{
	int rc = run(s->st[ST_BEGIN]);
	for (const struct store_op *op = b->head; op && rc == SQLITE_OK; op = op->next)
		rc = apply_op(s, op);
	enum store_status st = status_of(rc);
	const char *why = rc != SQLITE_OK ? sqlite3_errmsg(s->db) : NULL;
	if (st == STORE_OK && forced != STORE_OK) {
		st = forced;
		why = "failure forced by a test";
	}
	if (st == STORE_OK) {
		rc = run(s->st[ST_COMMIT]);
		st = status_of(rc);
		if (st != STORE_OK)
			why = sqlite3_errmsg(s->db);
	}
	/* SQLite may already have rolled back by itself (SQLITE_FULL can). */
	if (st != STORE_OK && !sqlite3_get_autocommit(s->db))
		run(s->st[ST_ROLLBACK]);
	/* One line when writes start failing and one when they work again, not
	 * a line per batch while the disk stays full. */
	if (st != STORE_OK && !s->failing)
		store_log(s, STORE_LOG_ERROR, "store: write of %zu operations rolled back: %s (%s)",
			  b->n, store_status_name(st), why ? why : "?");
	else if (st == STORE_OK && s->failing)
		store_log(s, STORE_LOG_INFO, "store: writes succeed again");
	s->failing = st != STORE_OK;
	return st;
}

static void note_batch(struct store *s, const struct op_list *b,
		       enum store_status st)
{
	for (struct store_op *op = b->head; op; op = op->next) {
		op->status = st;
		if (op->kind != OP_BARRIER && st != STORE_OK) {
			s->last_failed = op->opno;
			s->last_failure = st;
		}
		/* A barrier answers for the writes queued before it, which
		 * may have gone in an earlier batch. */
		if (op->kind == OP_BARRIER && st == STORE_OK && s->last_failed > op->since)
			op->status = s->last_failure;
	}
	if (st == STORE_OK) {
		s->stats.batches++;
		s->stats.ops += b->n;
		if (b->n > s->stats.largest_batch)
			s->stats.largest_batch = b->n;
	} else {
		s->stats.failed_batches++;
		s->stats.failed_ops += b->n;
	}
}

static void *writer_main(void *arg)
{
	struct store *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && (!s->queued.head || s->paused))
			pthread_cond_wait(&s->wake, &s->mu);
		if (!s->queued.head)
			break;
		/* Group commit: take everything queued in one go. */
		struct op_list batch = s->queued;
		s->queued = (struct op_list){0};
		enum store_status forced = s->fail_next;
		s->fail_next = STORE_OK;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);

		pthread_mutex_lock(&s->dbmu);
		enum store_status st = run_batch(s, &batch, forced);
		pthread_mutex_unlock(&s->dbmu);

		pthread_mutex_lock(&s->mu);
		note_batch(s, &batch, st);
		list_splice(&s->done, &batch);
		s->busy = false;
		pthread_cond_broadcast(&s->idle);
		/* event_active is thread-safe once evthread_use_pthreads() ran
		 * before the base was made; it wakes the loop. */
		if (s->ev)
			event_active(s->ev, EV_TIMEOUT, 0);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- completions ---- */

size_t store_poll(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	struct op_list done = s->done;
	s->done = (struct op_list){0};
	pthread_mutex_unlock(&s->mu);
	size_t n = 0;
	for (struct store_op *op = done.head, *next; op; op = next) {
		next = op->next;
		if (op->cb)
			op->cb(op->arg, op->status);
		free(op);
		n++;
	}
	return n;
}

size_t store_flush_sync(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->queued.head || s->busy)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return store_poll(s);
}

static void on_done_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	store_poll(arg);
}

int store_attach_loop(struct store *s, struct event_base *base)
{
	struct event *ev = event_new(base, -1, 0, on_done_event, s);
	if (!ev)
		return -1;
	pthread_mutex_lock(&s->mu);
	s->ev = ev;
	/* Completions that finished before the loop was attached run too. */
	if (s->done.head)
		event_active(ev, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* ---- queueing ---- */

static size_t slen(const char *str)
{
	return str ? strlen(str) + 1 : 0;
}

/* Copies each present string and blob into the op's own storage. */
static struct store_op *op_new(enum op_kind kind, const char *s1,
			       const char *s2, const void *b1, size_t l1,
			       const void *b2, size_t l2)
{
	size_t n1 = slen(s1), n2 = slen(s2);
	struct store_op *op = calloc(1, sizeof(*op) + n1 + n2 + l1 + l2);
	if (!op)
		return NULL;
	op->kind = kind;
	uint8_t *p = op->data;
	if (s1) {
		memcpy(p, s1, n1);
		op->s1 = (const char *)p;
		p += n1;
	}
	if (s2) {
		memcpy(p, s2, n2);
		op->s2 = (const char *)p;
		p += n2;
	}
	/* b1 is a payload: never NULL, so an empty payload stays a blob. */
	if (l1)
		memcpy(p, b1, l1);
	op->b1 = p;
	op->l1 = l1;
	p += l1;
	if (b2) {
		if (l2)
			memcpy(p, b2, l2);
		op->b2 = p;
		op->l2 = l2;
	}
	return op;
}

/* A missing name would fail its NOT NULL column and with it every other
 * operation of the batch, so it is refused here, alone. */
static bool names_present(const struct store_op *op)
{
	switch (op->kind) {
	case OP_MSG_UPD:
	case OP_MSG_DEL:
	case OP_Q_MARK:
	case OP_Q_DEL:
	case OP_BARRIER:
		return true;
	case OP_SUB_PUT:
	case OP_SUB_DEL:
	case OP_MSG_ADD:
		return op->s1 && op->s2;
	default:
		return op->s1 != NULL;
	}
}

static int submit(struct store *s, struct store_op *op, store_done_fn cb,
		  void *arg, uint64_t *seq_out)
{
	if (!op)
		return -1;
	if (!names_present(op)) {
		free(op);
		return -1;
	}
	op->cb = cb;
	op->arg = arg;
	if (op->kind != OP_BARRIER)
		s->submitted++;
	op->opno = s->submitted;
	pthread_mutex_lock(&s->mu);
	/* Sequence numbers are handed out in queue order, so they also order
	 * the rows of one queue or session. */
	if (op->wants_seq) {
		op->seq = s->next_seq++;
		if (seq_out)
			*seq_out = op->seq;
	}
	list_append(&s->queued, op);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int store_put_retained(struct store *s, const struct store_retained *r,
		       store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(OP_RET_PUT, r->topic, NULL, r->payload,
				     r->payload_len, r->props, r->props_len);
	if (op) {
		op->u8a = r->qos;
		op->expiry = r->expiry_ms;
	}
	return submit(s, op, cb, arg, NULL);
}

int store_del_retained(struct store *s, const char *topic, store_done_fn cb,
		       void *arg)
{
	return submit(s, op_new(OP_RET_DEL, topic, NULL, NULL, 0, NULL, 0), cb,
		      arg, NULL);
}

int store_session_put(struct store *s, const struct store_session *ss,
		      store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(OP_SESS_PUT, ss->client_id, NULL, NULL, 0,
				     NULL, 0);
	if (op) {
		op->u8a = ss->proto_level;
		op->u32 = ss->expiry_s;
		op->u64 = ss->updated_ms;
	}
	return submit(s, op, cb, arg, NULL);
}

int store_session_del(struct store *s, const char *client_id, store_done_fn cb,
		      void *arg)
{
	return submit(s, op_new(OP_SESS_DEL, client_id, NULL, NULL, 0, NULL, 0),
		      cb, arg, NULL);
}

int store_session_sub_put(struct store *s, const char *client_id,
			  const char *filter, uint8_t options, store_done_fn cb,
			  void *arg)
{
	struct store_op *op = op_new(OP_SUB_PUT, client_id, filter, NULL, 0,
				     NULL, 0);
	if (op)
		op->u8a = options;
	return submit(s, op, cb, arg, NULL);
}

int store_session_sub_del(struct store *s, const char *client_id,
			  const char *filter, store_done_fn cb, void *arg)
{
	return submit(s, op_new(OP_SUB_DEL, client_id, filter, NULL, 0, NULL, 0),
		      cb, arg, NULL);
}

int store_session_msg_add(struct store *s, const struct store_msg *m,
			  uint64_t *seq_out, store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(OP_MSG_ADD, m->client_id, m->topic,
				     m->payload, m->payload_len, m->props,
				     m->props_len);
	if (op) {
		op->wants_seq = true;
		op->u8a = m->qos;
		op->u8b = (uint8_t)m->state;
		op->flag = m->retain;
		op->pid = m->packet_id;
		op->expiry = m->expiry_ms;
	}
	return submit(s, op, cb, arg, seq_out);
}

int store_session_msg_update(struct store *s, uint64_t seq, uint16_t packet_id,
			     enum store_msg_state state, store_done_fn cb,
			     void *arg)
{
	struct store_op *op = op_new(OP_MSG_UPD, NULL, NULL, NULL, 0, NULL, 0);
	if (op) {
		op->seq = seq;
		op->pid = packet_id;
		op->u8b = (uint8_t)state;
	}
	return submit(s, op, cb, arg, NULL);
}

int store_session_msg_del(struct store *s, uint64_t seq, store_done_fn cb,
			  void *arg)
{
	struct store_op *op = op_new(OP_MSG_DEL, NULL, NULL, NULL, 0, NULL, 0);
	if (op)
		op->seq = seq;
	return submit(s, op, cb, arg, NULL);
}

static int qos2_op(struct store *s, enum op_kind kind, const char *client_id,
		   uint16_t packet_id, store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(kind, client_id, NULL, NULL, 0, NULL, 0);
	if (op)
		op->pid = packet_id;
	return submit(s, op, cb, arg, NULL);
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
	struct store_op *op = op_new(OP_Q_APPEND, q->queue, NULL, q->payload,
				     q->payload_len, q->props, q->props_len);
	if (op) {
		op->wants_seq = true;
		op->flag = q->redelivered;
		op->expiry = q->expiry_ms;
	}
	return submit(s, op, cb, arg, seq_out);
}

int store_queue_mark(struct store *s, uint64_t seq, bool delivered,
		     store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(OP_Q_MARK, NULL, NULL, NULL, 0, NULL, 0);
	if (op) {
		op->seq = seq;
		op->flag = delivered;
	}
	return submit(s, op, cb, arg, NULL);
}

int store_queue_delete(struct store *s, uint64_t seq, store_done_fn cb,
		       void *arg)
{
	struct store_op *op = op_new(OP_Q_DEL, NULL, NULL, NULL, 0, NULL, 0);
	if (op)
		op->seq = seq;
	return submit(s, op, cb, arg, NULL);
}

int store_barrier(struct store *s, uint64_t since, store_done_fn cb, void *arg)
{
	struct store_op *op = op_new(OP_BARRIER, NULL, NULL, NULL, 0, NULL, 0);
	if (op)
		op->since = since;
	return submit(s, op, cb, arg, NULL);
}

uint64_t store_submitted(const struct store *s)
{
	return s->submitted;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	pthread_mutex_unlock(&s->mu);
}

void store_test_pause(struct store *s, bool paused)
{
	pthread_mutex_lock(&s->mu);
	s->paused = paused;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void store_test_fail_next_commit(struct store *s, enum store_status st)
{
	pthread_mutex_lock(&s->mu);
	s->fail_next = st;
	pthread_mutex_unlock(&s->mu);
}

/* ---- open and close ---- */

sqlite3 *store_db_lock(struct store *s)
{
	pthread_mutex_lock(&s->dbmu);
	return s->db;
}

void store_db_unlock(struct store *s)
{
	pthread_mutex_unlock(&s->dbmu);
}

static int prepare_all(struct store *s, char *err, size_t errlen)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &s->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare statement: %s",
				 sqlite3_errmsg(s->db));
			return -1;
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
	if (s->ev)
		event_free(s->ev);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->dbmu);
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
		return -1;
	}
	sqlite3_extended_result_codes(s->db, 1);
	bool in_memory = strcmp(path, ":memory:") == 0 || path[0] == '\0';
	char why[256];
	if (store_db_setup(s, s->db, in_memory, sync, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	if (prepare_all(s, err, errlen) < 0)
		return -1;
	uint64_t max = 0;
	if (store_db_max_seq(s->db, &max) < 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
		return -1;
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
	pthread_mutex_init(&s->dbmu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (open_db(s, path, sync, err, errlen) < 0) {
		store_free(s);
		return NULL;
	}
	int rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the store's writer thread: %s",
			 strerror(rc));
		store_free(s);
		return NULL;
	}
	return s;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	s->paused = false;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	/* The writer drains the queue before it exits. */
	pthread_join(s->writer, NULL);
	store_poll(s);
	store_free(s);
}
