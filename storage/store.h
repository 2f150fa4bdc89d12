/* store: everything that must outlive a restart, in one SQLite file. The only
 * module that includes sqlite3.h.
 *
 * Writes are queued from the event-loop thread and applied by one writer
 * thread, which takes everything queued, runs it in one transaction (group
 * commit) and hands the finished operations back: through an event on the
 * loop's event_base when one is attached, otherwise through store_poll() /
 * store_flush_sync() on the caller's thread. A completion callback runs only
 * after the commit that holds its operation, so it is where a publisher's
 * acknowledgement belongs (DESIGN.md, "Durability contract").
 *
 * The loop never waits on SQLite except in store_open, the start-up loaders
 * and store_close. The store knows no wire format: payloads and properties
 * are opaque bytes the sessions encode. It does not enforce caps on stored
 * messages; the sessions and router count and refuse. */
#ifndef WSB_STORE_H
#define WSB_STORE_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

/* The schema version this code writes; older files are upgraded on open. */
#define STORE_SCHEMA_VERSION 2

enum store_sync {
	STORE_SYNC_FULL,   /* fsync every commit: nothing acknowledged is lost */
	STORE_SYNC_NORMAL, /* WAL fsynced at checkpoints: a power cut may lose the
			    * last commits, a process crash loses nothing */
	STORE_SYNC_OFF,    /* no fsync: an OS crash may lose or corrupt data */
};

/* The store's errors, negative like every module's (a function that can
 * fail returns 0 or one of these); also what completions are told. */
enum store_status {
	STORE_OK = 0,
	STORE_ERR_FULL = -1,   /* disk or quota full */
	STORE_ERR_IO = -2,     /* I/O error from the OS */
	STORE_ERR_DB = -3,     /* any other SQLite failure */
	STORE_ERR_NOMEM = -4,  /* out of memory; nothing was queued */
	STORE_ERR_INVAL = -5,  /* a missing name, an unknown sync mode */
};

/* Runs on the loop thread (or the store_poll caller) after the operation's
 * transaction committed (STORE_OK) or was rolled back (an error: every
 * operation of that batch gets the same status). */
typedef void (*store_done_fn)(void *arg, enum store_status status);

/* The caller's logger: storage knows no log module of its own. level is 0
 * error, 1 warn, 2 info, 3 debug (broker/log.h's numbering, so log_sink
 * fits as it is). fn may be called from the writer thread. */
enum store_log_level {
	STORE_LOG_ERROR = 0,
	STORE_LOG_WARN,
	STORE_LOG_INFO,
	STORE_LOG_DEBUG,
};
struct store_log {
	void (*fn)(void *arg, int level, const char *fmt, va_list ap);
	void *arg;
};

/* "full", "normal", "off"; 0 on success, STORE_ERR_INVAL unknown. */
int store_parse_sync(const char *s, enum store_sync *out);
const char *store_status_name(enum store_status st);

/* Opens or creates the database at path (":memory:" keeps nothing), applies
 * pending migrations and starts the writer thread. The store logs through
 * log (copied; NULL or a NULL fn logs nothing). NULL on failure with a
 * message in err, e.g. for a file written by a newer wsbroker. */
struct store *store_open(const char *path, enum store_sync sync,
			 const struct store_log *log, char *err, size_t errlen);
/* Completions then run as an event on base. The caller must have called
 * evthread_use_pthreads() before creating base. 0 or STORE_ERR_NOMEM. */
int store_attach_loop(struct store *s, struct event_base *base);
/* Waits for everything queued to commit, runs the pending completions on the
 * calling thread, stops the writer and closes the file. NULL is a no-op. */
void store_close(struct store *s);

/* Runs completions that are ready, on the calling thread; returns how many. */
size_t store_poll(struct store *s);
/* Waits until everything queued so far has committed (or failed), then runs
 * the completions; returns how many ran. For tests and shutdown; never while
 * the writer is paused by store_test_pause. */
size_t store_flush_sync(struct store *s);

/* ---- writes: each copies its arguments and queues one operation. They
 * return 0, or STORE_ERR_NOMEM, or STORE_ERR_INVAL when a name (topic,
 * client id, filter, queue) is NULL; the callback will not run then. cb may be NULL.
 * Completions run in the order the operations were queued. ---- */

struct store_retained {
	const char *topic;
	const void *payload;
	size_t payload_len;
	uint8_t qos;
	const void *props;      /* encoded by the caller; may be NULL */
	size_t props_len;
	uint64_t expiry_ms;     /* wall clock deadline, 0 = none */
};
int store_put_retained(struct store *s, const struct store_retained *r,
		       store_done_fn cb, void *arg);
int store_del_retained(struct store *s, const char *topic, store_done_fn cb,
		       void *arg);

/* A persistent MQTT session. Deleting it deletes its subscriptions, messages
 * and QoS 2 ids too. */
struct store_session {
	const char *client_id;
	uint8_t proto_level;    /* 3, 4 or 5 */
	uint32_t expiry_s;      /* session expiry interval */
	uint64_t updated_ms;    /* wall clock of the last change (disconnect) */
};
int store_session_put(struct store *s, const struct store_session *ss,
		      store_done_fn cb, void *arg);
int store_session_del(struct store *s, const char *client_id, store_done_fn cb,
		      void *arg);
/* options: the QoS, or MQTT 5's whole subscription options byte. */
int store_session_sub_put(struct store *s, const char *client_id,
			  const char *filter, uint8_t options, store_done_fn cb,
			  void *arg);
int store_session_sub_del(struct store *s, const char *client_id,
			  const char *filter, store_done_fn cb, void *arg);

enum store_msg_state {
	STORE_MSG_QUEUED = 0,   /* not sent yet */
	STORE_MSG_SENT = 1,     /* PUBLISH sent, waiting for PUBACK / PUBREC */
	STORE_MSG_RELEASED = 2, /* PUBREL sent, waiting for PUBCOMP */
};
/* An outbound QoS 1/2 message of a session. */
struct store_msg {
	const char *client_id;
	uint64_t seq;           /* set by the store; orders a session's messages */
	const char *topic;
	const void *payload;
	size_t payload_len;
	const void *props;
	size_t props_len;
	uint8_t qos;
	bool retain;
	uint16_t packet_id;     /* 0 while queued */
	enum store_msg_state state;
	uint64_t expiry_ms;
};
/* *seq_out receives the message's sequence number (m->seq is ignored). */
int store_session_msg_add(struct store *s, const struct store_msg *m,
			  uint64_t *seq_out, store_done_fn cb, void *arg);
int store_session_msg_update(struct store *s, uint64_t seq, uint16_t packet_id,
			     enum store_msg_state state, store_done_fn cb,
			     void *arg);
int store_session_msg_del(struct store *s, uint64_t seq, store_done_fn cb,
			  void *arg);
/* Inbound QoS 2 packet ids between PUBREC and PUBREL. */
int store_session_qos2_put(struct store *s, const char *client_id,
			   uint16_t packet_id, store_done_fn cb, void *arg);
int store_session_qos2_del(struct store *s, const char *client_id,
			   uint16_t packet_id, store_done_fn cb, void *arg);

/* A message in a durable STOMP queue. */
struct store_qmsg {
	const char *queue;
	uint64_t seq;           /* set by the store; orders the queue */
	const void *payload;    /* NULL when loaded without payloads */
	size_t payload_len;
	const void *props;      /* headers, encoded by the caller */
	size_t props_len;
	bool redelivered;
	uint64_t expiry_ms;
};
/* *seq_out receives the message's sequence number. */
int store_queue_append(struct store *s, const struct store_qmsg *q,
		       uint64_t *seq_out, store_done_fn cb, void *arg);
/* Handed to a consumer (delivered) or given back without ACK (undelivered,
 * which also flags it redelivered). */
int store_queue_mark(struct store *s, uint64_t seq, bool delivered,
		     store_done_fn cb, void *arg);
/* ACKed: gone for good. */
int store_queue_delete(struct store *s, uint64_t seq, store_done_fn cb,
		       void *arg);

/* ---- start-up loaders: synchronous, on the loop thread, before serving.
 * Pointers are valid only during the callback. A callback returning nonzero
 * stops the load and the loader returns that value; otherwise 0, or
 * STORE_ERR_DB on a database error (logged). ---- */

int store_load_retained(struct store *s,
			int (*fn)(void *arg, const struct store_retained *r),
			void *arg);

/* Sessions first, then all subscriptions, messages (in seq order) and QoS 2
 * ids, each naming its client id. Any callback may be NULL. */
struct store_session_loader {
	int (*session)(void *arg, const struct store_session *ss);
	int (*sub)(void *arg, const char *client_id, const char *filter,
		   uint8_t options);
	int (*msg)(void *arg, const struct store_msg *m);
	int (*qos2)(void *arg, const char *client_id, uint16_t packet_id);
};
int store_load_sessions(struct store *s, const struct store_session_loader *l,
			void *arg);

/* Queue messages grouped by queue name, each queue in its original order.
 * Messages that were delivered but not acknowledged when the broker stopped
 * come back undelivered and redelivered (and are written so). Without
 * STORE_LOAD_PAYLOADS only an index is read (payload and props NULL, lengths
 * set), which keeps start-up from reading the messages themselves. */
#define STORE_LOAD_PAYLOADS 1u
int store_load_queue(struct store *s, unsigned flags,
		     int (*fn)(void *arg, const struct store_qmsg *q),
		     void *arg);

/* Writes nothing: cb runs once everything queued before it has been
 * committed or rolled back. Its status is STORE_OK only if no write queued
 * after the mark `since` (a store_submitted() value) and before it failed,
 * whichever batch took them. How a session acknowledges a request whose
 * writes were queued by several calls: take the mark before handling it.
 * 0, or STORE_ERR_NOMEM (cb will not run). */
int store_barrier(struct store *s, uint64_t since, store_done_fn cb, void *arg);
/* Write operations queued since open (barriers not counted). Read before
 * and after handling a request, it tells whether the request wrote
 * anything. Loop thread only. */
uint64_t store_submitted(const struct store *s);

struct store_stats {
	uint64_t batches;       /* transactions committed */
	uint64_t ops;           /* operations committed */
	uint64_t largest_batch; /* most operations in one transaction */
	uint64_t failed_batches;
	uint64_t failed_ops;
};
void store_get_stats(struct store *s, struct store_stats *out);

/* ---- test hooks ---- */

/* While paused the writer takes nothing from the queue. */
void store_test_pause(struct store *s, bool paused);
/* The next batch fails as if its commit had returned this status. */
void store_test_fail_next_commit(struct store *s, enum store_status st);

#endif
