/* stomp_codec: STOMP 1.0/1.1/1.2 frames, bytes in and bytes out. Pure: no
 * sockets, no clock, no logging, no globals. It does not know what a frame
 * means (that is protocols/stomp.c); it cuts a byte stream into frames,
 * unescapes headers by the negotiated version's rules, enforces the
 * configured bounds, and encodes the frames a server sends.
 *
 * Parsing follows picohttpparser's contract, made resumable: the caller
 * keeps the unconsumed bytes and calls again with the same bytes plus more.
 *   >0  bytes consumed: a frame (out->cmd is a command) or a run of
 *       heart-beat EOLs between frames (out->cmd == STOMP_HEARTBEAT).
 *       The next call must start at the first byte not consumed.
 *    0  need more: call again with these bytes and whatever follows them
 *       (the parser remembers how far it scanned, so a frame fed one byte
 *       at a time costs O(n), not O(n^2)).
 *   <0  enum stomp_err; the stream is unusable (answer ERROR and close).
 * A parsed frame's headers live in the parser and its body in the caller's
 * buffer: both are valid until the next stomp_parse call. */
#ifndef WSB_STOMP_CODEC_H
#define WSB_STOMP_CODEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stomp_version { STOMP_V10 = 0, STOMP_V11 = 1, STOMP_V12 = 2 };

enum stomp_command {
	STOMP_HEARTBEAT = 0,   /* not a frame: EOLs between frames */
	/* client frames */
	STOMP_CONNECT, STOMP_STOMP, STOMP_SEND, STOMP_SUBSCRIBE, STOMP_UNSUBSCRIBE,
	STOMP_ACK, STOMP_NACK, STOMP_BEGIN, STOMP_COMMIT, STOMP_ABORT, STOMP_DISCONNECT,
	/* server frames */
	STOMP_CONNECTED, STOMP_MESSAGE, STOMP_RECEIPT, STOMP_ERROR
};

enum stomp_err {
	STOMP_E_BAD_COMMAND = -1,         /* unknown or over-long command line */
	STOMP_E_NO_COLON = -2,            /* header line without ':' */
	STOMP_E_EMPTY_NAME = -3,          /* header line starting with ':' */
	STOMP_E_BAD_ESCAPE = -4,          /* undefined '\x' escape (1.1/1.2) */
	STOMP_E_NUL_IN_HEADER = -5,       /* NUL octet before the blank line */
	STOMP_E_HEADER_TOO_LONG = -6,     /* a line above max_header_size */
	STOMP_E_TOO_MANY_HEADERS = -7,    /* more than max_headers lines */
	STOMP_E_BAD_CONTENT_LENGTH = -8,  /* not a decimal number */
	STOMP_E_BODY_TOO_LARGE = -9,      /* above max_body */
	STOMP_E_BODY_NOT_TERMINATED = -10,/* content-length bytes not followed by NUL */
	STOMP_E_NOMEM = -11
};

/* Text for the ERROR frame's message header (no ':', which 1.1/1.2 would
 * show escaped to a client that does not unescape). */
const char *stomp_strerror(int err);
/* "SEND" ...; "" for STOMP_HEARTBEAT. */
const char *stomp_command_name(enum stomp_command cmd);
/* "1.0", "1.1", "1.2". */
const char *stomp_version_name(enum stomp_version v);

struct stomp_limits {
	size_t max_headers;      /* header lines per frame */
	size_t max_header_size;  /* bytes per header line, EOL excluded */
	size_t max_body;         /* body bytes */
};

/* Name and value, unescaped and NUL-terminated (a value holds no NUL). */
struct stomp_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct stomp_frame {
	enum stomp_command cmd;
	const struct stomp_header *headers; /* in wire order, repeats kept */
	size_t nheaders;
	const uint8_t *body;
	size_t body_len;
};

/* First occurrence of a header (a repeated header: the first one wins), or
 * NULL. */
const struct stomp_header *stomp_frame_header(const struct stomp_frame *f, const char *name);
/* Its value, or NULL. */
const char *stomp_frame_get(const struct stomp_frame *f, const char *name);

/* A growable byte buffer (the encoder's output and the parser's storage). */
struct stomp_buf {
	uint8_t *data;
	size_t len, cap;
};
/* 0, or -1 on OOM (the buffer is unchanged). */
int stomp_buf_reserve(struct stomp_buf *b, size_t extra);
int stomp_buf_append(struct stomp_buf *b, const void *p, size_t n);
void stomp_buf_free(struct stomp_buf *b);

/* Offsets of one header inside the parser's hbuf: the buffer may move while
 * later lines are stored, so pointers are made only when the frame is done. */
struct stomp_hoff {
	size_t name, name_len, value, value_len;
};

struct stomp_parser {
	struct stomp_limits lim;
	enum stomp_version version;
	/* resumable state; offsets count from the first byte of the frame */
	int state;
	int err;                 /* once failed */
	size_t pos;              /* next byte to examine */
	size_t line_start;
	enum stomp_command cmd;
	bool has_length;
	size_t content_length;
	size_t body_start;
	struct stomp_buf hbuf;   /* unescaped header text */
	struct stomp_hoff *hoff;
	struct stomp_header *hdrs;
	size_t nhdr, hcap;
};

void stomp_parser_init(struct stomp_parser *p, const struct stomp_limits *lim);
/* Header escaping follows the negotiated version (1.0 until CONNECTED). */
void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version v);
void stomp_parser_free(struct stomp_parser *p);
int stomp_parse(struct stomp_parser *p, const uint8_t *in, size_t len, struct stomp_frame *out);

/* ---- encoding ----
 * Frames go to the end of a stomp_buf. Header names and values are escaped
 * for 1.1/1.2 (\\ \n \c, and \r in 1.2) except in CONNECTED; a 1.0 peer
 * cannot receive an EOL in a header, so there CR and LF become spaces and a
 * ':' in a name becomes '_'. Each returns 0, or -1 on OOM. */
int stomp_encode_command(struct stomp_buf *b, enum stomp_command cmd);
int stomp_encode_header(struct stomp_buf *b, enum stomp_version v, enum stomp_command cmd,
			const char *name, size_t name_len, const char *value, size_t value_len);
/* Header whose value is a C string. */
int stomp_encode_header_str(struct stomp_buf *b, enum stomp_version v, enum stomp_command cmd,
			    const char *name, const char *value);
/* Blank line, body, NUL. */
int stomp_encode_body(struct stomp_buf *b, const void *body, size_t len);

int stomp_encode_connected(struct stomp_buf *b, enum stomp_version v, const char *session,
			   const char *server, uint32_t hb_send_ms, uint32_t hb_recv_ms);
int stomp_encode_receipt(struct stomp_buf *b, enum stomp_version v, const char *receipt_id);
/* receipt_id and detail may be NULL; detail becomes a text/plain body. */
int stomp_encode_error(struct stomp_buf *b, enum stomp_version v, const char *message,
		       const char *receipt_id, const char *detail);

#endif
