#include "auth.h"
#include "backoff.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "passwd.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/* The accounts and the failure table, replaced whole by auth_configure. */
struct auth {
	struct passwd_entry *accounts;
	size_t naccounts;
	bool allow_anonymous;
	bool users_file;         /* configured: a login must match an entry */
	struct auth_backoff *backoff;
};

static struct auth the = {.allow_anonymous = true};

static void free_accounts(struct passwd_entry *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		passwd_entry_clear(&a[i]);
	free(a);
}

void auth_reset(void)
{
	free_accounts(the.accounts, the.naccounts);
	auth_backoff_free(the.backoff);
	the = (struct auth){.allow_anonymous = true};
}

static int load_users(const char *path, struct passwd_entry **out, size_t *nout, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	struct passwd_entry *a = NULL;
	size_t n = 0, plain = 0;
	char line[PASSWD_MAX_LINE + 2];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			rc = -1;
			break;
		}
		struct passwd_entry e;
		const char *why = NULL;
		int r = passwd_parse_line(line, &e, &why);
		if (r == 0)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			rc = -1;
			break;
		}
		struct passwd_entry *na = realloc(a, (n + 1) * sizeof(*a));
		if (!na) {
			passwd_entry_clear(&e);
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		a = na;
		a[n++] = e;
		if (e.plain) {
			plain++;
			log_warn(NULL, NULL, "%s:%d: user '%s' has a plain-text password; "
				 "hash it with: wsbroker passwd %s %s", path, lineno, e.user, path,
				 e.user);
		}
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	if (rc < 0) {
		free_accounts(a, n);
		return -1;
	}
	log_info(NULL, NULL, "%s: %zu users (%zu with plain-text passwords)", path, n, plain);
	*out = a;
	*nout = n;
	return 0;
}

bool auth_addr_is_loopback(const char *addr)
{
	unsigned char b[16];
	if (inet_pton(AF_INET, addr, b) == 1)
		return b[0] == 127;
	if (inet_pton(AF_INET6, addr, b) != 1)
		return false;
	static const unsigned char v6_loop[16] = {[15] = 1};
	static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
	return memcmp(b, v6_loop, 16) == 0 || (memcmp(b, v4_mapped, 12) == 0 && b[12] == 127);
}

/* allow_anonymous's default depends on the listeners; a value set in the
 * file or on the command line is taken as it is. */
static int anonymous_rule(const struct cfg *c, bool *allow, char *err, size_t errlen)
{
	const struct cfg_listener *outside = NULL;
	for (size_t i = 0; i < c->nlisteners && !outside; i++)
		if (!auth_addr_is_loopback(c->listeners[i].addr))
			outside = &c->listeners[i];
	bool explicit = cfg_key_is_set(c, "allow_anonymous");
	if (!outside || explicit) {
		*allow = c->allow_anonymous;
		return 0;
	}
	if (!c->users_file[0]) {
		snprintf(err, errlen,
			 "listener %s:%u is not on loopback and no users_file is set: anyone could "
			 "connect; set users_file (see wsbroker passwd), or set allow_anonymous "
			 "true to accept that", outside->addr,
			 outside->port);
		return -1;
	}
	*allow = false;
	return 0;
}

int auth_configure(const struct cfg *c, char *err, size_t errlen)
{
	struct passwd_entry *a = NULL;
	size_t n = 0;
	bool allow;
	if (anonymous_rule(c, &allow, err, errlen) < 0)
		return -1;
	if (c->users_file[0] && load_users(c->users_file, &a, &n, err, errlen) < 0)
		return -1;
	struct auth_backoff *bo = the.backoff;
	if (bo)
		auth_backoff_set(bo, c->login_fail_delay_ms, c->login_fail_delay_max_ms,
				 (uint64_t)c->login_fail_reset_s * 1000, c->login_fail_max_addresses);
	else
		bo = auth_backoff_new(c->login_fail_delay_ms, c->login_fail_delay_max_ms,
				      (uint64_t)c->login_fail_reset_s * 1000,
				      c->login_fail_max_addresses);
	if (!bo) {
		free_accounts(a, n);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	the.backoff = NULL;   /* kept across the reset: the counts survive SIGHUP */
	auth_reset();
	the.accounts = a;
	the.naccounts = n;
	the.allow_anonymous = allow;
	the.users_file = c->users_file[0] != 0;
	the.backoff = bo;
	return 0;
}

/* "1.2.3.4:5678" or "[::1]:5678" -> the address alone. */
static void peer_addr(const char *peer, char *out, size_t cap)
{
	const char *colon = strrchr(peer, ':');
	size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
	if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
		peer++;
		n -= 2;
	}
	snprintf(out, cap, "%.*s", (int)n, peer);
}

static enum auth_result refused(const char *user, const char *peer, const char *why,
				uint64_t *delay_ms)
{
	char addr[64];
	uint32_t count = 0;
	uint64_t d = 0;
	peer_addr(peer ? peer : "?", addr, sizeof(addr));
	if (the.backoff)
		d = auth_backoff_fail(the.backoff, addr, clock_now_ms(), &count);
	if (delay_ms)
		*delay_ms = d;
	log_info(peer, NULL, "auth: login '%s' refused: %s (failure %u in a row from %s; "
		 "answered after %llu ms)", user ? user : "", why, (unsigned)count, addr,
		 (unsigned long long)d);
	return AUTH_DENIED;
}

static enum auth_result accepted(const char *peer)
{
	if (the.backoff && auth_backoff_size(the.backoff)) {
		char addr[64];
		peer_addr(peer ? peer : "?", addr, sizeof(addr));
		auth_backoff_success(the.backoff, addr);
	}
	return AUTH_OK;
}

enum auth_result auth_check(const char *user, const char *pass, size_t pass_len,
			    const char *peer, uint64_t *delay_ms)
{
	if (delay_ms)
		*delay_ms = 0;
	if (!user || !*user) {
		if (the.allow_anonymous)
			return AUTH_OK;
		return refused(NULL, peer, "anonymous logins are not allowed", delay_ms);
	}
	if (!the.users_file) {
		/* No accounts configured: names are labels, not credentials. */
		if (the.allow_anonymous)
			return AUTH_OK;
		return refused(user, peer, "no users configured", delay_ms);
	}
	for (size_t i = 0; i < the.naccounts; i++) {
		if (strcmp(the.accounts[i].user, user) != 0)
			continue;
		if (passwd_verify(&the.accounts[i], pass, pass_len))
			return accepted(peer);
		return refused(user, peer, "wrong password", delay_ms);
	}
	/* As slow as a wrong password, so that the answer's timing does not
	 * tell which names exist. */
	for (size_t i = 0; i < the.naccounts; i++) {
		if (!the.accounts[i].plain) {
			(void)passwd_verify(&the.accounts[i], pass ? pass : "", pass ? pass_len : 0);
			break;
		}
	}
	return refused(user, peer, "no such user", delay_ms);
}
