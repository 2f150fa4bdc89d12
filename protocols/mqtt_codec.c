/* mqtt_codec: MQTT 3.1 / 3.1.1 packets (OASIS MQTT 3.1.1, section 2 and 3).
 *
 * Parsing is stateless: each call re-reads the fixed header (at most five
 * bytes), so a caller that buffers a split packet pays nothing for asking
 * again, and no state can be left inconsistent by a cut at any byte. */
#include <string.h>
#include "mqtt_codec.h"
#include "utf8.h"

/* ---- reading ---- */

struct rd {
	const uint8_t *p;
	size_t left;
};

static int rd_u8(struct rd *r, uint8_t *v)
{
	if (r->left < 1)
		return MQTT_ERR_MALFORMED;
	*v = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

static int rd_u16(struct rd *r, uint16_t *v)
{
	if (r->left < 2)
		return MQTT_ERR_MALFORMED;
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return 0;
}

/* Two-byte length, then that many bytes (binary data). */
static int rd_bin(struct rd *r, struct mqtt_str *s)
{
	uint16_t len;

	if (rd_u16(r, &len) < 0 || r->left < len)
		return MQTT_ERR_MALFORMED;
	s->p = r->p;
	s->len = len;
	r->p += len;
	r->left -= len;
	return 0;
}

/* MQTT-1.5.3-1/-2: well-formed UTF-8 without surrogates, and no U+0000. */
static int str_ok(const struct mqtt_str *s)
{
	if (!utf8_valid(s->p, s->len) || memchr(s->p, 0, s->len))
		return MQTT_ERR_UTF8;
	return 0;
}

static int rd_utf8(struct rd *r, struct mqtt_str *s)
{
	int e = rd_bin(r, s);

	return e < 0 ? e : str_ok(s);
}

/* MQTT-4.7.3-1 and MQTT-3.3.2-2: a topic name is not empty and holds no
 * wildcard. */
static int topic_name_ok(const struct mqtt_str *t)
{
	if (t->len == 0 || memchr(t->p, '+', t->len) || memchr(t->p, '#', t->len))
		return MQTT_ERR_TOPIC;
	return 0;
}

static int rd_id(struct rd *r, uint16_t *id)
{
	if (rd_u16(r, id) < 0)
		return MQTT_ERR_MALFORMED;
	return *id ? 0 : MQTT_ERR_PACKET_ID;   /* MQTT-2.3.1-1 */
}

/* ---- fixed header ---- */

/* Table 2.2 of 3.1.1: the flags each packet type must carry. 3.1 clients
 * may set DUP on a retried PUBREL, SUBSCRIBE or UNSUBSCRIBE. */
static int check_first_byte(uint8_t level, uint8_t b)
{
	uint8_t type = b >> 4, flags = b & 0x0F;

	switch (type) {
	case 0:
		return MQTT_ERR_TYPE;
	case MQTT_AUTH:
		if (level < MQTT_LEVEL_5)
			return MQTT_ERR_TYPE;
		return flags ? MQTT_ERR_FLAGS : 0;
	case MQTT_PUBLISH:
		if ((flags & 0x6) == 0x6)
			return MQTT_ERR_QOS;            /* MQTT-3.3.1-4 */
		if ((flags & 0x8) && !(flags & 0x6))
			return MQTT_ERR_FLAGS;          /* MQTT-3.3.1-2: no DUP at QoS 0 */
		return 0;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		if (level == MQTT_LEVEL_31)
			flags &= 0x7;
		return flags == 0x2 ? 0 : MQTT_ERR_FLAGS;
	default:
		return flags ? MQTT_ERR_FLAGS : 0;
	}
}

int mqtt_parse_header(const struct mqtt_parse_opts *o, const uint8_t *p, size_t n,
		      size_t *total)
{
	size_t v = 0, mul = 1, i;
	int e;

	if (n < 1)
		return 0;
	e = check_first_byte(o->level, p[0]);
	if (e < 0)
		return e;
	for (i = 1;; i++) {
		if (i >= n)
			return 0;
		v += (size_t)(p[i] & 0x7F) * mul;
		if (!(p[i] & 0x80))
			break;
		if (i == 4)
			return MQTT_ERR_REMLEN;        /* a fifth length byte */
		mul *= 128;
	}
	*total = i + 1 + v;
	if (o->max_packet && *total > o->max_packet)
		return MQTT_ERR_TOO_LARGE;
	return (int)(i + 1);
}

/* ---- packet bodies ---- */

/* Protocol name and level: "MQTT" 4 (3.1.1) or "MQIsdp" 3 (3.1). A known
 * name with another level gets CONNACK 0x01 (MQTT-3.1.2-2); an unknown name
 * is not MQTT at all (MQTT-3.1.2-1). */
static int parse_protocol(struct rd *r, struct mqtt_connect *c)
{
	if (rd_bin(r, &c->protocol_name) < 0 || rd_u8(r, &c->level) < 0)
		return MQTT_ERR_MALFORMED;
	if (c->protocol_name.len == 4 && !memcmp(c->protocol_name.p, "MQTT", 4))
		return c->level == MQTT_LEVEL_311 ? 0 : MQTT_ERR_LEVEL;
	if (c->protocol_name.len == 6 && !memcmp(c->protocol_name.p, "MQIsdp", 6))
		return c->level == MQTT_LEVEL_31 ? 0 : MQTT_ERR_LEVEL;
	return MQTT_ERR_PROTOCOL_NAME;
}

/* Connect flags, MQTT-3.1.2-3 and -11 to -22. */
static int parse_connect_flags(uint8_t f, struct mqtt_connect *c)
{
	if (f & 0x01)
		return MQTT_ERR_CONNECT_FLAGS;
	c->clean = f & 0x02;
	c->will = f & 0x04;
	c->will_qos = (f >> 3) & 0x3;
	c->will_retain = f & 0x20;
	c->has_password = f & 0x40;
	c->has_username = f & 0x80;
	if (c->will_qos == 3)
		return MQTT_ERR_QOS;
	if (!c->will && (c->will_qos || c->will_retain))
		return MQTT_ERR_CONNECT_FLAGS;
	if (c->has_password && !c->has_username)
		return MQTT_ERR_CONNECT_FLAGS;
	return 0;
}

static int parse_connect(struct rd *r, struct mqtt_packet *pk)
{
	struct mqtt_connect *c = &pk->u.connect;
	uint8_t flags;
	int e;

	if ((e = parse_protocol(r, c)) < 0)
		return e;
	pk->level = c->level;
	if (rd_u8(r, &flags) < 0 || rd_u16(r, &c->keepalive) < 0)
		return MQTT_ERR_MALFORMED;
	if ((e = parse_connect_flags(flags, c)) < 0)
		return e;
	if ((e = rd_utf8(r, &c->client_id)) < 0)
		return e;
	if (c->will) {
		if ((e = rd_utf8(r, &c->will_topic)) < 0 || (e = topic_name_ok(&c->will_topic)) < 0)
			return e;
		if ((e = rd_bin(r, &c->will_payload)) < 0)
			return e;
	}
	if (c->has_username && (e = rd_utf8(r, &c->username)) < 0)
		return e;
	if (c->has_password && (e = rd_bin(r, &c->password)) < 0)
		return e;
	return 0;
}

static int parse_connack(struct rd *r, struct mqtt_packet *pk)
{
	uint8_t f;

	if (r->left != 2)
		return MQTT_ERR_MALFORMED;
	rd_u8(r, &f);
	rd_u8(r, &pk->u.connack.code);
	if (f & 0xFE)
		return MQTT_ERR_RESERVED;           /* MQTT-3.2.2 */
	pk->u.connack.session_present = f & 1;
	return 0;
}

static int parse_publish(struct rd *r, struct mqtt_packet *pk)
{
	struct mqtt_publish *pub = &pk->u.publish;
	int e;

	pub->dup = pk->flags & 0x8;
	pub->qos = (pk->flags >> 1) & 0x3;
	pub->retain = pk->flags & 0x1;
	if ((e = rd_utf8(r, &pub->topic)) < 0 || (e = topic_name_ok(&pub->topic)) < 0)
		return e;
	if (pub->qos && (e = rd_id(r, &pub->id)) < 0)
		return e;
	pk->id = pub->id;
	pub->payload.p = r->p;
	pub->payload.len = r->left;
	r->p += r->left;
	r->left = 0;
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: just a packet identifier. */
static int parse_id_only(struct rd *r, struct mqtt_packet *pk)
{
	if (r->left != 2)
		return MQTT_ERR_MALFORMED;
	return rd_id(r, &pk->id);
}

/* SUBSCRIBE (with_qos) and UNSUBSCRIBE lists; MQTT-3.8.3-3, -3.8.3-4,
 * -3.10.3-2. Filter syntax is the session's to judge (SUBACK 0x80). */
static int parse_topic_list(struct rd *r, struct mqtt_packet *pk, bool with_qos)
{
	struct mqtt_topic_list *l = &pk->u.topics;
	struct mqtt_str f;
	uint8_t q;
	int e;

	if ((e = rd_id(r, &pk->id)) < 0)
		return e;
	l->p = r->p;
	l->len = r->left;
	l->count = 0;
	if (r->left == 0)
		return MQTT_ERR_NO_TOPICS;
	while (r->left) {
		if ((e = rd_utf8(r, &f)) < 0)
			return e;
		if (with_qos) {
			if (rd_u8(r, &q) < 0)
				return MQTT_ERR_MALFORMED;
			if (q & 0xFC)
				return MQTT_ERR_RESERVED;
			if (q == 3)
				return MQTT_ERR_QOS;
		}
		l->count++;
	}
	return 0;
}

static int parse_suback(struct rd *r, struct mqtt_packet *pk)
{
	size_t i;
	int e;

	if ((e = rd_id(r, &pk->id)) < 0)
		return e;
	if (r->left == 0)
		return MQTT_ERR_NO_TOPICS;
	for (i = 0; i < r->left; i++)
		if (r->p[i] > 2 && r->p[i] != MQTT_SUBACK_FAILURE)
			return MQTT_ERR_RESERVED;
	pk->u.suback_codes.p = r->p;
	pk->u.suback_codes.len = r->left;
	r->p += r->left;
	r->left = 0;
	return 0;
}

static int parse_body(struct rd *r, struct mqtt_packet *pk)
{
	switch (pk->type) {
	case MQTT_CONNECT:
		return parse_connect(r, pk);
	case MQTT_CONNACK:
		return parse_connack(r, pk);
	case MQTT_PUBLISH:
		return parse_publish(r, pk);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		return parse_id_only(r, pk);
	case MQTT_SUBSCRIBE:
		return parse_topic_list(r, pk, true);
	case MQTT_UNSUBSCRIBE:
		return parse_topic_list(r, pk, false);
	case MQTT_SUBACK:
		return parse_suback(r, pk);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
	case MQTT_DISCONNECT:
		return r->left ? MQTT_ERR_MALFORMED : 0;
	default:
		return MQTT_ERR_TYPE;
	}
}

int mqtt_parse(const struct mqtt_parse_opts *o, const uint8_t *p, size_t n,
	       struct mqtt_packet *out)
{
	size_t total;
	struct rd r;
	int hl = mqtt_parse_header(o, p, n, &total), e;

	if (hl <= 0)
		return hl;
	if (n < total)
		return 0;
	memset(out, 0, sizeof(*out));
	out->type = p[0] >> 4;
	out->flags = p[0] & 0x0F;
	out->level = o->level;
	out->remlen = total - (size_t)hl;
	out->len = total;
	/* 5.0 bodies carry properties and reason codes: until they are
	 * written, a 5.0 stream ends at its CONNECT (answered with 0x01). */
	if (o->level > MQTT_LEVEL_311 && out->type != MQTT_CONNECT)
		return MQTT_ERR_LEVEL;
	r.p = p + hl;
	r.left = out->remlen;
	if ((e = parse_body(&r, out)) < 0)
		return e;
	if (r.left)
		return MQTT_ERR_MALFORMED;         /* bytes past the last field */
	return (int)total;
}

void mqtt_topics_begin(const struct mqtt_packet *pk, struct mqtt_topic_iter *it)
{
	it->p = pk->u.topics.p;
	it->left = pk->u.topics.len;
	it->with_qos = pk->type == MQTT_SUBSCRIBE;
}

bool mqtt_topics_next(struct mqtt_topic_iter *it, struct mqtt_str *filter, uint8_t *qos)
{
	struct rd r = {it->p, it->left};
	uint8_t q = 0;

	if (rd_bin(&r, filter) < 0)
		return false;
	if (it->with_qos && rd_u8(&r, &q) < 0)
		return false;
	if (qos)
		*qos = q & 0x3;
	it->p = r.p;
	it->left = r.left;
	return true;
}

const char *mqtt_strerror(int err)
{
	switch (err) {
	case MQTT_ERR_MALFORMED: return "malformed packet";
	case MQTT_ERR_REMLEN: return "malformed remaining length";
	case MQTT_ERR_TYPE: return "reserved packet type";
	case MQTT_ERR_FLAGS: return "bad fixed header flags";
	case MQTT_ERR_TOO_LARGE: return "packet too large";
	case MQTT_ERR_UTF8: return "invalid UTF-8 string";
	case MQTT_ERR_PACKET_ID: return "packet identifier 0";
	case MQTT_ERR_TOPIC: return "invalid topic name";
	case MQTT_ERR_QOS: return "invalid QoS";
	case MQTT_ERR_PROTOCOL_NAME: return "unknown protocol name";
	case MQTT_ERR_LEVEL: return "unsupported protocol level";
	case MQTT_ERR_CONNECT_FLAGS: return "bad CONNECT flags";
	case MQTT_ERR_NO_TOPICS: return "no topic filter";
	case MQTT_ERR_RESERVED: return "reserved bits set";
	default: return "unknown error";
	}
}

const char *mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
		"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
		"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE",
		"UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};

	return type < 16 ? names[type] : "?";
}

/* ---- writing ---- */

static size_t remlen_size(size_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Size of a packet with remaining length rem, 0 when it cannot exist. */
static size_t packet_size(size_t rem)
{
	return rem > MQTT_MAX_REMLEN ? 0 : 1 + remlen_size(rem) + rem;
}

static uint8_t *put_header(uint8_t *o, uint8_t first, size_t rem)
{
	*o++ = first;
	do {
		uint8_t b = rem & 0x7F;

		rem >>= 7;
		*o++ = rem ? (b | 0x80) : b;
	} while (rem);
	return o;
}

static uint8_t *put_u16(uint8_t *o, uint16_t v)
{
	*o++ = (uint8_t)(v >> 8);
	*o++ = (uint8_t)v;
	return o;
}

static uint8_t *put_str(uint8_t *o, const struct mqtt_str *s)
{
	o = put_u16(o, (uint16_t)s->len);
	if (s->len)
		memcpy(o, s->p, s->len);
	return o + s->len;
}

/* Levels the encoders speak; 5.0 joins with its properties. */
static bool level_ok(uint8_t level)
{
	return level == MQTT_LEVEL_31 || level == MQTT_LEVEL_311;
}

size_t mqtt_publish_size(uint8_t level, size_t topic_len, size_t payload_len, uint8_t qos)
{
	if (!level_ok(level) || topic_len > 0xFFFF || payload_len > MQTT_MAX_REMLEN || qos > 2)
		return 0;
	return packet_size(2 + topic_len + (qos ? 2 : 0) + payload_len);
}

size_t mqtt_encode_publish(uint8_t *out, size_t cap, uint8_t level,
			   const struct mqtt_publish *pub)
{
	size_t size = mqtt_publish_size(level, pub->topic.len, pub->payload.len, pub->qos);
	size_t rem = 2 + pub->topic.len + (pub->qos ? 2 : 0) + pub->payload.len;
	uint8_t first, *o;

	if (!size || size > cap || (pub->qos && !pub->id) || (pub->dup && !pub->qos))
		return 0;
	first = (uint8_t)(MQTT_PUBLISH << 4 | (pub->dup ? 0x8 : 0) | pub->qos << 1 |
			  (pub->retain ? 1 : 0));
	o = put_header(out, first, rem);
	o = put_str(o, &pub->topic);
	if (pub->qos)
		o = put_u16(o, pub->id);
	if (pub->payload.len)
		memcpy(o, pub->payload.p, pub->payload.len);
	return size;
}

size_t mqtt_encode_connack(uint8_t *out, size_t cap, uint8_t level,
			   bool session_present, uint8_t code)
{
	uint8_t *o;

	if (!level_ok(level) || cap < 4)
		return 0;
	o = put_header(out, MQTT_CONNACK << 4, 2);
	*o++ = (level >= MQTT_LEVEL_311 && session_present) ? 1 : 0;
	*o = code;
	return 4;
}

size_t mqtt_encode_ack(uint8_t *out, size_t cap, uint8_t level, uint8_t type, uint16_t id)
{
	uint8_t first = (uint8_t)(type << 4);

	if (!level_ok(level) || cap < 4 || !id)
		return 0;
	switch (type) {
	case MQTT_PUBREL:
		first |= 0x2;
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
	case MQTT_UNSUBACK:
		break;
	default:
		return 0;
	}
	put_u16(put_header(out, first, 2), id);
	return 4;
}

size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			  const uint8_t *codes, size_t n)
{
	size_t size = n > MQTT_MAX_REMLEN ? 0 : packet_size(2 + n), i;
	uint8_t *o;

	if (!level_ok(level) || !n || !id || !size || size > cap)
		return 0;
	for (i = 0; i < n; i++)
		if (codes[i] > 2 && codes[i] != MQTT_SUBACK_FAILURE)
			return 0;
	o = put_u16(put_header(out, MQTT_SUBACK << 4, 2 + n), id);
	memcpy(o, codes, n);
	return size;
}

size_t mqtt_encode_empty(uint8_t *out, size_t cap, uint8_t level, uint8_t type)
{
	if (!level_ok(level) || cap < 2)
		return 0;
	if (type != MQTT_PINGREQ && type != MQTT_PINGRESP && type != MQTT_DISCONNECT)
		return 0;
	put_header(out, (uint8_t)(type << 4), 0);
	return 2;
}

static const struct mqtt_str name_311 = {(const uint8_t *)"MQTT", 4};
static const struct mqtt_str name_31 = {(const uint8_t *)"MQIsdp", 6};

size_t mqtt_encode_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c)
{
	const struct mqtt_str *name = c->level == MQTT_LEVEL_31 ? &name_31 : &name_311;
	const struct mqtt_str *strs[5] = {&c->client_id};
	size_t rem = 2 + name->len + 4, size, i, ns = 1;
	uint8_t flags = 0, *o;

	if (!level_ok(c->level) || c->will_qos > 2 || (c->has_password && !c->has_username))
		return 0;
	if (c->will) {
		flags |= (uint8_t)(0x04 | c->will_qos << 3 | (c->will_retain ? 0x20 : 0));
		strs[ns++] = &c->will_topic;
		strs[ns++] = &c->will_payload;
	}
	if (c->has_username) {
		flags |= 0x80;
		strs[ns++] = &c->username;
	}
	if (c->has_password) {
		flags |= 0x40;
		strs[ns++] = &c->password;
	}
	if (c->clean)
		flags |= 0x02;
	for (i = 0; i < ns; i++) {
		if (strs[i]->len > 0xFFFF)
			return 0;
		rem += 2 + strs[i]->len;
	}
	size = packet_size(rem);
	if (!size || size > cap)
		return 0;
	o = put_str(put_header(out, MQTT_CONNECT << 4, rem), name);
	*o++ = c->level;
	*o++ = flags;
	o = put_u16(o, c->keepalive);
	for (i = 0; i < ns; i++)
		o = put_str(o, strs[i]);
	return size;
}

/* SUBSCRIBE (qos != NULL) and UNSUBSCRIBE share their layout. */
static size_t encode_topic_list(uint8_t *out, size_t cap, uint8_t level, uint8_t first,
				uint16_t id, const struct mqtt_str *filters,
				const uint8_t *qos, size_t n)
{
	size_t rem = 2, size, i;
	uint8_t *o;

	if (!level_ok(level) || !n || !id)
		return 0;
	for (i = 0; i < n; i++) {
		if (filters[i].len > 0xFFFF || (qos && qos[i] > 2))
			return 0;
		rem += 2 + filters[i].len + (qos ? 1 : 0);
		if (rem > MQTT_MAX_REMLEN)
			return 0;
	}
	size = packet_size(rem);
	if (!size || size > cap)
		return 0;
	o = put_u16(put_header(out, first, rem), id);
	for (i = 0; i < n; i++) {
		o = put_str(o, &filters[i]);
		if (qos)
			*o++ = qos[i];
	}
	return size;
}

size_t mqtt_encode_subscribe(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			     const struct mqtt_str *filters, const uint8_t *qos, size_t n)
{
	return encode_topic_list(out, cap, level, MQTT_SUBSCRIBE << 4 | 0x2, id, filters,
				 qos, n);
}

size_t mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			       const struct mqtt_str *filters, size_t n)
{
	return encode_topic_list(out, cap, level, MQTT_UNSUBSCRIBE << 4 | 0x2, id, filters,
				 NULL, n);
}
