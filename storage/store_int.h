/* store internals shared by store.c (the write API: one function and one
 * typed operation per kind of write, and its SQL), store_writer.c (the
 * queue, the writer thread, group commit, completions) and store_db.c
 * (schema, migrations, start-up loaders). Not for other modules. */
#ifndef WSB_STORE_INT_H
#define WSB_STORE_INT_H
#include <pthread.h>
#include <sqlite3.h>
#include "store.h"

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

enum op_kind {
	OP_RET_PUT, OP_RET_DEL,
	OP_SESS_PUT, OP_SESS_DEL, OP_SUB_PUT, OP_SUB_DEL,
	OP_MSG_ADD, OP_MSG_UPD, OP_MSG_DEL, OP_QOS2_PUT, OP_QOS2_DEL,
	OP_Q_APPEND, OP_Q_MARK, OP_Q_DEL,
	OP_BARRIER,
};

struct op_sub {
	const char *client_id;
	const char *filter;
	uint8_t options;        /* OP_SUB_PUT only */
};

struct op_msg_update {
	uint64_t seq;
	uint16_t packet_id;
	enum store_msg_state state;
};

struct op_qos2 {
	const char *client_id;
	uint16_t packet_id;
};

struct op_queue_mark {
	uint64_t seq;
	bool delivered;
};

/* One queued operation; u holds the member its kind names. Strings and blobs
 * are copied into data[] so the caller's buffers may go away as soon as the
 * call returns. */
struct store_op {
	struct store_op *next;
	enum op_kind kind;
	store_done_fn cb;
	void *arg;
	enum store_status status;
	uint64_t opno;          /* 1, 2, ... in queue order (barriers: the last
				 * write queued before them) */
	union {
		struct store_retained ret;      /* OP_RET_PUT */
		const char *topic;              /* OP_RET_DEL */
		struct store_session sess;      /* OP_SESS_PUT */
		const char *client_id;          /* OP_SESS_DEL */
		struct op_sub sub;              /* OP_SUB_PUT, OP_SUB_DEL */
		struct store_msg msg;           /* OP_MSG_ADD */
		struct op_msg_update upd;       /* OP_MSG_UPD */
		uint64_t seq;                   /* OP_MSG_DEL, OP_Q_DEL: the row */
		struct op_qos2 qos2;            /* OP_QOS2_PUT, OP_QOS2_DEL */
		struct store_qmsg qmsg;         /* OP_Q_APPEND */
		struct op_queue_mark mark;      /* OP_Q_MARK */
		uint64_t since;                 /* OP_BARRIER: writes after this
						 * one count */
	} u;
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
	/* mu guards everything below up to the loop-thread-only fields. */
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
	uint64_t last_failed;   /* opno of the newest write that failed */
	enum store_status last_failure;
	struct store_stats stats;
	struct event *ev;       /* runs completions on the loop */

	/* Loop thread only. */
	uint64_t next_seq;
	uint64_t submitted;     /* operations queued since open */

	struct store_log log;
};

/* One line through the caller's logger (store_open's log). */
void store_log(const struct store *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* store.c: runs one operation's statements inside the writer's
 * transaction; SQLITE_OK or the error. */
int store_op_apply(struct store *s, const struct store_op *op);
/* Steps a statement whose parameters are bound; SQLITE_OK or the error. */
int store_stmt_run(sqlite3_stmt *st);

/* store_writer.c */
void store_writer_init(struct store *s);
/* Starts the thread; 0, or STORE_ERR_NOMEM with a message in err. */
int store_writer_start(struct store *s, char *err, size_t errlen);
/* Lets the writer drain the queue, joins it and runs what completed. */
void store_writer_stop(struct store *s);
/* Frees what store_writer_init and store_attach_loop made. */
void store_writer_fini(struct store *s);
/* Queues op (its cb, arg and u filled in); loop thread only. */
void store_submit(struct store *s, struct store_op *op);

/* store_db.c: pragmas, then migrations up to STORE_SCHEMA_VERSION, on s's
 * new connection db. 0, or a store_status with a message in err. */
int store_db_setup(struct store *s, sqlite3 *db, bool in_memory,
		   enum store_sync sync, char *err, size_t errlen);
/* The highest message sequence number in use (0 for none); 0 or
 * STORE_ERR_DB. */
int store_db_max_seq(sqlite3 *db, uint64_t *out);

/* The connection, held against the writer thread: for the loaders. */
sqlite3 *store_db_lock(struct store *s);
void store_db_unlock(struct store *s);

#endif
