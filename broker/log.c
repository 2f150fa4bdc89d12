#include "log.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level current = LOGL_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl) { current = lvl; }
enum log_level log_get_level(void) { return current; }

const char *log_level_name(enum log_level lvl)
{
	return lvl <= LOGL_DEBUG ? names[lvl] : "?";
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOGL_DEBUG; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOGL_WARN;
		return 0;
	}
	return -1;
}

void log_vmsg(enum log_level lvl, const char *peer, const char *client_id,
	      const char *fmt, va_list ap)
{
	if (lvl > current)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char line[2048];
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), names[lvl]);
	if (peer && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " peer=%s", peer);
	if (client_id && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " client=%s", client_id);
	if (n < (int)sizeof(line))
		line[n++] = ' ';
	if (n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n >= (int)sizeof(line))
		n = (int)sizeof(line) - 1;
	/* One write per line so concurrent writers never interleave mid-line. */
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

void log_msg(enum log_level lvl, const char *peer, const char *client_id,
	     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, peer, client_id, fmt, ap);
	va_end(ap);
}

void log_sink(void *arg, int level, const char *fmt, va_list ap)
{
	(void)arg;
	if (level < LOGL_ERROR || level > LOGL_DEBUG)
		level = LOGL_ERROR;
	log_vmsg((enum log_level)level, NULL, NULL, fmt, ap);
}

bool log_flood_ok(struct log_flood *f, uint64_t now_ms, uint64_t *held_back)
{
	if (f->last_ms && now_ms - f->last_ms < 1000) {
		f->held++;
		return false;
	}
	*held_back = f->held;
	f->held = 0;
	f->last_ms = now_ms ? now_ms : 1;
	return true;
}
