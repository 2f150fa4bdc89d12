/* http_parse: HTTP/1.1 request head parser (RFC 9112 sections 2-5).
 *
 * Stateless: every call parses from buf[0]; a caller that gets 0 calls again
 * with more bytes. A head is a few hundred bytes and is parsed once or twice,
 * so re-parsing costs less than a resumable state machine would in code.
 * Each character is judged as soon as it is seen, so garbage (a TLS hello on
 * a plain port, a binary protocol) fails at its first byte rather than when
 * max_head bytes have piled up. What we refuse, and why:
 *  - obs-fold (a header line starting with SP/HTAB): RFC 9112 5.2 lets a
 *    server reject it, and accepting it is a known request-smuggling vector;
 *  - whitespace between a field name and its colon (RFC 9112 5.1: MUST reject);
 *  - control characters other than HTAB in values, and a CR not followed by
 *    LF anywhere (bare CR is a smuggling vector too);
 *  - empty lines before the request line: browsers never send them and a
 *    WebSocket endpoint gains nothing from the leniency. */
#include "http_parse.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Parser position; end is already clamped to max_head. */
struct cursor {
	const char *p;
	const char *end;
};

/* Result of a lexical step: OK, need more bytes, or malformed. */
enum { STEP_OK = 1, STEP_MORE = 0, STEP_BAD = HTTP_PARSE_MALFORMED };

/* tchar per RFC 9110 5.6.2. */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Characters of a field value: VCHAR, obs-text, SP, HTAB. */
static int is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Consumes a line end (CRLF or LF). */
static int eat_eol(struct cursor *c)
{
	if (c->p == c->end)
		return STEP_MORE;
	if (*c->p == '\n') {
		c->p++;
		return STEP_OK;
	}
	if (*c->p != '\r')
		return STEP_BAD;
	if (c->p + 1 == c->end)
		return STEP_MORE;
	if (c->p[1] != '\n')
		return STEP_BAD;
	c->p += 2;
	return STEP_OK;
}

/* Consumes one or more tchars followed by `delim` (not consumed into the
 * token). */
static int eat_token(struct cursor *c, char delim, const char **tok, size_t *len)
{
	const char *start = c->p;

	while (c->p < c->end && is_tchar((unsigned char)*c->p))
		c->p++;
	if (c->p == c->end)
		return STEP_MORE;
	if (c->p == start || *c->p != delim)
		return STEP_BAD;
	*tok = start;
	*len = (size_t)(c->p - start);
	c->p++;
	return STEP_OK;
}

/* request-target: visible ASCII only (no spaces, controls or raw 8-bit). */
static int eat_target(struct cursor *c, struct http_request *req)
{
	const char *start = c->p;

	while (c->p < c->end && *c->p > 0x20 && *c->p < 0x7F)
		c->p++;
	if (c->p == c->end)
		return STEP_MORE;
	if (c->p == start || *c->p != ' ')
		return STEP_BAD;
	req->target = start;
	req->target_len = (size_t)(c->p - start);
	c->p++;
	return STEP_OK;
}

/* "HTTP/1." DIGIT, checked byte by byte so that a wrong prefix fails early. */
static int eat_version(struct cursor *c, struct http_request *req)
{
	static const char prefix[] = "HTTP/1.";
	size_t n = sizeof prefix - 1;

	for (size_t i = 0; i < n; i++) {
		if (c->p + i == c->end)
			return STEP_MORE;
		if (c->p[i] != prefix[i])
			return STEP_BAD;
	}
	if (c->p + n == c->end)
		return STEP_MORE;
	if (c->p[n] < '0' || c->p[n] > '9')
		return STEP_BAD;
	req->minor_version = c->p[n] - '0';
	c->p += n + 1;
	return STEP_OK;
}

static int parse_request_line(struct cursor *c, struct http_request *req)
{
	int r;

	if ((r = eat_token(c, ' ', &req->method, &req->method_len)) != STEP_OK)
		return r;
	if ((r = eat_target(c, req)) != STEP_OK)
		return r;
	if ((r = eat_version(c, req)) != STEP_OK)
		return r;
	return eat_eol(c);
}

/* field-value up to the line end, with surrounding OWS trimmed. */
static int eat_value(struct cursor *c, struct http_header *h)
{
	const char *start, *last;
	int r;

	while (c->p < c->end && is_ows(*c->p))
		c->p++;
	start = c->p;
	while (c->p < c->end && is_value_char((unsigned char)*c->p))
		c->p++;
	last = c->p;
	while (last > start && is_ows(last[-1]))
		last--;
	if ((r = eat_eol(c)) != STEP_OK)
		return r;
	h->value = start;
	h->value_len = (size_t)(last - start);
	return STEP_OK;
}

static int parse_header_line(struct cursor *c, struct http_header *h)
{
	int r;

	/* A line starting with SP/HTAB is obs-fold (or junk before the first
	 * field): both rejected, see the top of the file. */
	if ((r = eat_token(c, ':', &h->name, &h->name_len)) != STEP_OK)
		return r;
	return eat_value(c, h);
}

/* Sets *done when the cursor is at the empty line ending the head (and
 * consumes it); leaves it 0 when a field line follows. */
static int at_head_end(struct cursor *c, int *done)
{
	*done = 0;
	if (c->p == c->end)
		return STEP_MORE;
	if (*c->p != '\r' && *c->p != '\n')
		return STEP_OK;
	*done = 1;
	return eat_eol(c);
}

static int parse_head(struct cursor *c, struct http_request *req)
{
	int r, done;

	if ((r = parse_request_line(c, req)) != STEP_OK)
		return r;
	for (;;) {
		if ((r = at_head_end(c, &done)) != STEP_OK || done)
			return r;
		if (req->num_headers == HTTP_MAX_HEADERS)
			return HTTP_PARSE_TOO_MANY_HEADERS;
		r = parse_header_line(c, &req->headers[req->num_headers]);
		if (r != STEP_OK)
			return r;
		req->num_headers++;
	}
}

int http_parse_request(const char *buf, size_t len, size_t max_head,
		       struct http_request *req)
{
	struct cursor c;
	int r;

	/* The return value must hold the head length. */
	if (max_head > INT_MAX)
		max_head = INT_MAX;
	if (len == 0)   /* buf may be NULL; nothing to look at yet */
		return max_head == 0 ? HTTP_PARSE_TOO_LARGE : 0;
	c.p = buf;
	c.end = buf + (len < max_head ? len : max_head);
	req->num_headers = 0;
	req->minor_version = 0;
	r = parse_head(&c, req);
	if (r == STEP_OK)
		return (int)(c.p - buf);
	/* Out of bytes with max_head already in hand: it cannot fit. */
	if (r == STEP_MORE && len >= max_head)
		return HTTP_PARSE_TOO_LARGE;
	return r;
}

int http_header_find(const struct http_request *req, const char *name, size_t from)
{
	size_t n = strlen(name);

	for (size_t i = from; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len == n && strncasecmp(h->name, name, n) == 0)
			return (int)i;
	}
	return -1;
}

/* Elements are not quoted-string aware: the lists we read (Connection,
 * Upgrade, Sec-WebSocket-Protocol, Sec-WebSocket-Version) hold tokens only. */
int http_list_next(const char **p, const char *end, const char **tok, size_t *tok_len)
{
	const char *s = *p, *start, *last;

	while (s < end && (is_ows(*s) || *s == ','))
		s++;
	*p = s;
	if (s == end)
		return 0;
	start = s;
	while (s < end && *s != ',')
		s++;
	last = s;
	while (last > start && is_ows(last[-1]))
		last--;
	/* start is neither OWS nor ',', so the element is not empty */
	*tok = start;
	*tok_len = (size_t)(last - start);
	*p = s;
	return 1;
}

int http_list_has(const char *value, size_t len, const char *token)
{
	const char *p = value, *end = value + len, *tok;
	size_t tok_len, n = strlen(token);

	while (http_list_next(&p, end, &tok, &tok_len))
		if (tok_len == n && strncasecmp(tok, token, n) == 0)
			return 1;
	return 0;
}
