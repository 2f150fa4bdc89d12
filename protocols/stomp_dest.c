/* stomp_dest: destination names <-> router names, and their ERRORs. */
#include "stomp_dest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/acl.h"
#include "net/conn.h"
#include "route/router.h"
#include "stomp_session.h"

#define TOPIC_PREFIX "/topic/"
#define QUEUE_PREFIX "/queue/"
#define PREFIX_LEN 7   /* both */

static int topic_parse(const char *n, bool filter, struct stomp_dest *out)
{
	size_t len = strlen(n);
	if (len == 0)
		return STOMP_DEST_EINVAL;
	char *o = malloc(len + 1);
	if (!o)
		return STOMP_DEST_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		char ch = n[i];
		if (ch == '+' && filter) {
			free(o);   /* it would turn into a router wildcard */
			return STOMP_DEST_EINVAL;
		}
		o[i] = ch == '.' ? '/' : ch == '/' ? '.' : (filter && ch == '*') ? '+' : ch;
	}
	o[len] = 0;
	if (!(filter ? router_filter_valid(o, len) : router_topic_valid(o, len))) {
		free(o);
		return STOMP_DEST_EINVAL;
	}
	*out = (struct stomp_dest){ STOMP_DEST_TOPIC, o, len };
	return 0;
}

int stomp_dest_parse(const char *dest, bool filter, struct stomp_dest *out)
{
	if (strncmp(dest, TOPIC_PREFIX, PREFIX_LEN) == 0)
		return topic_parse(dest + PREFIX_LEN, filter, out);
	if (strncmp(dest, QUEUE_PREFIX, PREFIX_LEN) != 0)
		return STOMP_DEST_EPREFIX;
	const char *n = dest + PREFIX_LEN;
	if (!*n)
		return STOMP_DEST_EINVAL;
	char *name = strdup(n);
	if (!name)
		return STOMP_DEST_ENOMEM;
	*out = (struct stomp_dest){ STOMP_DEST_QUEUE, name, strlen(n) };
	return 0;
}

int stomp_dest_of_topic(struct stomp_buf *b, const char *topic, size_t len)
{
	b->len = 0;
	if (stomp_buf_append(b, TOPIC_PREFIX, PREFIX_LEN) < 0 || stomp_buf_reserve(b, len) < 0)
		return STOMP_DEST_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		char ch = topic[i];
		b->data[b->len++] = (uint8_t)(ch == '/' ? '.' : ch == '.' ? '/' : ch);
	}
	return 0;
}

int stomp_dest_fail(struct stomp_session *s, const struct stomp_frame *f, const char *dest,
		    int err, const char *use)
{
	char d[200];
	if (err == STOMP_DEST_ENOMEM)
		return stomp_fail(s, f, "out of memory", NULL);
	if (err == STOMP_DEST_EPREFIX) {
		snprintf(d, sizeof(d), "'%.100s': supported destinations are " TOPIC_PREFIX "<name> and "
			 QUEUE_PREFIX "<name>", dest);
		return stomp_fail(s, f, "unsupported destination", d);
	}
	snprintf(d, sizeof(d), "'%.100s' is not a valid destination %s", dest, use);
	return stomp_fail(s, f, "invalid destination", d);
}

static int dest_acl(struct stomp_session *s, const struct stomp_frame *f, const char *dest,
		    const struct stomp_dest *d, bool subscribe)
{
	const struct acl *acl = s->acl->acl;
	const char *cid = conn_client_id(s->c);
	bool ok;
	char d2[200];

	if (!acl)
		return 0;
	if (d->kind == STOMP_DEST_QUEUE) {
		char key[1024];

		ok = acl_queue_key(d->name, d->len, key, sizeof(key)) >= 0 &&
		     acl_check(acl, s->login, cid, ACL_QUEUE, key, d->len,
			       subscribe ? ACL_READ : ACL_WRITE);
	} else if (subscribe) {
		ok = acl_check_sub(acl, s->login, cid, d->name, d->len) != ACL_SUB_DENIED;
	} else {
		ok = acl_check(acl, s->login, cid, ACL_TOPIC, d->name, d->len, ACL_WRITE);
	}
	if (ok)
		return 0;
	snprintf(d2, sizeof(d2), "the ACL does not allow %s '%.100s'",
		 subscribe ? "subscribing to" : "sending to", dest);
	return stomp_fail(s, f, "access refused", d2);
}

int stomp_dest_take(struct stomp_session *s, const struct stomp_frame *f, const char *dest,
		    bool subscribe, struct stomp_dest *out)
{
	int err = stomp_dest_parse(dest, subscribe, out);
	if (err < 0)
		return stomp_dest_fail(s, f, dest, err, subscribe ? "to subscribe to" : "to send to");
	if (dest_acl(s, f, dest, out, subscribe) < 0) {
		free(out->name);
		out->name = NULL;
		return STOMP_CLOSED;
	}
	return 0;
}
