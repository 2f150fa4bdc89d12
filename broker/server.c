#include "server.h"
#include "auth/acl.h"
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "net/conn_module.h"
#include "net/tls.h"
#include "log.h"
#include "notify.h"
#include "protocol.h"
#include "route/router.h"
#include "store.h"
#include <event2/thread.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct server;

struct listener {
	struct evconnlistener *ev;
	struct cfg_listener spec;
	char bound[80];          /* "127.0.0.1:40123" */
	struct server *s;
	struct event *retry;     /* re-enables accepting after a pause */
	struct log_flood flood;  /* failed accepts: one line a second */
	uint64_t failing;        /* failed accepts since the last one that worked */
};

struct server {
	struct event_base *base;
	struct cfg cfg;
	struct listener listeners[CFG_MAX_LISTENERS];
	size_t nlisteners;
	struct router *router;
	struct store *store;
	struct proto_env env;
	struct acl_holder acl;       /* env.acl points here */
	struct event *sig_int, *sig_term, *sig_hup, *stop_timer, *housekeeping;
	int argc;
	char **argv;
	void (*prepare)(struct cfg *);
	bool stopping;
};

static void pause_accepting(struct listener *li);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *li = arg;
	if (li->s->stopping)
		return;
	if (conn_count() >= li->s->cfg.max_connections)
		pause_accepting(li);    /* still full: let them wait in the backlog */
	else
		evconnlistener_enable(li->ev);
}

/* Stop accepting on this listener for accept_retry_ms. Out of descriptors
 * (or at max_connections), accepting again at once would fail again at
 * once: the loop would spin and the log fill. Meanwhile new clients wait in
 * the kernel's backlog; already connected ones are served as usual. */
static void pause_accepting(struct listener *li)
{
	if (!li->retry && !(li->retry = evtimer_new(li->s->base, retry_cb, li)))
		return;
	evconnlistener_disable(li->ev);
	uint32_t ms = li->s->cfg.accept_retry_ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(li->retry, &tv);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct listener *li = arg;
	uint64_t held;
	if (li->failing) {
		log_info(NULL, NULL, "accept on %s works again after %llu failed attempts", li->bound,
			 (unsigned long long)li->failing);
		li->failing = 0;
	}
	int r = conn_accept(fd, sa, socklen, li->spec.kind);
	if (r != CONN_ACCEPT_FULL && conn_count() < li->s->cfg.max_connections)
		return;
	/* Full: the next client would only be accepted to be closed. */
	pause_accepting(li);
	if (r != CONN_ACCEPT_FULL && log_flood_ok(&li->flood, clock_now_ms(), &held))
		log_warn(NULL, NULL, "max_connections %zu reached: %s accepts again every %u ms once "
			 "connections close; new clients wait meanwhile", li->s->cfg.max_connections,
			 li->bound, li->s->cfg.accept_retry_ms);
}

/* libevent has already retried what is worth retrying (EINTR, EAGAIN,
 * ECONNABORTED); what is left (EMFILE, ENFILE, ENOBUFS, ENOMEM) does not
 * go away by itself. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct listener *li = arg;
	int err = EVUTIL_SOCKET_ERROR();
	uint64_t held;
	conn_refusal_count(CONN_REFUSED_ACCEPT_FAILED);
	li->failing++;
	pause_accepting(li);
	if (log_flood_ok(&li->flood, clock_now_ms(), &held))
		log_error(NULL, NULL, "accept on %s failed: %s; accepting paused for %u ms at a time "
			  "(%llu more failures in the last second, %llu in all)", li->bound,
			  evutil_socket_error_to_string(err), li->s->cfg.accept_retry_ms,
			  (unsigned long long)held,
			  (unsigned long long)conn_refusals(CONN_REFUSED_ACCEPT_FAILED));
}

/* Start-up: take every descriptor the hard limit allows, and say so when
 * max_connections could not be reached with them. */
#define FD_RESERVE 32    /* database, its journal, listeners, the loop's own, stdio */
static void raise_nofile(const struct cfg *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			log_warn(NULL, NULL, "cannot raise the open-files limit from %llu to %llu: %s",
				 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
				 strerror(errno));
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	unsigned long long reserve = FD_RESERVE + cfg->nlisteners;
	unsigned long long usable = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0;
	if (cfg->max_connections > usable)
		log_warn(NULL, NULL, "max_connections %zu is above what the open-files limit of %llu "
			 "allows (about %llu connections); past it accepting pauses. Raise the limit "
			 "(LimitNOFILE= in the unit, ulimit -n) or lower max_connections",
			 cfg->max_connections, (unsigned long long)rl.rlim_cur, usable);
	else
		log_info(NULL, NULL, "open-files limit %llu", (unsigned long long)rl.rlim_cur);
}

static int bind_one(struct server *s, struct listener *li, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, li->spec.addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(li->spec.port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, li->spec.addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(li->spec.port);
		sl = sizeof(*s6);
	} else {
		snprintf(err, errlen, "listener %s: not a numeric address", li->spec.addr);
		return -1;
	}
	li->ev = evconnlistener_new_bind(s->base, accept_cb, li,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, (int)sl);
	if (!li->ev) {
		snprintf(err, errlen, "cannot listen on %s:%u (%s): %s", li->spec.addr, li->spec.port,
			 cfg_listener_kind_name(li->spec.kind), strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(li->ev, accept_error_cb);
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	getsockname(evconnlistener_get_fd(li->ev), (struct sockaddr *)&got, &gl);
	char ip[INET6_ADDRSTRLEN];
	if (got.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, ip, sizeof(ip));
		snprintf(li->bound, sizeof(li->bound), "[%s]:%u", ip,
			 ntohs(((struct sockaddr_in6 *)&got)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, ip, sizeof(ip));
		snprintf(li->bound, sizeof(li->bound), "%s:%u", ip,
			 ntohs(((struct sockaddr_in *)&got)->sin_port));
	}
	log_info(NULL, NULL, "listening on %s (%s)", li->bound, cfg_listener_kind_name(li->spec.kind));
	return 0;
}

static int write_port_file(struct server *s, char *err, size_t errlen)
{
	if (!s->cfg.port_file[0])
		return 0;
	char tmp[520];
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->cfg.port_file);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "port file %.400s: %s", tmp, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->nlisteners; i++)
		fprintf(f, "%s %s\n", cfg_listener_kind_name(s->listeners[i].spec.kind),
			s->listeners[i].bound);
	/* Written whole and then renamed, so a reader never sees half a file. */
	if (fclose(f) != 0 || rename(tmp, s->cfg.port_file) != 0) {
		snprintf(err, errlen, "port file %.400s: %s", s->cfg.port_file, strerror(errno));
		return -1;
	}
	return 0;
}

/* Open the database and let each protocol load what it kept, before any
 * client can connect. */
static int open_store(struct server *s)
{
	char err[600];
	uint64_t t0 = clock_now_ms();

	const struct store_log log = {.fn = log_sink};
	s->store = store_open(s->cfg.db_path, (enum store_sync)s->cfg.sync, &log, err,
			      sizeof(err));
	if (!s->store) {
		fprintf(stderr, "wsbroker: database: %s\n", err);
		log_error(NULL, NULL, "database: %s", err);
		return -1;
	}
	if (store_attach_loop(s->store, s->base) < 0) {
		log_error(NULL, NULL, "database: out of memory");
		return -1;
	}
	s->env.store = s->store;
	if (protocol_init_all(&s->env, err, sizeof(err)) < 0) {
		fprintf(stderr, "wsbroker: %s\n", err);
		log_error(NULL, NULL, "%s", err);
		return -1;
	}
	for (size_t i = 0; i < protocol_count(); i++) {
		const struct protocol *p = protocol_at(i);

		if (p->restore && p->restore(protocol_env(p)) < 0) {
			fprintf(stderr, "wsbroker: database %s: %s state could not be loaded\n",
				s->cfg.db_path, p->name);
			return -1;
		}
	}
	log_info(NULL, NULL, "database %s opened and loaded in %llu ms", s->cfg.db_path,
		 (unsigned long long)(clock_now_ms() - t0));
	return 0;
}

static void all_gone(void *arg)
{
	struct server *s = arg;
	event_base_loopexit(s->base, NULL);
}

/* Deadlines no connection drives, such as an absent session's expiry, are
 * met within a second by this timer, not only at the next CONNECT. */
static void housekeeping_cb(evutil_socket_t fd, short what, void *arg)
{
	for (size_t i = 0; i < protocol_count(); i++) {
		const struct protocol *p = protocol_at(i);

		if (p->housekeeping)
			p->housekeeping(protocol_env(p));
	}
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	log_warn(NULL, NULL, "%zu connections still open after shutdown_timeout_ms; closing them",
		 conn_count());
	event_base_loopexit(s->base, NULL);
}

static void begin_stop(struct server *s, const char *signame)
{
	if (s->stopping)
		return;
	s->stopping = true;
	notify_stopping();
	log_info(NULL, NULL, "%s: stopping (%zu connections)", signame, conn_count());
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_disable(s->listeners[i].ev);
	s->stop_timer = evtimer_new(s->base, stop_timeout_cb, s);
	struct timeval tv = {(time_t)(s->cfg.shutdown_timeout_ms / 1000),
			     (suseconds_t)(s->cfg.shutdown_timeout_ms % 1000) * 1000};
	evtimer_add(s->stop_timer, &tv);
	conn_shutdown_all(all_gone, s);
}

/* The acl_file named in c, or NULL with *ok true when none is set. */
static struct acl *load_acl(const struct cfg *c, bool *ok, char *err, size_t errlen)
{
	struct acl *a = NULL;

	*ok = true;
	if (c->acl_file[0] && !(a = acl_load(c->acl_file, err, errlen)))
		*ok = false;
	return a;
}

/* Sessions see the new rules at their next check; what a subscription
 * cached is dropped because the generation changed. */
static void install_acl(struct server *s, struct acl *a)
{
	acl_free(s->acl.acl);
	s->acl.acl = a;
	s->acl.generation++;
}

static void reload_config(struct server *s)
{
	struct cfg next;
	char err[600];
	cfg_defaults(&next);
	if (s->prepare)
		s->prepare(&next);
	if (cfg_parse_args(&next, s->argc, s->argv, err, sizeof(err)) != 0) {
		log_error(NULL, NULL, "SIGHUP: configuration not reloaded: %s", err);
		return;
	}
	if (auth_configure(&next, err, sizeof(err)) < 0) {
		log_error(NULL, NULL, "SIGHUP: users not reloaded: %s", err);
		return;
	}
	bool acl_ok;
	struct acl *acl = load_acl(&next, &acl_ok, err, sizeof(err));

	if (!acl_ok) {
		log_error(NULL, NULL, "SIGHUP: configuration not reloaded, the ACLs in force stay: %s",
			  err);
		return;
	}
	install_acl(s, acl);
	if (acl)
		log_info(NULL, NULL, "SIGHUP: %zu ACL rules from %s", acl_rule_count(acl),
			 next.acl_file);
	/* A certificate or key that does not load keeps the running context
	 * (and its settings); the rest of the reload goes on. */
	struct tls_ctx *tls;
	if (tls_ctx_for(&next, &tls, err, sizeof(err)) < 0) {
		log_error(NULL, NULL, "SIGHUP: TLS not reloaded, the old certificate stays: %s", err);
		tls_keep_settings(&next, &s->cfg);
	} else {
		conn_set_tls(tls);
		if (tls)
			log_info(NULL, NULL, "SIGHUP: TLS certificate %s reloaded for new connections",
				 next.tls_cert);
	}
	/* Only the keys whose row says reload are taken; listeners stay. */
	char ignored[400];
	if (cfg_apply_reloadable(&s->cfg, &next, ignored, sizeof(ignored)) > 0)
		log_warn(NULL, NULL, "SIGHUP: changed but ignored until a restart: %s", ignored);
	log_set_level((enum log_level)s->cfg.log_level);
	log_info(NULL, NULL, "SIGHUP: configuration reloaded (log level %s)",
		 log_level_name((enum log_level)next.log_level));
}

/* systemd waits from RELOADING=1 until the next READY=1, whether or not the
 * new configuration was taken: a refused one leaves the old one running. */
static void reload(struct server *s)
{
	notify_reloading();
	reload_config(s);
	notify_ready();
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;
	if (sig == SIGHUP)
		reload(s);
	else
		begin_stop(s, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void server_free(struct server *s)
{
	conn_free_all();
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i].ev)
			evconnlistener_free(s->listeners[i].ev);
		if (s->listeners[i].retry)
			event_free(s->listeners[i].retry);
	}
	protocol_teardown_all();
	if (s->router)
		router_free(s->router);
	/* Last: it waits for every write queued by the sessions above. */
	store_close(s->store);
	struct event *evs[] = {s->sig_int, s->sig_term, s->sig_hup, s->stop_timer,
			       s->housekeeping};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	auth_reset();
	acl_free(s->acl.acl);
	if (s->base)
		event_base_free(s->base);
	free(s);
}

int server_run(int argc, char **argv, void (*prepare)(struct cfg *c))
{
	struct server *s = calloc(1, sizeof(*s));
	if (!s)
		return 1;
	s->argc = argc;
	s->argv = argv;
	s->prepare = prepare;
	cfg_defaults(&s->cfg);
	if (prepare)
		prepare(&s->cfg);
	char err[600];
	int rc = cfg_command_line(&s->cfg, argc, argv, stderr);
	if (rc != CFG_GO) {
		free(s);
		return rc;
	}
	log_set_level((enum log_level)s->cfg.log_level);
	if (s->cfg.action == CFG_ACTION_PRINT) {
		rc = cfg_print_settings(&s->cfg, stdout, stderr);
		free(s);
		return rc;
	}
	if (auth_configure(&s->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "wsbroker: %s\n", err);
		free(s);
		return 2;
	}
	bool acl_ok;
	s->acl.acl = load_acl(&s->cfg, &acl_ok, err, sizeof(err));
	s->acl.generation = 1;
	if (!acl_ok) {
		fprintf(stderr, "wsbroker: acl_file: %s\n", err);
		auth_reset();
		free(s);
		return 2;
	}
	struct tls_ctx *tls;
	if (tls_ctx_for(&s->cfg, &tls, err, sizeof(err)) < 0) {
		fprintf(stderr, "wsbroker: %s\n", err);
		acl_free(s->acl.acl);
		auth_reset();
		free(s);
		return 2;
	}
	if (s->cfg.action == CFG_ACTION_CHECK) {
		/* Valid as far as can be known without a socket or the database. */
		tls_ctx_free(tls);
		auth_reset();
		acl_free(s->acl.acl);
		rc = cfg_print_settings(&s->cfg, stdout, stderr);
		free(s);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	/* The store's writer thread wakes the loop: libevent must be thread
	 * aware before the base exists. */
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "wsbroker: libevent has no pthreads support\n");
		acl_free(s->acl.acl);
		tls_ctx_free(tls);
		free(s);
		return 1;
	}
	s->base = event_base_new();
	struct router_limits lim = {.queue_max_messages = s->cfg.queue_max_messages};
	s->router = router_new(&lim);
	if (!s->base || !s->router) {
		tls_ctx_free(tls);
		fprintf(stderr, "wsbroker: out of memory at start-up\n");
		server_free(s);
		return 1;
	}
	s->env.router = s->router;
	s->env.cfg = &s->cfg;
	s->env.acl = &s->acl;
	if (s->acl.acl)
		log_info(NULL, NULL, "%zu ACL rules from %s", acl_rule_count(s->acl.acl),
			 s->cfg.acl_file);
	if (open_store(s) < 0) {
		tls_ctx_free(tls);
		server_free(s);
		return 1;
	}
	conn_module_init(s->base, &s->cfg);
	raise_nofile(&s->cfg);
	conn_set_tls(tls);
	for (size_t i = 0; i < s->cfg.nlisteners; i++) {
		s->listeners[i].spec = s->cfg.listeners[i];
		s->listeners[i].s = s;
		s->nlisteners++;
		if (bind_one(s, &s->listeners[i], err, sizeof(err)) < 0) {
			log_error(NULL, NULL, "%s", err);
			server_free(s);
			return 1;
		}
	}
	if (write_port_file(s, err, sizeof(err)) < 0) {
		log_error(NULL, NULL, "%s", err);
		server_free(s);
		return 1;
	}
	s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
	s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
	s->sig_hup = evsignal_new(s->base, SIGHUP, signal_cb, s);
	s->housekeeping = event_new(s->base, -1, EV_PERSIST, housekeeping_cb, s);
	if (!s->sig_int || !s->sig_term || !s->sig_hup || !s->housekeeping) {
		log_error(NULL, NULL, "out of memory at start-up");
		server_free(s);
		return 1;
	}
	evsignal_add(s->sig_int, NULL);
	evsignal_add(s->sig_term, NULL);
	evsignal_add(s->sig_hup, NULL);
	struct timeval second = {1, 0};
	event_add(s->housekeeping, &second);
	log_info(NULL, NULL, "wsbroker %s ready (pid %d)", PACKAGE_VERSION, (int)getpid());
	/* Only now: the store is loaded, every listener bound and the port file
	 * in place, so whoever waits for READY=1 can connect at once. */
	notify_ready();
	event_base_dispatch(s->base);
	server_free(s);
	log_info(NULL, NULL, "stopped");
	return 0;
}
