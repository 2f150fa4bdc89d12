/* acl: who may read or write which topic or queue, from an acl_file in
 * Mosquitto's format (docs/security.md, "Who may do what"). A pure parser
 * (text -> rules, errors as "FILE:LINE: what") and checks; no I/O beyond
 * acl_load reading the file, no logging, no globals. Names are in router
 * form: MQTT topics as they are, STOMP "/topic/a.b" as "a/b", STOMP queue
 * "x.y" as "x/y" (acl_queue_key). Not here: who may connect (auth.c). */
#ifndef WSB_ACL_H
#define WSB_ACL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;

enum acl_access { ACL_READ = 1, ACL_WRITE = 2 };
enum acl_kind { ACL_TOPIC = 0, ACL_QUEUE = 1 };
enum acl_err { ACL_OK = 0, ACL_ENOMEM = -1, ACL_ESYNTAX = -2, ACL_EIO = -3 };

/* The instance the server owns and sessions reach through proto_env. acl
 * NULL means no acl_file: everything is allowed. generation changes with
 * every load, so that what a subscription cached is known to be stale. */
struct acl_holder {
	struct acl *acl;
	uint64_t generation;
};

/* Parse text (len bytes; name is the file's name for errors). NULL with
 * "name:line: why" in err on a syntax error or out of memory (*code says
 * which). */
struct acl *acl_parse(const char *text, size_t len, const char *name, int *code, char *err,
		      size_t errlen);
/* Read and parse a file. */
struct acl *acl_load(const char *path, char *err, size_t errlen);
void acl_free(struct acl *a);
size_t acl_rule_count(const struct acl *a);

/* May login (NULL: anonymous) with client_id (NULL: none) use name (a
 * topic, or a queue key) for access (ACL_READ or ACL_WRITE)? A deny rule
 * that matches wins over every allow; without a matching allow, no. */
bool acl_check(const struct acl *a, const char *login, const char *client_id,
	       enum acl_kind kind, const char *name, size_t len, enum acl_access access);

/* What a topic subscription (a filter, MQTT syntax) may get. */
enum acl_sub {
	ACL_SUB_DENIED = 0,   /* no readable topic can match it: refuse SUBSCRIBE */
	ACL_SUB_CHECK,        /* some topics it matches are readable: check each message */
	ACL_SUB_ALL           /* within one read allow and no deny intersects: no check */
};
enum acl_sub acl_check_sub(const struct acl *a, const char *login, const char *client_id,
			   const char *filter, size_t len);

/* A STOMP queue name "a.b" -> "a/b" (and '*' -> '+'), into out (cap bytes,
 * NUL-terminated). Returns the length, or -1 when it does not fit. */
int acl_queue_key(const char *queue, size_t len, char *out, size_t cap);

/* Filter algebra on MQTT filters (exported for the unit test): does some
 * topic match both? does every topic that a matches also match b? */
bool acl_filters_intersect(const char *a, size_t alen, const char *b, size_t blen);
bool acl_filter_within(const char *a, size_t alen, const char *b, size_t blen);

#endif
