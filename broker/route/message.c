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
	c->store_seq = m->store_seq;
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

/* ---- properties as bytes ----
 * Each entry: a kind byte ('c' content type, 'p' property), then for 'c' one
 * and for 'p' two length-prefixed strings (4-byte big-endian length). */

static size_t str_size(const char *str)
{
	return 4 + strlen(str);
}

size_t message_props_size(const struct message *m)
{
	size_t n = m->content_type ? 1 + str_size(m->content_type) : 0;

	for (size_t i = 0; i < m->nprops; i++)
		n += 1 + str_size(m->props[i].name) + str_size(m->props[i].value);
	return n;
}

static uint8_t *put_str(uint8_t *p, const char *str)
{
	size_t len = strlen(str);

	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	memcpy(p + 4, str, len);
	return p + 4 + len;
}

size_t message_props_encode(const struct message *m, uint8_t *out)
{
	uint8_t *p = out;

	if (m->content_type) {
		*p++ = 'c';
		p = put_str(p, m->content_type);
	}
	for (size_t i = 0; i < m->nprops; i++) {
		*p++ = 'p';
		p = put_str(p, m->props[i].name);
		p = put_str(p, m->props[i].value);
	}
	return (size_t)(p - out);
}

/* One length-prefixed string at *p; NULL when it runs past end. */
static const char *get_str(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *q = *p;

	if (end - q < 4)
		return NULL;
	*len = (size_t)q[0] << 24 | (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
	q += 4;
	if ((size_t)(end - q) < *len)
		return NULL;
	*p = q + *len;
	return (const char *)q;
}

int message_props_decode(struct message *m, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;

	while (p < end) {
		uint8_t kind = *p++;
		const char *a, *b = NULL;
		size_t al, bl = 0;

		if (!(a = get_str(&p, end, &al)))
			return -1;
		if (kind == 'p' && !(b = get_str(&p, end, &bl)))
			return -1;
		if (kind == 'c') {
			if (message_set_content_type(m, a, al) < 0)
				return -1;
		} else if (kind == 'p') {
			if (message_add_prop(m, a, al, b, bl) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}
