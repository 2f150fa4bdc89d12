/* stomp_dest: STOMP destination names and what they mean to the router.
 * "/topic/a.b" is router topic "a/b" ('.' and '/' swap, RabbitMQ's
 * convention; in a SUBSCRIBE '*' is one level and '#' the rest), and
 * "/queue/x" is router queue "x". Also the ERROR a refused destination gets.
 * It parses and words; it does not subscribe, publish or store anything. */
#ifndef WSB_STOMP_DEST_H
#define WSB_STOMP_DEST_H
#include <stdbool.h>
#include <stddef.h>
#include "stomp_codec.h"

struct stomp_session;

enum stomp_dest_kind {
	STOMP_DEST_TOPIC,             /* /topic/...: fan-out, at most once */
	STOMP_DEST_QUEUE              /* /queue/...: one consumer each, stored */
};

/* Why a destination was refused (the functions return these, negated
 * already). */
enum stomp_dest_err {
	STOMP_DEST_ENOMEM = -1,
	STOMP_DEST_EPREFIX = -2,      /* neither /topic/ nor /queue/ */
	STOMP_DEST_EINVAL = -3        /* the name after the prefix is not valid */
};

/* A destination in router form; name is malloc'd and the caller's. */
struct stomp_dest {
	enum stomp_dest_kind kind;
	char *name;
	size_t len;
};

/* Map what a client wrote. filter: it comes from a SUBSCRIBE, so '*' and '#'
 * are wildcards (a '+' is refused: it would become one). 0, or a
 * stomp_dest_err. */
int stomp_dest_parse(const char *dest, bool filter, struct stomp_dest *out);
/* Router topic -> "/topic/..." into b (replacing its contents). 0, or
 * STOMP_DEST_ENOMEM. */
int stomp_dest_of_topic(struct stomp_buf *b, const char *topic, size_t len);
/* ERROR for a destination refused with err, then close; `use` ends the
 * sentence ("to send to"). Returns what stomp_fail returns. */
int stomp_dest_fail(struct stomp_session *s, const struct stomp_frame *f, const char *dest,
		    int err, const char *use);

/* The destination of a SUBSCRIBE (subscribe) or SEND: parsed, and allowed
 * by the ACL. 0 with *out set (the caller frees out->name), or an ERROR
 * (invalid destination, access refused) then close: STOMP_CLOSED. A topic
 * SUBSCRIBE passes the ACL when some topic its filter matches is readable;
 * each MESSAGE is judged again (stomp_dest_may_read). */
int stomp_dest_take(struct stomp_session *s, const struct stomp_frame *f, const char *dest,
		    bool subscribe, struct stomp_dest *out);
#endif
