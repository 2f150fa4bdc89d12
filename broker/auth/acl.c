/* acl: Mosquitto-style access control lists. Rules are kept in file order
 * in one array; a check walks the rules that apply to the client (its
 * user's section or the anonymous one, plus every pattern). Checks that run
 * per message are avoided by the callers: acl_check_sub tells them when a
 * subscription can only ever see readable topics. */
#include "acl.h"
#include "grow.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ACL_MAX_FILE (16u << 20)
#define ACL_MAX_NAME 1024   /* a substituted pattern longer than this applies to nothing */

enum acl_scope { SCOPE_ANON = 0, SCOPE_USER, SCOPE_PATTERN };

struct acl_rule {
	uint8_t scope;           /* enum acl_scope */
	uint8_t kind;            /* enum acl_kind */
	uint8_t access;          /* ACL_READ | ACL_WRITE; 0 = deny */
	bool subst;              /* a pattern with %u or %c */
	const char *user;        /* SCOPE_USER: the section's name (owned by names) */
	char *filter;
	size_t flen;
};

struct acl {
	struct acl_rule *rules;
	size_t n, cap;
	char **names;            /* user section names */
	size_t nnames, namecap;
};

/* ---- filter algebra ---- */

/* The level of [p, e) that starts at p: its length, and whether another
 * level follows. */
static size_t level(const char *p, const char *e, bool *more)
{
	const char *s = memchr(p, '/', (size_t)(e - p));

	*more = s != NULL;
	return s ? (size_t)(s - p) : (size_t)(e - p);
}

static bool is_hash(const char *p, size_t n) { return n == 1 && p[0] == '#'; }
static bool is_plus(const char *p, size_t n) { return n == 1 && p[0] == '+'; }
static bool is_wild(const char *p, size_t n) { return is_hash(p, n) || is_plus(p, n); }

/* A filter whose first level is a wildcard matches no "$..." topic. */
static bool dollar_clash(const char *wild, size_t wn, const char *lit, size_t ln)
{
	return is_wild(wild, wn) && ln > 0 && lit[0] == '$' && !is_wild(lit, ln);
}

bool acl_filters_intersect(const char *a, size_t alen, const char *b, size_t blen)
{
	const char *ae = a + alen, *be = b + blen;
	bool first = true;

	for (;;) {
		bool am, bm;
		size_t la = level(a, ae, &am), lb = level(b, be, &bm);

		if (first && (dollar_clash(a, la, b, lb) || dollar_clash(b, lb, a, la)))
			return false;
		first = false;
		if (is_hash(a, la) || is_hash(b, lb))
			return true;
		if (!is_plus(a, la) && !is_plus(b, lb) && (la != lb || memcmp(a, b, la) != 0))
			return false;
		if (!am && !bm)
			return true;
		if (am && !bm)
			return ae - (a + la + 1) == 1 && a[la + 1] == '#';
		if (!am && bm)
			return be - (b + lb + 1) == 1 && b[lb + 1] == '#';
		a += la + 1;
		b += lb + 1;
	}
}

bool acl_filter_within(const char *a, size_t alen, const char *b, size_t blen)
{
	const char *ae = a + alen, *be = b + blen;
	bool first = true;

	for (;;) {
		bool am, bm;
		size_t la = level(a, ae, &am), lb = level(b, be, &bm);

		if (first && dollar_clash(b, lb, a, la))
			return false;
		first = false;
		if (is_hash(b, lb))
			return true;
		if (is_hash(a, la))
			return false;
		if (!is_plus(b, lb) && (is_plus(a, la) || la != lb || memcmp(a, b, la) != 0))
			return false;
		if (!am && !bm)
			return true;
		if (am && !bm)
			return false;
		if (!am && bm)
			return be - (b + lb + 1) == 1 && b[lb + 1] == '#';
		a += la + 1;
		b += lb + 1;
	}
}

/* MQTT filter rules: not empty, '+' and '#' fill a level, '#' is last. */
static bool filter_valid(const char *f, size_t n)
{
	const char *e = f + n;
	bool more = true;

	if (n == 0)
		return false;
	while (more) {
		size_t l = level(f, e, &more);

		if ((memchr(f, '+', l) || memchr(f, '#', l)) && l != 1)
			return false;
		if (is_hash(f, l) && more)
			return false;
		f += l + 1;
	}
	return true;
}

int acl_queue_key(const char *queue, size_t len, char *out, size_t cap)
{
	if (len + 1 > cap)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = queue[i];

		out[i] = ch == '.' ? '/' : ch == '*' ? '+' : ch == '/' ? '.' : ch;
	}
	out[len] = '\0';
	return (int)len;
}

/* ---- parsing ---- */

static void set_err(char *err, size_t errlen, const char *name, unsigned line, const char *what,
		    const char *tok, size_t toklen)
{
	if (tok)
		snprintf(err, errlen, "%s:%u: %s '%.*s'", name, line, what,
			 (int)(toklen > 100 ? 100 : toklen), tok);
	else
		snprintf(err, errlen, "%s:%u: %s", name, line, what);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The next word of [*p, e): returned with its length, *p moved past it and
 * the blanks that follow. */
static const char *word(const char **p, const char *e, size_t *n)
{
	const char *s = *p, *q = s;

	while (q < e && !is_space(*q))
		q++;
	*n = (size_t)(q - s);
	while (q < e && is_space(*q))
		q++;
	*p = q;
	return s;
}

static int parse_access(const char *w, size_t n)
{
	static const struct { const char *s; int a; } words[] = {
		{"read", ACL_READ}, {"write", ACL_WRITE},
		{"readwrite", ACL_READ | ACL_WRITE}, {"deny", 0},
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].s) == n && memcmp(words[i].s, w, n) == 0)
			return words[i].a;
	return -1;
}

static bool keyword(const char *w, size_t n, const char *k)
{
	return strlen(k) == n && memcmp(w, k, n) == 0;
}

static char *dup_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int add_rule(struct acl *a, const struct acl_rule *r)
{
	if (grow(&a->rules, &a->cap, a->n, sizeof(*a->rules), 16) < 0)
		return ACL_ENOMEM;
	a->rules[a->n++] = *r;
	return ACL_OK;
}

static int add_name(struct acl *a, const char *s, size_t n, const char **out)
{
	if (grow(&a->names, &a->namecap, a->nnames, sizeof(*a->names), 8) < 0)
		return ACL_ENOMEM;
	if (!(a->names[a->nnames] = dup_n(s, n)))
		return ACL_ENOMEM;
	*out = a->names[a->nnames++];
	return ACL_OK;
}

/* One line, without its newline and leading blanks, not empty or a comment. */
static int parse_line(struct acl *a, const char *p, const char *e, const char *name,
		      unsigned line, const char **user, char *err, size_t errlen)
{
	size_t kn, an;
	const char *k = word(&p, e, &kn);
	struct acl_rule r = {0};

	while (e > p && is_space(e[-1]))
		e--;
	if (keyword(k, kn, "user")) {
		if (p == e) {
			set_err(err, errlen, name, line, "user without a name", NULL, 0);
			return ACL_ESYNTAX;
		}
		return add_name(a, p, (size_t)(e - p), user);
	}
	if (keyword(k, kn, "topic"))
		r.scope = *user ? SCOPE_USER : SCOPE_ANON;
	else if (keyword(k, kn, "pattern"))
		r.scope = SCOPE_PATTERN;
	else if (keyword(k, kn, "queue")) {
		r.scope = *user ? SCOPE_USER : SCOPE_ANON;
		r.kind = ACL_QUEUE;
	} else {
		set_err(err, errlen, name, line, "unknown keyword", k, kn);
		return ACL_ESYNTAX;
	}
	r.user = *user;
	r.access = ACL_READ | ACL_WRITE;   /* omitted access: readwrite, as in Mosquitto */
	const char *save = p, *w = word(&p, e, &an);
	int acc = an ? parse_access(w, an) : -1;

	if (acc >= 0 && p < e)
		r.access = (uint8_t)acc;
	else if (acc >= 0) {
		set_err(err, errlen, name, line, "access without a filter after it", w, an);
		return ACL_ESYNTAX;
	} else
		p = save;
	if (p == e) {
		set_err(err, errlen, name, line, "missing filter", NULL, 0);
		return ACL_ESYNTAX;
	}
	r.flen = (size_t)(e - p);
	if (!(r.filter = malloc(r.flen + 1)))
		return ACL_ENOMEM;
	if (r.kind == ACL_QUEUE)
		acl_queue_key(p, r.flen, r.filter, r.flen + 1);
	else {
		memcpy(r.filter, p, r.flen);
		r.filter[r.flen] = '\0';
	}
	if (!filter_valid(r.filter, r.flen)) {
		set_err(err, errlen, name, line,
			r.kind == ACL_QUEUE ? "invalid queue name" : "invalid topic filter", p,
			r.flen);
		free(r.filter);
		return ACL_ESYNTAX;
	}
	r.subst = r.scope == SCOPE_PATTERN && (strstr(r.filter, "%u") || strstr(r.filter, "%c"));
	if (add_rule(a, &r) < 0) {
		free(r.filter);
		return ACL_ENOMEM;
	}
	return ACL_OK;
}

struct acl *acl_parse(const char *text, size_t len, const char *name, int *code, char *err,
		      size_t errlen)
{
	struct acl *a = calloc(1, sizeof(*a));
	const char *p = text, *end = text + len, *user = NULL;
	unsigned line = 0;
	int rc = ACL_OK;

	if (!a) {
		rc = ACL_ENOMEM;
		goto fail;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;

		line++;
		if (memchr(p, '\0', (size_t)(e - p))) {
			set_err(err, errlen, name, line, "NUL byte in line", NULL, 0);
			rc = ACL_ESYNTAX;
			goto fail;
		}
		while (p < e && is_space(*p))
			p++;
		if (p < e && *p != '#' && (rc = parse_line(a, p, e, name, line, &user, err, errlen)) < 0)
			goto fail;
		p = nl ? nl + 1 : end;
	}
	if (code)
		*code = ACL_OK;
	return a;
fail:
	if (rc == ACL_ENOMEM)
		snprintf(err, errlen, "%s:%u: out of memory", name, line);
	if (code)
		*code = rc;
	acl_free(a);
	return NULL;
}

struct acl *acl_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	char *buf = NULL;
	size_t n = 0;
	struct acl *a = NULL;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (sb.st_size > (off_t)ACL_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, ACL_MAX_FILE);
		goto out;
	}
	/* One byte more than it claims: a file that grew meanwhile is cut
	 * there, and an empty one still gets a buffer. */
	if (!(buf = malloc((size_t)sb.st_size + 1))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(buf, 1, (size_t)sb.st_size + 1, f);
	if (ferror(f))
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else
		a = acl_parse(buf, n > (size_t)sb.st_size ? (size_t)sb.st_size : n, path, NULL, err,
			      errlen);
out:
	free(buf);
	fclose(f);
	return a;
}

void acl_free(struct acl *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->rules[i].filter);
	for (size_t i = 0; i < a->nnames; i++)
		free(a->names[i]);
	free(a->rules);
	free(a->names);
	free(a);
}

size_t acl_rule_count(const struct acl *a) { return a ? a->n : 0; }

/* ---- checks ---- */

/* A value put into a pattern must stay one level with no wildcards, or a
 * client could widen its own rules by choosing its id. */
static bool subst_safe(const char *v)
{
	return !strpbrk(v, "/+#");
}

enum applies { APPLIES_NO = 0, APPLIES_YES, APPLIES_UNSAFE };

/* Does r apply to this client? *f / *flen: its filter, substituted into buf. */
static enum applies rule_for(const struct acl_rule *r, enum acl_kind kind, const char *login,
			     const char *cid, char *buf, const char **f, size_t *flen)
{
	if (r->kind != kind)
		return APPLIES_NO;
	if (r->scope == SCOPE_ANON && login)
		return APPLIES_NO;
	if (r->scope == SCOPE_USER && (!login || strcmp(r->user, login) != 0))
		return APPLIES_NO;
	*f = r->filter;
	*flen = r->flen;
	if (!r->subst)
		return APPLIES_YES;
	size_t o = 0;

	for (size_t i = 0; i < r->flen; i++) {
		const char *v = NULL;

		if (r->filter[i] == '%' && i + 1 < r->flen &&
		    (r->filter[i + 1] == 'u' || r->filter[i + 1] == 'c')) {
			v = r->filter[i + 1] == 'u' ? login : cid;
			if (!v || !*v)
				return APPLIES_NO;
			if (!subst_safe(v))
				return APPLIES_UNSAFE;
			size_t vn = strlen(v);

			if (o + vn >= ACL_MAX_NAME)
				return APPLIES_UNSAFE;
			memcpy(buf + o, v, vn);
			o += vn;
			i++;
			continue;
		}
		if (o + 1 >= ACL_MAX_NAME)
			return APPLIES_UNSAFE;
		buf[o++] = r->filter[i];
	}
	buf[o] = '\0';
	*f = buf;
	*flen = o;
	return APPLIES_YES;
}

bool acl_check(const struct acl *a, const char *login, const char *client_id,
	       enum acl_kind kind, const char *name, size_t len, enum acl_access access)
{
	char buf[ACL_MAX_NAME];
	bool allowed = false;

	if (!a)
		return true;
	for (size_t i = 0; i < a->n; i++) {
		const struct acl_rule *r = &a->rules[i];
		const char *f;
		size_t fn;
		enum applies ap = rule_for(r, kind, login, client_id, buf, &f, &fn);

		if (ap == APPLIES_NO)
			continue;
		/* An unsafe substitution fails closed for a deny rule. */
		if (ap == APPLIES_UNSAFE) {
			if (!r->access)
				return false;
			continue;
		}
		if (!acl_filter_within(name, len, f, fn))
			continue;
		if (!r->access)
			return false;
		if (r->access & access)
			allowed = true;
	}
	return allowed;
}

enum acl_sub acl_check_sub(const struct acl *a, const char *login, const char *client_id,
			   const char *filter, size_t len)
{
	char buf[ACL_MAX_NAME];
	bool some = false, whole = false, deny_near = false;

	if (!a)
		return ACL_SUB_ALL;
	for (size_t i = 0; i < a->n; i++) {
		const struct acl_rule *r = &a->rules[i];
		const char *f;
		size_t fn;
		enum applies ap = rule_for(r, ACL_TOPIC, login, client_id, buf, &f, &fn);

		if (ap == APPLIES_NO)
			continue;
		if (ap == APPLIES_UNSAFE) {
			if (!r->access)
				return ACL_SUB_DENIED;
			continue;
		}
		if (!r->access) {
			if (acl_filter_within(filter, len, f, fn))
				return ACL_SUB_DENIED;
			if (acl_filters_intersect(filter, len, f, fn))
				deny_near = true;
			continue;
		}
		if (!(r->access & ACL_READ) || !acl_filters_intersect(filter, len, f, fn))
			continue;
		some = true;
		if (acl_filter_within(filter, len, f, fn))
			whole = true;
	}
	if (!some)
		return ACL_SUB_DENIED;
	return whole && !deny_near ? ACL_SUB_ALL : ACL_SUB_CHECK;
}
