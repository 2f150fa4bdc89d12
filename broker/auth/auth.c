#include "auth.h"
#include "config.h"
#include "log.h"
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

struct account {
	char *user;
	char *pass;
	size_t pass_len;
};

static struct account *accounts;
static size_t naccounts;
static bool allow_anonymous = true;

void auth_reset(void)
{
	for (size_t i = 0; i < naccounts; i++) {
		free(accounts[i].user);
		OPENSSL_cleanse(accounts[i].pass, accounts[i].pass_len);
		free(accounts[i].pass);
	}
	free(accounts);
	accounts = NULL;
	naccounts = 0;
	allow_anonymous = true;
}

/* users file: "user password" per line, '#' comments. */
static int load_users(const char *path, struct account **out, size_t *nout, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	struct account *a = NULL;
	size_t n = 0;
	char line[1024];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#')
			continue;
		size_t len = strcspn(s, "\r\n");
		s[len] = 0;
		char *sp = strpbrk(s, " \t");
		if (!sp) {
			snprintf(err, errlen, "%s:%d: expected 'user password'", path, lineno);
			rc = -1;
			break;
		}
		*sp++ = 0;
		while (*sp == ' ' || *sp == '\t')
			sp++;
		struct account *na = realloc(a, (n + 1) * sizeof(*a));
		if (!na) {
			rc = -1;
			snprintf(err, errlen, "out of memory");
			break;
		}
		a = na;
		a[n].user = strdup(s);
		a[n].pass = strdup(sp);
		a[n].pass_len = strlen(sp);
		n++;
	}
	fclose(f);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++) {
			free(a[i].user);
			free(a[i].pass);
		}
		free(a);
		return -1;
	}
	*out = a;
	*nout = n;
	return 0;
}

int auth_configure(const struct cfg *c, char *err, size_t errlen)
{
	struct account *a = NULL;
	size_t n = 0;
	if (c->users_file[0] && load_users(c->users_file, &a, &n, err, errlen) < 0)
		return -1;
	auth_reset();
	accounts = a;
	naccounts = n;
	allow_anonymous = c->allow_anonymous;
	return 0;
}

enum auth_result auth_check(const char *user, const char *pass, size_t pass_len, const char *peer)
{
	if (!user || !*user) {
		if (allow_anonymous)
			return AUTH_OK;
		log_info(peer, NULL, "auth: anonymous login refused");
		return AUTH_DENIED;
	}
	if (naccounts == 0) {
		/* No accounts configured: names are labels, not credentials. */
		if (allow_anonymous)
			return AUTH_OK;
		log_info(peer, NULL, "auth: login '%s' refused: no users configured", user);
		return AUTH_DENIED;
	}
	for (size_t i = 0; i < naccounts; i++) {
		if (strcmp(accounts[i].user, user) != 0)
			continue;
		if (pass && pass_len == accounts[i].pass_len &&
		    CRYPTO_memcmp(pass, accounts[i].pass, pass_len) == 0)
			return AUTH_OK;
		break;
	}
	log_info(peer, NULL, "auth: login '%s' refused: bad credentials", user);
	return AUTH_DENIED;
}
