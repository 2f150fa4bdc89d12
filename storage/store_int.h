/* store internals shared by store.c (queue, writer thread, completions) and
 * store_db.c (schema, migrations, start-up loaders). Not for other modules. */
#ifndef WSB_STORE_INT_H
#define WSB_STORE_INT_H
#include <sqlite3.h>
#include "store.h"

/* One line through the caller's logger (store_open's log). */
void store_log(const struct store *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Pragmas, then migrations up to STORE_SCHEMA_VERSION, on s's new
 * connection db. 0, or -1 with a message in err. */
int store_db_setup(struct store *s, sqlite3 *db, bool in_memory,
		   enum store_sync sync, char *err, size_t errlen);
/* The highest message sequence number in use (0 for none); 0 or -1. */
int store_db_max_seq(sqlite3 *db, uint64_t *out);

/* The connection, held against the writer thread: for the loaders. */
sqlite3 *store_db_lock(struct store *s);
void store_db_unlock(struct store *s);

#endif
