#include "passwd.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

bool passwd_user_valid(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > PASSWD_MAX_USER || user[0] == '#')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)user[i];
		if (ch == ':' || isspace(ch) || iscntrl(ch))
			return false;
	}
	return true;
}

/* Standard base64 with padding, as EVP_EncodeBlock writes it. Returns the
 * decoded length, or -1. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
	if (len == 0 || len % 4 || len / 4 * 3 > cap + 2)
		return -1;
	unsigned char tmp[128];
	if (len / 4 * 3 > sizeof(tmp))
		return -1;
	int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (s[len - 1] == '=')
		n--;
	if (s[len - 2] == '=')
		n--;
	if ((size_t)n > cap)
		return -1;
	memcpy(out, tmp, (size_t)n);
	return n;
}

void passwd_entry_clear(struct passwd_entry *e)
{
	if (e->pass) {
		OPENSSL_cleanse(e->pass, e->pass_len);
		free(e->pass);
	}
	OPENSSL_cleanse(e, sizeof(*e));
}

static int parse_hashed(const char *user, size_t ulen, const char *p, struct passwd_entry *e,
			const char **why)
{
	/* p points after PASSWD_SCHEME: ITER$SALT$HASH */
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*p))
		return *why = "iteration count is not a number", -1;
	unsigned long iter = strtoul(p, &end, 10);
	if (errno || *end != '$')
		return *why = "iteration count is not a number", -1;
	if (iter < PASSWD_MIN_ITER || iter > PASSWD_MAX_ITER)
		return *why = "iteration count out of range (1000 to 10000000)", -1;
	const char *salt = end + 1;
	const char *dollar = strchr(salt, '$');
	if (!dollar)
		return *why = "expected USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH", -1;
	const char *hash = dollar + 1;
	int sl = b64_decode(salt, (size_t)(dollar - salt), e->salt, sizeof(e->salt));
	if (sl < 8)
		return *why = "salt is not base64 of 8 to 64 bytes", -1;
	if (b64_decode(hash, strlen(hash), e->hash, sizeof(e->hash)) != PASSWD_HASH_LEN)
		return *why = "hash is not base64 of 64 bytes", -1;
	memcpy(e->user, user, ulen);
	e->user[ulen] = 0;
	e->iter = (uint32_t)iter;
	e->salt_len = (size_t)sl;
	e->plain = false;
	return 1;
}

int passwd_parse_line(const char *line, struct passwd_entry *e, const char **why)
{
	memset(e, 0, sizeof(*e));
	while (*line == ' ' || *line == '\t')
		line++;
	size_t len = strlen(line);
	while (len && isspace((unsigned char)line[len - 1]))
		len--;
	if (len == 0 || line[0] == '#')
		return 0;
	size_t ulen = strcspn(line, ": \t");
	if (ulen == 0 || ulen > PASSWD_MAX_USER)
		return *why = "user name empty or longer than 255 bytes", -1;
	char buf[PASSWD_MAX_LINE];
	if (len >= sizeof(buf))
		return *why = "line too long", -1;
	memcpy(buf, line, len);
	buf[len] = 0;
	if (buf[ulen] == ':') {
		if (strncmp(buf + ulen + 1, PASSWD_SCHEME, strlen(PASSWD_SCHEME)) != 0)
			return *why = "unknown scheme (expected $pbkdf2-sha512$)", -1;
		int r = parse_hashed(buf, ulen, buf + ulen + 1 + strlen(PASSWD_SCHEME), e, why);
		OPENSSL_cleanse(buf, sizeof(buf));
		return r;
	}
	/* The older plain form: USER PASSWORD (the password may hold spaces). */
	const char *sp = buf + ulen;
	while (*sp == ' ' || *sp == '\t')
		sp++;
	if (!*sp)
		return *why = "expected 'USER:$pbkdf2-sha512$...' or 'USER PASSWORD'", -1;
	memcpy(e->user, buf, ulen);
	e->user[ulen] = 0;
	e->plain = true;
	e->pass_len = strlen(sp);
	e->pass = strdup(sp);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!e->pass)
		return *why = "out of memory", -1;
	return 1;
}

bool passwd_verify(const struct passwd_entry *e, const char *pass, size_t pass_len)
{
	if (!pass)
		return false;
	if (e->plain)
		return pass_len == e->pass_len && CRYPTO_memcmp(pass, e->pass, pass_len) == 0;
	unsigned char got[PASSWD_HASH_LEN];
	if (PKCS5_PBKDF2_HMAC(pass, (int)pass_len, e->salt, (int)e->salt_len, (int)e->iter,
			      EVP_sha512(), sizeof(got), got) != 1)
		return false;
	bool ok = CRYPTO_memcmp(got, e->hash, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

int passwd_make_line(const char *user, const char *pass, size_t pass_len, uint32_t iter,
		     char *out, size_t outlen)
{
	unsigned char salt[PASSWD_SALT_LEN], hash[PASSWD_HASH_LEN];
	char salt64[32], hash64[100];
	if (!passwd_user_valid(user) || iter < PASSWD_MIN_ITER || iter > PASSWD_MAX_ITER)
		return -1;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	if (PKCS5_PBKDF2_HMAC(pass, (int)pass_len, salt, sizeof(salt), (int)iter, EVP_sha512(),
			      sizeof(hash), hash) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof(hash));
	OPENSSL_cleanse(hash, sizeof(hash));
	int n = snprintf(out, outlen, "%s:%s%u$%s$%s", user, PASSWD_SCHEME, (unsigned)iter, salt64,
			 hash64);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* ---- the tool ---- */

/* One line from f into buf, without its line ending. 0, or -1 at EOF or
 * when the line does not fit. */
static int read_line(FILE *f, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, f))
		return -1;
	size_t n = strcspn(buf, "\r\n");
	if (buf[n] == 0 && !feof(f))
		return -1;   /* longer than the buffer */
	buf[n] = 0;
	return 0;
}

/* From a terminal: asked twice with echo off. Otherwise the first line of
 * stdin, so that scripts can pipe it in. */
static int read_password(FILE *in, FILE *err, char *buf, size_t cap)
{
	int fd = fileno(in);
	if (!isatty(fd))
		return read_line(in, buf, cap);
	struct termios old, quiet;
	if (tcgetattr(fd, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
		return -1;
	char again[256];
	fputs("Password: ", err);
	fflush(err);
	int rc = read_line(in, buf, cap);
	if (rc == 0) {
		fputs("Retype password: ", err);
		fflush(err);
		rc = read_line(in, again, sizeof(again));
		if (rc == 0 && strcmp(buf, again) != 0) {
			fputs("wsbroker passwd: the passwords differ\n", err);
			rc = -2;
		}
		OPENSSL_cleanse(again, sizeof(again));
	}
	tcsetattr(fd, TCSAFLUSH, &old);
	return rc;
}

/* The entry's user, or "" for a line that is not an entry. */
static void line_user(const char *line, char *user, size_t cap)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strcspn(line, ": \t\r\n");
	if (*line == '#' || n == 0 || n >= cap)
		n = 0;
	memcpy(user, line, n);
	user[n] = 0;
}

/* Copy path's lines to tmp with user's line replaced by entry (or entry
 * appended), then rename over path: a reader sees the old file or the new
 * one, never half of one. */
static int rewrite_file(const char *path, const char *user, const char *entry, FILE *err,
			bool *updated)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		fprintf(err, "wsbroker passwd: %s: path too long\n", path);
		return -1;
	}
	int fd = mkstemp(tmp);   /* mode 0600 */
	if (fd < 0) {
		fprintf(err, "wsbroker passwd: cannot create %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	FILE *out = fdopen(fd, "w");
	if (!out) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	FILE *old = fopen(path, "r");
	if (!old && errno != ENOENT) {
		fprintf(err, "wsbroker passwd: cannot read %s: %s\n", path, strerror(errno));
		fclose(out);
		unlink(tmp);
		return -1;
	}
	*updated = false;
	if (old) {
		char line[PASSWD_MAX_LINE + 2], who[PASSWD_MAX_USER + 2];
		while (fgets(line, sizeof(line), old)) {
			line_user(line, who, sizeof(who));
			if (who[0] && strcmp(who, user) == 0) {
				if (!*updated)
					fprintf(out, "%s\n", entry);
				*updated = true;
				continue;
			}
			fputs(line, out);
			if (!strchr(line, '\n'))
				fputc('\n', out);
		}
		fclose(old);
	}
	if (!*updated)
		fprintf(out, "%s\n", entry);
	if (fflush(out) != 0 || fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
		fprintf(err, "wsbroker passwd: cannot write %s: %s\n", tmp, strerror(errno));
		fclose(out);
		unlink(tmp);
		return -1;
	}
	if (fclose(out) != 0 || rename(tmp, path) != 0) {
		fprintf(err, "wsbroker passwd: cannot replace %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int passwd_command(int argc, char **argv, FILE *in, FILE *out, FILE *err)
{
	uint32_t iter = PASSWD_DEFAULT_ITER;
	int i = 1;
	if (i < argc && !strcmp(argv[i], "--iterations") && i + 1 < argc) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(argv[i + 1], &end, 10);
		if (errno || *end || !isdigit((unsigned char)argv[i + 1][0]) ||
		    v < PASSWD_MIN_ITER || v > PASSWD_MAX_ITER) {
			fprintf(err, "wsbroker passwd: --iterations takes %d to %d\n",
				PASSWD_MIN_ITER, PASSWD_MAX_ITER);
			return 2;
		}
		iter = (uint32_t)v;
		i += 2;
	}
	if (argc - i != 2) {
		fprintf(err, "usage: wsbroker passwd [--iterations N] FILE USER\n"
			     "  creates or updates USER's entry in FILE; the password is read from\n"
			     "  the terminal (twice, without echo) or from the first line of stdin\n");
		return 2;
	}
	const char *path = argv[i], *user = argv[i + 1];
	if (!passwd_user_valid(user)) {
		fprintf(err, "wsbroker passwd: '%s' cannot be a user name (1 to 255 bytes, no ':', "
			     "spaces or control characters, not starting with '#')\n", user);
		return 2;
	}
	char pass[256], entry[PASSWD_MAX_LINE];
	int rc = read_password(in, err, pass, sizeof(pass));
	if (rc < 0 || !pass[0]) {
		if (rc != -2)
			fprintf(err, "wsbroker passwd: no password read (an empty one is refused)\n");
		OPENSSL_cleanse(pass, sizeof(pass));
		return 1;
	}
	rc = passwd_make_line(user, pass, strlen(pass), iter, entry, sizeof(entry));
	OPENSSL_cleanse(pass, sizeof(pass));
	if (rc < 0) {
		fprintf(err, "wsbroker passwd: could not hash the password\n");
		return 1;
	}
	bool updated;
	if (rewrite_file(path, user, entry, err, &updated) < 0)
		return 1;
	fprintf(out, "%s %s in %s\n", updated ? "updated" : "added", user, path);
	return 0;
}
