/* http_parse: a pure, bounded parser for an HTTP/1.1 request head (request
 * line + headers, up to the empty line). It never touches a socket, keeps no
 * state between calls and allocates nothing: results point into the caller's
 * buffer. It does not interpret the request (that is http.c); it only cuts it
 * up and refuses what is malformed or too large. */
#ifndef WSB_HTTP_PARSE_H
#define WSB_HTTP_PARSE_H
#include <stddef.h>

#define HTTP_MAX_HEADERS 64

enum http_parse_err {
	HTTP_PARSE_MALFORMED = -1,      /* -> 400 */
	HTTP_PARSE_TOO_LARGE = -2,      /* head longer than the limit -> 431 */
	HTTP_PARSE_TOO_MANY_HEADERS = -3 /* more than HTTP_MAX_HEADERS -> 431 */
};

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;      /* leading and trailing spaces/tabs trimmed */
	size_t value_len;
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target;     /* request-target as sent, e.g. "/mqtt?x=1" */
	size_t target_len;
	int minor_version;      /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
};

/* Parse the head at buf[0..len). Returns the number of bytes of the head
 * (through the final CRLFCRLF, bare LF line ends are accepted too), 0 when
 * more bytes are needed, or an http_parse_err. A head that is not complete
 * within max_head bytes is HTTP_PARSE_TOO_LARGE even before the end arrives. */
int http_parse_request(const char *buf, size_t len, size_t max_head,
		       struct http_request *req);

/* The index of the first header named `name` (case-insensitive) at or after
 * index `from`, or -1. */
int http_header_find(const struct http_request *req, const char *name, size_t from);

/* Comma-separated list walking: sets *tok and *tok_len to the next token (spaces
 * and tabs around it trimmed, empty elements skipped) and advances *p.
 * Returns 1 when a token was found, 0 at the end. */
int http_list_next(const char **p, const char *end, const char **tok, size_t *tok_len);

/* 1 when the comma list value[0..len) holds `token` (case-insensitive). */
int http_list_has(const char *value, size_t len, const char *token);

#endif
