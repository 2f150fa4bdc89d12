/* stomp_codec: see stomp_codec.h for the contract. The parser is a small
 * state machine over offsets from the start of the frame, so that a caller
 * which appends bytes and calls again resumes where the scan stopped. */
#include "stomp_codec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_START = 0, ST_COMMAND, ST_HEADERS, ST_BODY, ST_DONE, ST_FAILED };

/* Longest command line: "UNSUBSCRIBE\r". Anything longer without an EOL is
 * not STOMP, and we say so without waiting for max_header_size bytes. */
#define CMD_LINE_MAX 12

static const char *const cmd_names[] = {
	[STOMP_HEARTBEAT] = "",
	[STOMP_CONNECT] = "CONNECT", [STOMP_STOMP] = "STOMP", [STOMP_SEND] = "SEND",
	[STOMP_SUBSCRIBE] = "SUBSCRIBE", [STOMP_UNSUBSCRIBE] = "UNSUBSCRIBE",
	[STOMP_ACK] = "ACK", [STOMP_NACK] = "NACK", [STOMP_BEGIN] = "BEGIN",
	[STOMP_COMMIT] = "COMMIT", [STOMP_ABORT] = "ABORT", [STOMP_DISCONNECT] = "DISCONNECT",
	[STOMP_CONNECTED] = "CONNECTED", [STOMP_MESSAGE] = "MESSAGE",
	[STOMP_RECEIPT] = "RECEIPT", [STOMP_ERROR] = "ERROR",
};
#define NCMDS (sizeof(cmd_names) / sizeof(cmd_names[0]))

const char *stomp_command_name(enum stomp_command cmd)
{
	return (size_t)cmd < NCMDS ? cmd_names[cmd] : "";
}

const char *stomp_version_name(enum stomp_version v)
{
	switch (v) {
	case STOMP_V10: return "1.0";
	case STOMP_V11: return "1.1";
	default: return "1.2";
	}
}

const char *stomp_strerror(int err)
{
	switch (err) {
	case STOMP_E_BAD_COMMAND: return "malformed frame (unknown command)";
	case STOMP_E_NO_COLON: return "malformed frame (header line without a colon)";
	case STOMP_E_EMPTY_NAME: return "malformed frame (empty header name)";
	case STOMP_E_BAD_ESCAPE: return "malformed frame (undefined escape sequence in a header)";
	case STOMP_E_NUL_IN_HEADER: return "malformed frame (NUL octet in the headers)";
	case STOMP_E_HEADER_TOO_LONG: return "header line too long";
	case STOMP_E_TOO_MANY_HEADERS: return "too many headers";
	case STOMP_E_BAD_CONTENT_LENGTH: return "malformed frame (content-length is not a number)";
	case STOMP_E_BODY_TOO_LARGE: return "frame body too large";
	case STOMP_E_BODY_NOT_TERMINATED: return "malformed frame (body not followed by NUL)";
	case STOMP_E_NOMEM: return "out of memory";
	default: return "malformed frame";
	}
}

/* ---- buffers ---- */

int stomp_buf_reserve(struct stomp_buf *b, size_t extra)
{
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -1;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

int stomp_buf_append(struct stomp_buf *b, const void *p, size_t n)
{
	if (stomp_buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void stomp_buf_free(struct stomp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---- frame access ---- */

const struct stomp_header *stomp_frame_header(const struct stomp_frame *f, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < f->nheaders; i++)
		if (f->headers[i].name_len == n && memcmp(f->headers[i].name, name, n) == 0)
			return &f->headers[i];
	return NULL;
}

const char *stomp_frame_get(const struct stomp_frame *f, const char *name)
{
	const struct stomp_header *h = stomp_frame_header(f, name);
	return h ? h->value : NULL;
}

/* ---- parser ---- */

void stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->lim = *lim;
	p->version = STOMP_V10;
	p->state = ST_START;
}

void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v)
{
	p->version = v;
}

void stomp_parser_free(struct stomp_parser *p)
{
	stomp_buf_free(&p->hbuf);
	free(p->hoff);
	free(p->hdrs);
	p->hoff = NULL;
	p->hdrs = NULL;
	p->nhdr = p->hcap = 0;
}

static void parser_new_frame(struct stomp_parser *p)
{
	p->state = ST_START;
	p->pos = 0;
	p->line_start = 0;
	p->cmd = STOMP_HEARTBEAT;
	p->has_length = false;
	p->content_length = 0;
	p->body_start = 0;
	p->hbuf.len = 0;
	p->nhdr = 0;
}

static int fail(struct stomp_parser *p, int err)
{
	p->state = ST_FAILED;
	p->err = err; /* every later call answers the same */
	return err;
}

/* Leading EOLs: heart-beats, or the optional EOLs after a frame's NUL. */
static int parse_eols(const uint8_t *in, size_t len, struct stomp_frame *out)
{
	size_t i = 0;
	for (;;) {
		if (i < len && in[i] == '\n')
			i += 1;
		else if (i + 1 < len && in[i] == '\r' && in[i + 1] == '\n')
			i += 2;
		else
			break;
	}
	if (i == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	out->cmd = STOMP_HEARTBEAT;
	return (int)(i > INT32_MAX ? INT32_MAX : i);
}

/* Find '\n' in in[from, len); a NUL first is reported as -2, none as -1. */
static long find_eol(const uint8_t *in, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		if (in[i] == '\n')
			return (long)i;
		if (in[i] == 0)
			return -2;
	}
	return -1;
}

static int parse_command(struct stomp_parser *p, const uint8_t *in, size_t len)
{
	/* scan no further than the longest line allowed, so that the verdict
	 * does not depend on how the input was cut */
	size_t end = len < CMD_LINE_MAX + 1 ? len : CMD_LINE_MAX + 1;
	long eol = find_eol(in, p->pos, end);
	if (eol == -2)
		return fail(p, STOMP_E_BAD_COMMAND);
	if (eol < 0) {
		if (len > CMD_LINE_MAX)
			return fail(p, STOMP_E_BAD_COMMAND);
		p->pos = len;
		return 0;
	}
	size_t n = (size_t)eol;
	if (n > 0 && in[n - 1] == '\r')
		n--;
	for (size_t c = STOMP_CONNECT; c < NCMDS; c++) {
		if (strlen(cmd_names[c]) == n && memcmp(cmd_names[c], in, n) == 0) {
			p->cmd = (enum stomp_command)c;
			p->pos = p->line_start = (size_t)eol + 1;
			p->state = ST_HEADERS;
			return 0;
		}
	}
	return fail(p, STOMP_E_BAD_COMMAND);
}

/* CONNECT and CONNECTED are never escaped (a 1.0 server must read them), nor
 * is anything before a version with escapes has been agreed. */
static bool escapes_apply(enum stomp_version v, enum stomp_command cmd)
{
	return v != STOMP_V10 && cmd != STOMP_CONNECT && cmd != STOMP_STOMP &&
	       cmd != STOMP_CONNECTED;
}

/* Append src to hbuf, unescaped when esc; then a NUL. */
static int store_text(struct stomp_buf *b, const uint8_t *src, size_t n, bool esc)
{
	if (stomp_buf_reserve(b, n + 1) < 0)
		return STOMP_E_NOMEM;
	uint8_t *d = b->data + b->len;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = src[i];
		if (esc && ch == '\\') {
			if (i + 1 >= n)
				return STOMP_E_BAD_ESCAPE;
			switch (src[++i]) {
			case 'n': ch = '\n'; break;
			case 'r': ch = '\r'; break;
			case 'c': ch = ':'; break;
			case '\\': ch = '\\'; break;
			default: return STOMP_E_BAD_ESCAPE;
			}
		}
		d[o++] = ch;
	}
	d[o] = 0;
	b->len += o + 1;
	return (int)o;
}

/* Decimal, digits only. Values above max_body are reported as too large
 * rather than malformed: they are numbers, just not acceptable ones. */
static int parse_length(const char *v, size_t n, size_t max, size_t *out)
{
	if (n == 0)
		return STOMP_E_BAD_CONTENT_LENGTH;
	size_t x = 0;
	bool big = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return STOMP_E_BAD_CONTENT_LENGTH;
		if (!big && x > (SIZE_MAX - 9) / 10)
			big = true;
		if (!big)
			x = x * 10 + (size_t)(v[i] - '0');
	}
	if (big || x > max)
		return STOMP_E_BODY_TOO_LARGE;
	*out = x;
	return 0;
}

static int header_line(struct stomp_parser *p, const uint8_t *line, size_t n)
{
	if (p->nhdr >= p->lim.max_headers)
		return STOMP_E_TOO_MANY_HEADERS;
	const uint8_t *colon = memchr(line, ':', n);
	if (!colon)
		return STOMP_E_NO_COLON;
	if (colon == line)
		return STOMP_E_EMPTY_NAME;
	if (p->nhdr == p->hcap) {
		size_t cap = p->hcap ? p->hcap * 2 : 8;
		struct stomp_hoff *o = realloc(p->hoff, cap * sizeof(*o));
		if (!o)
			return STOMP_E_NOMEM;
		p->hoff = o;
		struct stomp_header *h = realloc(p->hdrs, cap * sizeof(*h));
		if (!h)
			return STOMP_E_NOMEM;
		p->hdrs = h;
		p->hcap = cap;
	}
	bool esc = escapes_apply(p->version, p->cmd);
	struct stomp_hoff *ho = &p->hoff[p->nhdr];
	size_t nlen = (size_t)(colon - line);
	ho->name = p->hbuf.len;
	int r = store_text(&p->hbuf, line, nlen, esc);
	if (r < 0)
		return r;
	ho->name_len = (size_t)r;
	ho->value = p->hbuf.len;
	r = store_text(&p->hbuf, colon + 1, n - nlen - 1, esc);
	if (r < 0)
		return r;
	ho->value_len = (size_t)r;
	p->nhdr++;

	const char *name = (const char *)p->hbuf.data + ho->name;
	if (!p->has_length && ho->name_len == 14 && memcmp(name, "content-length", 14) == 0) {
		r = parse_length((const char *)p->hbuf.data + ho->value, ho->value_len,
				 p->lim.max_body, &p->content_length);
		if (r < 0)
			return r;
		p->has_length = true;
	}
	return 0;
}

static int parse_headers(struct stomp_parser *p, const uint8_t *in, size_t len)
{
	for (;;) {
		/* +1: the line may still end in "\r\n"; +1 for the '\n' itself */
		size_t room = p->lim.max_header_size + 2;
		size_t end = len - p->line_start > room ? p->line_start + room : len;
		long eol = find_eol(in, p->pos, end);
		if (eol == -2)
			return fail(p, STOMP_E_NUL_IN_HEADER);
		if (eol < 0) {
			if (len - p->line_start >= room)
				return fail(p, STOMP_E_HEADER_TOO_LONG);
			p->pos = len;
			return 0;
		}
		size_t n = (size_t)eol - p->line_start;
		if (n > 0 && in[p->line_start + n - 1] == '\r')
			n--;
		if (n == 0) {
			p->body_start = p->pos = (size_t)eol + 1;
			p->state = ST_BODY;
			return 0;
		}
		if (n > p->lim.max_header_size)
			return fail(p, STOMP_E_HEADER_TOO_LONG);
		int r = header_line(p, in + p->line_start, n);
		if (r < 0)
			return fail(p, r);
		p->pos = p->line_start = (size_t)eol + 1;
	}
}

static void finish_frame(struct stomp_parser *p, const uint8_t *in, size_t body_len,
			 struct stomp_frame *out)
{
	for (size_t i = 0; i < p->nhdr; i++) {
		p->hdrs[i].name = (const char *)p->hbuf.data + p->hoff[i].name;
		p->hdrs[i].name_len = p->hoff[i].name_len;
		p->hdrs[i].value = (const char *)p->hbuf.data + p->hoff[i].value;
		p->hdrs[i].value_len = p->hoff[i].value_len;
	}
	out->cmd = p->cmd;
	out->headers = p->hdrs;
	out->nheaders = p->nhdr;
	out->body = in + p->body_start;
	out->body_len = body_len;
	p->state = ST_DONE;
}

/* Returns consumed bytes, 0, or an error. */
static long parse_body(struct stomp_parser *p, const uint8_t *in, size_t len,
		       struct stomp_frame *out)
{
	size_t avail = len - p->body_start;
	if (p->has_length) {
		if (avail <= p->content_length)
			return 0;
		if (in[p->body_start + p->content_length] != 0)
			return fail(p, STOMP_E_BODY_NOT_TERMINATED);
		finish_frame(p, in, p->content_length, out);
		return (long)(p->body_start + p->content_length + 1);
	}
	size_t limit = p->body_start + p->lim.max_body + 1; /* room for the NUL */
	size_t end = len < limit ? len : limit;
	const uint8_t *nul = p->pos < end ? memchr(in + p->pos, 0, end - p->pos) : NULL;
	if (!nul) {
		if (avail > p->lim.max_body)
			return fail(p, STOMP_E_BODY_TOO_LARGE);
		p->pos = len;
		return 0;
	}
	size_t body_len = (size_t)(nul - in) - p->body_start;
	finish_frame(p, in, body_len, out);
	return (long)(p->body_start + body_len + 1);
}

int stomp_parse(struct stomp_parser *p, const uint8_t *in, size_t len, struct stomp_frame *out)
{
	if (p->state == ST_FAILED)
		return p->err;
	if (p->state == ST_DONE)
		parser_new_frame(p);
	if (p->state == ST_START) {
		if (len == 0)
			return 0;
		int n = parse_eols(in, len, out);
		if (n > 0 || (len == 1 && in[0] == '\r'))   /* heart-beats, or half a "\r\n" */
			return n;
		p->state = ST_COMMAND;
	}
	if (p->state == ST_COMMAND) {
		int r = parse_command(p, in, len);
		if (r < 0 || p->state == ST_COMMAND)
			return r;
	}
	if (p->state == ST_HEADERS) {
		int r = parse_headers(p, in, len);
		if (r < 0 || p->state == ST_HEADERS)
			return r;
	}
	long r = parse_body(p, in, len, out);
	if (r > INT32_MAX) /* bounded by max_body; never with sane limits */
		return fail(p, STOMP_E_BODY_TOO_LARGE);
	return (int)r;
}

/* ---- encoder ---- */

int stomp_encode_command(struct stomp_buf *b, enum stomp_command cmd)
{
	const char *name = stomp_command_name(cmd);
	size_t n = strlen(name);
	if (stomp_buf_reserve(b, n + 1) < 0)
		return -1;
	memcpy(b->data + b->len, name, n);
	b->data[b->len + n] = '\n';
	b->len += n + 1;
	return 0;
}

/* The caller reserved twice the length: an escape doubles a byte. */
static void put_text(struct stomp_buf *b, enum stomp_version v, bool esc, bool is_name,
		     const char *s, size_t n)
{
	uint8_t *d = b->data + b->len;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (esc) {
			const char *rep = NULL;
			switch (ch) {
			case '\\': rep = "\\\\"; break;
			case '\n': rep = "\\n"; break;
			case ':': rep = "\\c"; break;
			case '\r': rep = v >= STOMP_V12 ? "\\r" : NULL; break;
			default: break;
			}
			if (rep) {
				d[o++] = (uint8_t)rep[0];
				d[o++] = (uint8_t)rep[1];
				continue;
			}
		} else {
			/* no escapes to carry an EOL: keep the frame's shape */
			if (ch == '\n' || ch == '\r')
				ch = ' ';
			else if (is_name && ch == ':')
				ch = '_';
		}
		d[o++] = (uint8_t)ch;
	}
	b->len += o;
}

int stomp_encode_header(struct stomp_buf *b, enum stomp_version v, enum stomp_command cmd,
			const char *name, size_t name_len, const char *value, size_t value_len)
{
	if (name_len > SIZE_MAX / 4 || value_len > SIZE_MAX / 4)
		return -1;
	if (stomp_buf_reserve(b, 2 * name_len + 2 * value_len + 2) < 0)
		return -1;
	bool esc = escapes_apply(v, cmd);
	put_text(b, v, esc, true, name, name_len);
	b->data[b->len++] = ':';
	put_text(b, v, esc, false, value, value_len);
	b->data[b->len++] = '\n';
	return 0;
}

int stomp_encode_header_str(struct stomp_buf *b, enum stomp_version v, enum stomp_command cmd,
			    const char *name, const char *value)
{
	return stomp_encode_header(b, v, cmd, name, strlen(name), value, strlen(value));
}

int stomp_encode_body(struct stomp_buf *b, const void *body, size_t len)
{
	if (len > SIZE_MAX - 2 || stomp_buf_reserve(b, len + 2) < 0)
		return -1;
	b->data[b->len++] = '\n';
	if (len)
		memcpy(b->data + b->len, body, len);
	b->len += len;
	b->data[b->len++] = 0;
	return 0;
}

int stomp_encode_connected(struct stomp_buf *b, enum stomp_version v, const char *session,
			   const char *server, uint32_t hb_send_ms, uint32_t hb_recv_ms)
{
	const enum stomp_command C = STOMP_CONNECTED;
	if (stomp_encode_command(b, C) < 0)
		return -1;
	if (v >= STOMP_V11 && stomp_encode_header_str(b, v, C, "version", stomp_version_name(v)) < 0)
		return -1;
	if (stomp_encode_header_str(b, v, C, "server", server) < 0 ||
	    stomp_encode_header_str(b, v, C, "session", session) < 0)
		return -1;
	if (v >= STOMP_V11) {
		char hb[32];
		int n = snprintf(hb, sizeof(hb), "%u,%u", (unsigned)hb_send_ms, (unsigned)hb_recv_ms);
		if (stomp_encode_header(b, v, C, "heart-beat", 10, hb, (size_t)n) < 0)
			return -1;
	}
	return stomp_encode_body(b, NULL, 0);
}

int stomp_encode_receipt(struct stomp_buf *b, enum stomp_version v, const char *receipt_id)
{
	if (stomp_encode_command(b, STOMP_RECEIPT) < 0 ||
	    stomp_encode_header_str(b, v, STOMP_RECEIPT, "receipt-id", receipt_id) < 0)
		return -1;
	return stomp_encode_body(b, NULL, 0);
}

int stomp_encode_error(struct stomp_buf *b, enum stomp_version v, const char *message,
		       const char *receipt_id, const char *detail)
{
	const enum stomp_command C = STOMP_ERROR;
	if (stomp_encode_command(b, C) < 0 ||
	    stomp_encode_header_str(b, v, C, "message", message) < 0)
		return -1;
	if (receipt_id && stomp_encode_header_str(b, v, C, "receipt-id", receipt_id) < 0)
		return -1;
	size_t dlen = detail ? strlen(detail) : 0;
	if (dlen) {
		char cl[32];
		int n = snprintf(cl, sizeof(cl), "%zu", dlen);
		if (stomp_encode_header_str(b, v, C, "content-type", "text/plain") < 0 ||
		    stomp_encode_header(b, v, C, "content-length", 14, cl, (size_t)n) < 0)
			return -1;
	}
	return stomp_encode_body(b, detail, dlen);
}
