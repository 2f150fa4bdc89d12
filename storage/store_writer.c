/* The store's writer thread: the loop queues operations, the writer takes
 * everything queued, applies it in one transaction (group commit) and hands
 * the finished operations back for their completions. It knows operations
 * only as things to apply (store_op_apply) and barriers. */
#include "store.h"
#include "store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

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

/* ---- the writer thread ---- */

/* Runs a batch in one transaction. On any failure the whole transaction is
 * rolled back: the batch's operations are then all not durable, which is
 * what their callbacks are told. */
static enum store_status run_batch(struct store *s, const struct op_list *b,
				   enum store_status forced)
{
	int rc = store_stmt_run(s->st[ST_BEGIN]);
	for (const struct store_op *op = b->head; op && rc == SQLITE_OK; op = op->next)
		rc = op->kind == OP_BARRIER ? SQLITE_OK : store_op_apply(s, op);
	enum store_status st = status_of(rc);
	const char *why = rc != SQLITE_OK ? sqlite3_errmsg(s->db) : NULL;
	if (st == STORE_OK && forced != STORE_OK) {
		st = forced;
		why = "failure forced by a test";
	}
	if (st == STORE_OK) {
		rc = store_stmt_run(s->st[ST_COMMIT]);
		st = status_of(rc);
		if (st != STORE_OK)
			why = sqlite3_errmsg(s->db);
	}
	/* SQLite may already have rolled back by itself (SQLITE_FULL can). */
	if (st != STORE_OK && !sqlite3_get_autocommit(s->db))
		store_stmt_run(s->st[ST_ROLLBACK]);
	/* One line when writes start failing and one when they work again, not
	 * a line per batch while the disk stays full. */
	if (st != STORE_OK && !s->failing)
		store_log(s, STORE_LOG_ERROR,
			  "store: write of %zu operations rolled back: %s (%s)",
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
		if (op->kind == OP_BARRIER && st == STORE_OK &&
		    s->last_failed > op->u.since)
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

void store_writer_init(struct store *s)
{
	pthread_mutex_init(&s->dbmu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->idle, NULL);
}

int store_writer_start(struct store *s, char *err, size_t errlen)
{
	int rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the store's writer thread: %s",
			 strerror(rc));
		return STORE_ERR_NOMEM;
	}
	return 0;
}

void store_writer_stop(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	s->paused = false;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	/* The writer drains the queue before it exits. */
	pthread_join(s->writer, NULL);
	store_poll(s);
}

void store_writer_fini(struct store *s)
{
	if (s->ev)
		event_free(s->ev);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->dbmu);
}

/* ---- queueing ---- */

void store_submit(struct store *s, struct store_op *op)
{
	if (op->kind != OP_BARRIER)
		s->submitted++;
	op->opno = s->submitted;
	pthread_mutex_lock(&s->mu);
	list_append(&s->queued, op);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

uint64_t store_submitted(const struct store *s)
{
	return s->submitted;
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
		return STORE_ERR_NOMEM;
	pthread_mutex_lock(&s->mu);
	s->ev = ev;
	/* Completions that finished before the loop was attached run too. */
	if (s->done.head)
		event_active(ev, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* ---- the connection, shared with the loaders ---- */

sqlite3 *store_db_lock(struct store *s)
{
	pthread_mutex_lock(&s->dbmu);
	return s->db;
}

void store_db_unlock(struct store *s)
{
	pthread_mutex_unlock(&s->dbmu);
}

/* ---- statistics and test hooks ---- */

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
