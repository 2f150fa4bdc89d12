/* passwd: the users file's entries and the `wsbroker passwd` tool.
 *
 * An entry is either hashed,
 *     USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH
 * (PBKDF2-HMAC-SHA512 through OpenSSL; SALT and HASH in standard base64
 * with padding; HASH is 64 bytes), or the older plain `USER PASSWORD`
 * line, still read and warned about. Verification compares in constant
 * time. Nothing here logs or touches a socket; the tool reads the password
 * from the terminal (echo off) or from stdin, never from argv. */
#ifndef WSB_AUTH_PASSWD_H
#define WSB_AUTH_PASSWD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PASSWD_SCHEME "$pbkdf2-sha512$"
#define PASSWD_SALT_LEN 16
#define PASSWD_HASH_LEN 64
#define PASSWD_DEFAULT_ITER 20000
#define PASSWD_MIN_ITER 1000
#define PASSWD_MAX_ITER 10000000
#define PASSWD_MAX_USER 255
#define PASSWD_MAX_LINE 1024

/* One account as read from a line. A plain entry keeps its password;
 * a hashed one its iterations, salt and hash. */
struct passwd_entry {
	char user[PASSWD_MAX_USER + 1];
	bool plain;
	char *pass;              /* plain: the password (malloc'd) */
	size_t pass_len;
	uint32_t iter;
	unsigned char salt[64];
	size_t salt_len;
	unsigned char hash[PASSWD_HASH_LEN];
};

/* Parse one line (without its newline). Returns 1 an entry, 0 a blank or
 * comment line, -1 malformed with the reason in why. */
int passwd_parse_line(const char *line, struct passwd_entry *e, const char **why);
void passwd_entry_clear(struct passwd_entry *e);
/* Constant time in the password's bytes for a hashed entry. */
bool passwd_verify(const struct passwd_entry *e, const char *pass, size_t pass_len);
/* Format a new hashed entry for user with a random salt. Returns 0, or -1
 * (no randomness, a line that would not fit). */
int passwd_make_line(const char *user, const char *pass, size_t pass_len, uint32_t iter,
		     char *out, size_t outlen);
/* A user name the file can carry: 1..255 bytes, no ':', whitespace, '#'
 * at the start, or control characters. */
bool passwd_user_valid(const char *user);

/* `wsbroker passwd [--iterations N] FILE USER`: argv[0] is "passwd".
 * Returns the exit status (0, 1 failure, 2 usage). */
int passwd_command(int argc, char **argv, FILE *in, FILE *out, FILE *err);

#endif
