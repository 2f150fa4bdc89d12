/* Everything the key table in config.c is written out as: --help, the
 * effective settings as a config file (--print-config, --check-config, the
 * packaged sample), and the man pages wsbroker(8) and wsbroker.conf(5). One
 * table feeds them all, so none of them can drift from what the parser
 * accepts. */
#include "config.h"
#include "log.h"
#include "notify.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif
/* Where make install puts the sample config and where the unit keeps the
 * database; Makefile.am passes the configured directories. */
#ifndef WSB_SYSCONFDIR
#define WSB_SYSCONFDIR "/etc"
#endif

/* The options besides the keys; --help and wsbroker(8) list them from here. */
static const struct option_doc {
	const char *flags;       /* as typed, ", " between spellings */
	const char *arg;         /* NULL: takes no value */
	const char *help;
} options[] = {
	{"-c, --config", "FILE", "Read settings from FILE (key value lines, # comments)."},
	{"--listen", "SPEC", "The listener key; the first --listen replaces the listeners of the "
			     "defaults and of the file."},
	{"--db", "PATH", "The db key."},
	{"--log-level", "LEVEL", "The log_level key."},
	{"--port-file", "PATH", "The port_file key."},
	{"--set", "KEY=VALUE", "Any key below, e.g. --set ws_max_message=4M."},
	{"--print-config", NULL, "Print the effective settings (defaults, file and options applied) "
				 "as a config file, and exit."},
	{"--check-config", NULL, "Check the settings and the users file without opening a socket or "
				 "the database; print them as --print-config does and exit 0, or "
				 "name what is wrong and exit 2."},
	{"--print-man", "5|8", "Print the man page wsbroker.conf(5) or wsbroker(8) and exit."},
	{"--version", NULL, "Print the version and exit."},
	{"--help", NULL, "Print this help and exit."},
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* Words of text on lines of at most 78 columns. The first line continues
 * from column col (what the caller already printed), later lines start with
 * prefix. */
static void print_wrapped(FILE *out, const char *text, int col, const char *prefix)
{
	bool line_empty = true; /* no word of text on this line yet */
	while (*text) {
		int n = (int)strcspn(text, " ");
		if (!line_empty && col + 1 + n > 78) {
			fputc('\n', out);
			col = fprintf(out, "%s", prefix);
			line_empty = true;
		}
		col += fprintf(out, "%s%.*s", line_empty ? "" : " ", n, text);
		line_empty = false;
		text += n;
		text += strspn(text, " ");
	}
	fputc('\n', out);
}

void cfg_print_version(FILE *out)
{
	fprintf(out, "wsbroker %s (sd_notify: %s)\n", PACKAGE_VERSION,
		notify_supported() ? "yes" : "no, built without libsystemd");
}

void cfg_print_usage(FILE *out)
{
	fputs("usage: wsbroker [-c FILE] [--listen [ADDR:]PORT[/KIND]]... [--db PATH]\n"
	      "                [--log-level error|warn|info|debug] [--port-file PATH]\n"
	      "                [--set KEY=VALUE]... [--print-config | --check-config]\n"
	      "                [--print-man 5|8] [--version] [--help]\n"
	      "       wsbroker passwd [--iterations N] FILE USER\n"
	      "                (add or change USER in a users_file; the password is read from\n"
	      "                the terminal without echo, or from stdin)\n\n", out);
	for (size_t i = 0; i < NOPTIONS; i++) {
		char head[64];
		snprintf(head, sizeof(head), "  %s%s%s", options[i].flags, options[i].arg ? " " : "",
			 options[i].arg ? options[i].arg : "");
		int col = fprintf(out, "%s", head);
		if (col > 21) {
			fputc('\n', out);
			col = 0;
		}
		col += fprintf(out, "%*s", 22 - col, "");
		print_wrapped(out, options[i].help, col, "                      ");
	}
	fputs("\n"
	      "Keys, for a config file (KEY VALUE) or --set. Sizes take k, M or G (KiB,\n"
	      "MiB, GiB). SIGHUP reloads the keys marked so; the rest need a restart.\n"
	      "wsbroker.conf(5) and docs/configuration.md say more about each.\n", out);
	for (size_t i = 0; i < cfg_key_count(); i++) {
		const struct cfg_key *k = cfg_key_at(i);
		char range[160];
		cfg_key_range_text(k, range, sizeof(range));
		fprintf(out, "\n  %s%s\n", k->name, k->reload ? "  (SIGHUP reloads it)" : "");
		fprintf(out, "      default: %s\n      range: %s\n", cfg_key_default_text(k), range);
		fputs("      ", out);
		print_wrapped(out, k->doc, 6, "      ");
	}
}

/* The shortest decimal that strtod reads back as exactly v, so that a
 * printed config parses to the same double. */
static void double_text(double v, char *buf, size_t len)
{
	if (v == (double)(long long)v) {
		snprintf(buf, len, "%.1f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* The index-th entry of a ", " separated list of choices. */
static void choice_text(const char *form, int index, char *buf, size_t len)
{
	const char *p = form;
	for (int i = 0; i < index && *p; i++) {
		p += strcspn(p, ",");
		p += strspn(p, ", ");
	}
	snprintf(buf, len, "%.*s", (int)strcspn(p, ","), p);
}

static void listener_text(const struct cfg_listener *l, char *buf, size_t len)
{
	bool v6 = strchr(l->addr, ':') != NULL;
	snprintf(buf, len, "%s%s%s:%u/%s", v6 ? "[" : "", l->addr, v6 ? "]" : "", l->port,
		 cfg_listener_kind_name(l->kind));
}

int cfg_key_value_text(const struct cfg_key *k, const struct cfg *c, size_t item, char *buf,
		       size_t len)
{
	const char *field = (const char *)c + k->off;
	switch (k->type) {
	case CFG_T_STR:
		snprintf(buf, len, "%s", field);
		break;
	case CFG_T_SIZE:
		cfg_key_number_text(k, (double)*(const size_t *)field, buf, len);
		break;
	case CFG_T_U32:
		snprintf(buf, len, "%u", (unsigned)*(const uint32_t *)field);
		break;
	case CFG_T_DOUBLE:
		double_text(*(const double *)field, buf, len);
		break;
	case CFG_T_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
		break;
	case CFG_T_CHOICE:
		choice_text(k->form, *(const int *)field, buf, len);
		break;
	case CFG_T_LEVEL:
		snprintf(buf, len, "%s", log_level_name((enum log_level) * (const int *)field));
		break;
	case CFG_T_LISTENER:
		listener_text(&c->listeners[item], buf, len);
		break;
	case CFG_T_PATH:
		snprintf(buf, len, "%s %s", c->paths[item].path, c->paths[item].protocol);
		break;
	case CFG_T_ORIGIN:
		snprintf(buf, len, "%s", c->origins[item]);
		break;
	}
	/* The file reader cuts at '#' and trims spaces: such a value would
	 * read back as something else. */
	size_t n = strlen(buf);
	if (!n || strpbrk(buf, "#\n\r") || buf[0] == ' ' || buf[0] == '\t' || buf[n - 1] == ' ' ||
	    buf[n - 1] == '\t')
		return -1;
	return 0;
}

/* "# " and the text, wrapped. */
static void print_comment(FILE *out, const char *text)
{
	fputs("# ", out);
	print_wrapped(out, text, 2, "# ");
}

int cfg_print_config(FILE *out, const struct cfg *c, char *err, size_t errlen)
{
	struct cfg def;
	cfg_defaults(&def);
	fprintf(out,
		"# wsbroker %s configuration, as written by wsbroker --print-config.\n"
		"#\n"
		"# One \"key value\" per line; # starts a comment. A key that is commented\n"
		"# out below has its default value; remove the \"# \" to change it.\n"
		"# Repeatable keys take one line per value; the first listener line\n"
		"# replaces the default listeners. Sizes take k, M or G (KiB, MiB, GiB).\n"
		"# The command line (--listen, --db, --set KEY=VALUE ...) overrides this\n"
		"# file; wsbroker --check-config -c FILE checks it. See wsbroker.conf(5).\n",
		PACKAGE_VERSION);
	for (size_t i = 0; i < cfg_key_count(); i++) {
		const struct cfg_key *k = cfg_key_at(i);
		char range[160], note[256];
		/* A key set explicitly stays active even at its default value: some
		 * rules (allow_anonymous) tell "set" from "default". */
		bool is_default = cfg_key_equal(k, c, &def) && !cfg_key_is_set(c, k->name);
		cfg_key_range_text(k, range, sizeof(range));
		snprintf(note, sizeof(note), "Range: %s. %s", range,
			 k->reload ? "SIGHUP reloads it." : "A change needs a restart.");
		fputc('\n', out);
		print_comment(out, k->doc);
		print_comment(out, note);
		size_t n = cfg_key_repeatable(k) ? cfg_key_items(k, c) : 1;
		if (n == 0) /* a repeatable key with no value: show its syntax */
			fprintf(out, "# %s %s\n", k->name, k->form);
		for (size_t item = 0; item < n; item++) {
			char value[300];
			int rc = cfg_key_value_text(k, c, item, value, sizeof(value));
			if (rc < 0 && is_default && k->type == CFG_T_STR) {
				/* An unset path (port_file, users_file): show its syntax. */
				fprintf(out, "# %s %s\n", k->name, k->form);
				continue;
			}
			if (rc < 0) {
				snprintf(err, errlen, "%s: the value '%s' cannot be written in a config file",
					 k->name, value);
				return -1;
			}
			fprintf(out, "%s%s %s\n", is_default ? "# " : "", k->name, value);
		}
	}
	return 0;
}

int cfg_print_settings(const struct cfg *c, FILE *out, FILE *errf)
{
	char err[600];
	char *text = NULL;
	size_t len = 0;
	/* Into memory first: a value that cannot be written leaves no half
	 * file on out for a tool to take. */
	FILE *mem = open_memstream(&text, &len);
	if (!mem) {
		fprintf(errf, "wsbroker: out of memory\n");
		return 1;
	}
	int rc = cfg_print_config(mem, c, err, sizeof(err));
	fclose(mem);
	if (rc < 0) {
		free(text);
		fprintf(errf, "wsbroker: %s\n", err);
		return 2;
	}
	fwrite(text, 1, len, out);
	free(text);
	if (fflush(out) != 0 || ferror(out)) {
		fprintf(errf, "wsbroker: writing the settings: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- man pages ---- */

/* Text for a roff line: backslashes escaped, a leading '.' or '\'' made
 * literal, '-' as \- where the reader types it (option names, values). */
static void roff(FILE *out, const char *text, bool literal_dash)
{
	if (*text == '.' || *text == '\'')
		fputs("\\&", out);
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-' && literal_dash)
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
}

static void man_keys(FILE *out)
{
	for (size_t i = 0; i < cfg_key_count(); i++) {
		const struct cfg_key *k = cfg_key_at(i);
		char range[160];
		cfg_key_range_text(k, range, sizeof(range));
		fputs(".TP\n.B ", out);
		roff(out, k->name, true);
		fputs("\n", out);
		roff(out, k->doc, false);
		fputs("\n.br\nDefault: ", out);
		roff(out, cfg_key_default_text(k), true);
		fputs("\n.br\nRange: ", out);
		roff(out, range, true);
		fprintf(out, "\n.br\n%s\n", k->reload ? "SIGHUP reloads it." : "A change needs a restart.");
	}
}

static void man_header(FILE *out, const char *title, int section, const char *manual)
{
	fprintf(out, ".\\\" Generated by wsbroker --print-man %d from the key table in\n"
		     ".\\\" broker/config.c; edit that table, not this file.\n"
		     ".TH %s %d \"\" \"wsbroker %s\" \"%s\"\n",
		section, title, section, PACKAGE_VERSION, manual);
}

static void man_options(FILE *out)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *p = options[i].flags;
		fputs(".TP\n", out);
		/* each spelling bold, the value italic */
		while (*p) {
			size_t n = strcspn(p, ",");
			char flag[32];
			snprintf(flag, sizeof(flag), "%.*s", (int)n, p);
			fputs(p == options[i].flags ? "\\fB" : ", \\fB", out);
			roff(out, flag, true);
			fputs("\\fR", out);
			if (options[i].arg) {
				fputs(" \\fI", out);
				roff(out, options[i].arg, true);
				fputs("\\fR", out);
			}
			p += n;
			p += strspn(p, ", ");
		}
		fputs("\n", out);
		roff(out, options[i].help, false);
		fputs("\n", out);
	}
}

static void man8(FILE *out)
{
	man_header(out, "WSBROKER", 8, "System Manager's Manual");
	fputs(".SH NAME\n"
	      "wsbroker \\- STOMP and MQTT message broker over WebSocket and TCP\n"
	      ".SH SYNOPSIS\n"
	      ".B wsbroker\n"
	      "[\\fB\\-c\\fR \\fIFILE\\fR] [\\fB\\-\\-listen\\fR \\fISPEC\\fR]... "
	      "[\\fB\\-\\-db\\fR \\fIPATH\\fR] [\\fB\\-\\-set\\fR \\fIKEY\\fR=\\fIVALUE\\fR]...\n"
	      ".br\n"
	      ".B wsbroker \\-\\-check\\-config\n"
	      "[\\fB\\-c\\fR \\fIFILE\\fR] [\\fIoptions\\fR]\n"
	      ".br\n"
	      ".B wsbroker passwd\n"
	      "[\\fB\\-\\-iterations\\fR \\fIN\\fR] \\fIFILE\\fR \\fIUSER\\fR\n"
	      ".SH DESCRIPTION\n"
	      ".B wsbroker\n"
	      "speaks STOMP 1.0, 1.1 and 1.2 and MQTT 3.1 and 3.1.1 to clients over WebSocket\n"
	      "and over plain TCP, routes messages between topics and queues (across the two\n"
	      "protocols too), and keeps retained messages, persistent MQTT sessions and STOMP\n"
	      "queues in one SQLite database, so that they survive a restart.\n"
	      "A message is acknowledged to its publisher only once it is committed.\n"
	      ".PP\n"
	      "Settings come from the built-in defaults, then the file named with\n"
	      ".BR \\-c ,\n"
	      "then the other options, whatever their order.\n"
	      "The file's format and every key are in\n"
	      ".BR wsbroker.conf (5);\n"
	      "they are listed under KEYS below too.\n"
	      "The broker logs to standard error.\n"
	      ".PP\n"
	      ".B wsbroker passwd\n"
	      "adds USER to the users_file FILE, or changes its password: it asks for the\n"
	      "password twice without echo, or reads the first line of standard input when\n"
	      "that is not a terminal, and writes a salted PBKDF2-HMAC-SHA512 entry,\n"
	      "replacing the file atomically with mode 0600. It starts no broker.\n"
	      ".SH OPTIONS\n", out);
	man_options(out);
	fputs(".SH KEYS\n"
	      "Each key can be set in the config file or with\n"
	      ".BR \"\\-\\-set \\fIKEY\\fB=\\fIVALUE\\fR\" .\n", out);
	man_keys(out);
	fputs(".SH SIGNALS\n"
	      ".TP\n.BR SIGTERM \", \" SIGINT\n"
	      "Stop gracefully: stop accepting, say goodbye to every client (STOMP ERROR,\n"
	      "WebSocket close 1001), flush, and exit 0 within\n"
	      ".BR shutdown_timeout_ms .\n"
	      ".TP\n.B SIGHUP\n"
	      "Read the config file and the command line again and apply the keys marked\n"
	      "\"SIGHUP reloads it\"; a changed key that needs a restart is named in a warning.\n"
	      ".SH EXIT STATUS\n"
	      ".TP\n.B 0\nStopped by a signal, or printed what was asked and exited.\n"
	      ".TP\n.B 1\nCould not start: a listener could not be bound, the database could not be\n"
	      "opened or loaded, or the port file could not be written.\n"
	      ".TP\n.B 2\nA bad option, key or value; the message names it.\n"
	      ".SH ENVIRONMENT\n"
	      ".TP\n.B NOTIFY_SOCKET\n"
	      "Set by systemd for a Type=notify service. The broker sends READY=1 once every\n"
	      "listener is bound, the port file written and the database loaded; RELOADING=1\n"
	      "and READY=1 around a SIGHUP reload; STOPPING=1 on SIGTERM or SIGINT.\n"
	      "A build without libsystemd says so in\n"
	      ".BR \\-\\-version .\n"
	      ".SH FILES\n"
	      ".TP\n.I " WSB_SYSCONFDIR "/wsbroker/wsbroker.conf\n"
	      "The configuration the packaged systemd unit passes with\n"
	      ".BR \\-c .\n"
	      ".TP\n.I /var/lib/wsbroker/wsbroker.db\n"
	      "The database of the packaged service (its StateDirectory).\n"
	      ".SH SEE ALSO\n"
	      ".BR wsbroker.conf (5),\n"
	      ".BR systemd.service (5),\n"
	      ".BR systemctl (1)\n", out);
}

static void man5(FILE *out)
{
	man_header(out, "WSBROKER.CONF", 5, "File Formats Manual");
	fputs(".SH NAME\n"
	      "wsbroker.conf \\- configuration file of the wsbroker message broker\n"
	      ".SH SYNOPSIS\n"
	      ".I " WSB_SYSCONFDIR "/wsbroker/wsbroker.conf\n"
	      ".SH DESCRIPTION\n"
	      ".BR wsbroker (8)\n"
	      "reads the file named with\n"
	      ".BR \\-c .\n"
	      "Each line is a key, spaces, and a value;\n"
	      ".B #\n"
	      "starts a comment, which runs to the end of the line, and blank lines are\n"
	      "ignored.\n"
	      "Options on the command line override the file.\n"
	      "A key the broker does not know, or a value outside its range, stops start-up\n"
	      "with exit status 2 and a message that names the file, the line and the key;\n"
	      ".B wsbroker \\-\\-check\\-config \\-c\n"
	      ".I FILE\n"
	      "reports the same without starting, and prints the settings in effect.\n"
	      ".PP\n"
	      "Sizes take a suffix:\n"
	      ".BR k ,\n"
	      ".B K\n"
	      "or\n"
	      ".B KiB\n"
	      "(1024),\n"
	      ".BR M / MiB ,\n"
	      ".BR G / GiB .\n"
	      "Booleans are\n"
	      ".BR true / false ,\n"
	      ".BR yes / no ,\n"
	      ".BR on / off ,\n"
	      ".BR 1 / 0 .\n"
	      "The keys\n"
	      ".BR listener ,\n"
	      ".B path\n"
	      "and\n"
	      ".B origin\n"
	      "repeat, one line per value; the first\n"
	      ".B listener\n"
	      "line replaces the default listeners.\n"
	      "On SIGHUP the broker reads the file again and applies the keys marked\n"
	      "\"SIGHUP reloads it\"; the others need a restart.\n"
	      ".SH KEYS\n", out);
	man_keys(out);
	fputs(".SH EXAMPLE\n"
	      ".nf\n"
	      "listener 0.0.0.0:8080/ws\n"
	      "listener 0.0.0.0:1883/mqtt\n"
	      "origin https://app.example.com\n"
	      "db /var/lib/wsbroker/wsbroker.db\n"
	      "ws_max_message 4M\n"
	      ".fi\n"
	      ".PP\n"
	      ".B wsbroker \\-\\-print\\-config\n"
	      "writes every key with its default, as a file to start from.\n"
	      ".SH SEE ALSO\n"
	      ".BR wsbroker (8)\n", out);
}

void cfg_print_man(FILE *out, int section)
{
	if (section == 5)
		man5(out);
	else
		man8(out);
}
