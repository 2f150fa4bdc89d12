/* Fuzz target for http_parse.c. Besides "does not crash", it checks the
 * promises callers rely on: results point inside the head, names are
 * tokens, values are trimmed, a complete head parses the same when cut to its
 * length and needs more one byte short, and the size limit is honoured. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/http_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_lists(const struct http_header *h)
{
	const char *p = h->value, *end = h->value + h->value_len, *tok;
	size_t tok_len;
	while (http_list_next(&p, end, &tok, &tok_len)) {
		CHECK(tok_len > 0);
		CHECK(inside(tok, tok_len, h->value, h->value_len));
		CHECK(tok[0] != ' ' && tok[0] != '\t' && tok[0] != ',');
		CHECK(tok[tok_len - 1] != ' ' && tok[tok_len - 1] != '\t');
		CHECK(memchr(tok, ',', tok_len) == NULL);
		/* a token just found is in the list */
		char word[16];
		if (tok_len < sizeof word && memchr(tok, '\0', tok_len) == NULL) {
			memcpy(word, tok, tok_len);
			word[tok_len] = '\0';
			CHECK(http_list_has(h->value, h->value_len, word));
		}
	}
	CHECK(p == end);
	(void)http_list_has(h->value, h->value_len, "websocket");
}

static void check_head(const char *buf, int r, size_t max_head, const struct http_request *req)
{
	size_t n = (size_t)r;
	CHECK(n <= max_head);
	CHECK(req->method_len > 0 && req->target_len > 0);
	CHECK(req->method == buf);
	CHECK(inside(req->target, req->target_len, buf, n));
	CHECK(req->minor_version >= 0 && req->minor_version <= 9);
	CHECK(req->num_headers <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];
		CHECK(h->name_len > 0);
		CHECK(inside(h->name, h->name_len, buf, n));
		CHECK(inside(h->value, h->value_len, buf, n));
		CHECK(memchr(h->name, ':', h->name_len) == NULL);
		if (h->value_len) {
			CHECK(h->value[0] != ' ' && h->value[0] != '\t');
			CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
			CHECK(memchr(h->value, '\r', h->value_len) == NULL);
			CHECK(memchr(h->value, '\n', h->value_len) == NULL);
		}
		char name[32];
		if (h->name_len < sizeof name) {
			memcpy(name, h->name, h->name_len);
			name[h->name_len] = '\0';
			int at = http_header_find(req, name, 0);
			CHECK(at >= 0 && (size_t)at <= i);
			CHECK(http_header_find(req, name, i) == (int)i);
		}
		check_lists(h);
	}
}

FUZZ_ENTRY(fuzz_http_parse)
{
	static struct http_request req, again;
	const char *buf = (const char *)data;
	const size_t limits[] = { 8192, size, size / 2 + 1, 64 };

	for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
		size_t max_head = limits[k];
		int r = http_parse_request(buf, size, max_head, &req);
		CHECK(r >= HTTP_PARSE_TOO_MANY_HEADERS);
		if (r == 0)
			CHECK(size < max_head);
		if (r == HTTP_PARSE_TOO_LARGE)
			CHECK(size >= max_head);
		if (r <= 0)
			continue;
		CHECK((size_t)r <= size);
		check_head(buf, r, max_head, &req);
		/* the head alone parses the same; one byte short needs more */
		CHECK(http_parse_request(buf, (size_t)r, max_head, &again) == r);
		CHECK(again.num_headers == req.num_headers);
		CHECK(http_parse_request(buf, (size_t)r - 1, max_head, &again) == 0);
	}
	return 0;
}
