/* message: allocation, copying and reference counting of struct message.
 * Strings are stored NUL-terminated (with their length) so that protocols
 * can hand them to printf-style encoders without another copy. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "message.h"

/* Atomic because the store's writer thread may rebuild messages while the
 * loop thread creates new ones; ids must stay unique across both. */
static atomic_uint_fast64_t next_message_id = 1;

static char *dup_str(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	if (len)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static uint8_t *dup_bytes(const void *b, size_t len)
{
	/* malloc(0) may return NULL: always allocate one byte so that a NULL
	 * payload means OOM, never "empty". */
	uint8_t *p = malloc(len ? len : 1);

	if (p && len)
		memcpy(p, b, len);
	return p;
}

struct message *message_new(const char *topic, size_t topic_len,
			    const void *payload, size_t payload_len)
{
	struct message *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->topic = dup_str(topic ? topic : "", topic ? topic_len : 0);
	m->payload = dup_bytes(payload, payload ? payload_len : 0);
	if (!m->topic || !m->payload) {
		free(m->topic);
		free(m->payload);
		free(m);
		return NULL;
	}
	m->refcnt = 1;
	m->id = atomic_fetch_add(&next_message_id, 1);
	m->topic_len = topic ? topic_len : 0;
	m->payload_len = payload ? payload_len : 0;
	m->created_ms = clock_wall_ms();
	return m;
}

int message_set_content_type(struct message *m, const char *ct, size_t len)
{
	char *p = dup_str(ct, len);

	if (!p)
		return -1;
	free(m->content_type);
	m->content_type = p;
	return 0;
}

int message_add_prop(struct message *m, const char *name, size_t name_len,
		     const char *value, size_t value_len)
{
	struct msg_prop *props;
	char *n, *v;

	props = realloc(m->props, (m->nprops + 1) * sizeof(*props));
	if (!props)
		return -1;
	m->props = props;
	n = dup_str(name, name_len);
	v = dup_str(value, value_len);
	if (!n || !v) {
		free(n);
		free(v);
		return -1;
	}
	props[m->nprops].name = n;
	props[m->nprops].value = v;
	m->nprops++;
	return 0;
}

struct message *message_clone(const struct message *m)
{
	struct message *c = message_new(m->topic, m->topic_len, m->payload, m->payload_len);
	size_t i;

	if (!c)
		return NULL;
	/* The same logical message: keep its id and timestamps. */
	c->id = m->id;
	c->qos = m->qos;
	c->retain = m->retain;
	c->redelivered = m->redelivered;
	c->created_ms = m->created_ms;
	c->expiry_ms = m->expiry_ms;
	if (m->content_type &&
	    message_set_content_type(c, m->content_type, strlen(m->content_type)) < 0)
		goto oom;
	for (i = 0; i < m->nprops; i++) {
		if (message_add_prop(c, m->props[i].name, strlen(m->props[i].name),
				     m->props[i].value, strlen(m->props[i].value)) < 0)
			goto oom;
	}
	return c;
oom:
	message_unref(c);
	return NULL;
}

struct message *message_ref(struct message *m)
{
	if (m)
		m->refcnt++;
	return m;
}

void message_unref(struct message *m)
{
	size_t i;

	if (!m || --m->refcnt > 0)
		return;
	for (i = 0; i < m->nprops; i++) {
		free(m->props[i].name);
		free(m->props[i].value);
	}
	free(m->props);
	free(m->content_type);
	free(m->payload);
	free(m->topic);
	free(m);
}
