/* log: one line per event on stderr: wall time, level, peer address and
 * client id where known, then the message. Not a tracing framework. */
#ifndef WSB_LOG_H
#define WSB_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug"; returns 0 on success, -1 unknown. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* peer and client_id may be NULL. */
void log_msg(enum log_level lvl, const char *peer, const char *client_id,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void log_vmsg(enum log_level lvl, const char *peer, const char *client_id,
	      const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
/* For modules that take their logger from their caller (storage/): level is
 * an enum log_level, and the line names no peer or client. */
void log_sink(void *arg, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* A refusal that can come in a flood (accepts failing, a per-address limit)
 * logs at most once a second: log_flood_ok says whether this one may, and
 * how many were held back since the last line it allowed. */
struct log_flood {
	uint64_t last_ms;
	uint64_t held;
};
bool log_flood_ok(struct log_flood *f, uint64_t now_ms, uint64_t *held_back);

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOGL_DEBUG) log_msg(LOGL_DEBUG, __VA_ARGS__); } while (0)

#endif
