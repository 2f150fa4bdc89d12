/* The protocol registry: subprotocol tokens compared exactly, sniffing
 * order and the "need more" answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "protocol.h"

static int sniff_a(const uint8_t *p, size_t n)
{
	if (n < 2)
		return n && p[0] == 'A' ? 0 : -1;
	return p[0] == 'A' && p[1] == 'A' ? 1 : -1;
}

static int sniff_b(const uint8_t *p, size_t n)
{
	return n && p[0] == 'B' ? 1 : -1;
}

static const char *const names_a[] = {"v12.alpha", "alpha", NULL};
static const char *const names_b[] = {"beta", NULL};
static const struct protocol pa = {.name = "alpha", .ws_names = names_a, .sniff = sniff_a};
static const struct protocol pb = {.name = "beta", .ws_names = names_b, .sniff = sniff_b};

static int setup(void **st)
{
	protocol_registry_clear();
	protocol_register(&pa);
	protocol_register(&pb);
	protocol_register(&pa); /* twice: still one entry */
	return 0;
}

static void test_find(void **st)
{
	assert_int_equal(protocol_count(), 2);
	assert_ptr_equal(protocol_find("beta"), &pb);
	assert_null(protocol_find("gamma"));
	const char *canon = NULL;
	assert_ptr_equal(protocol_find_ws("alpha", 5, &canon), &pa);
	assert_string_equal(canon, "alpha");
	assert_ptr_equal(protocol_find_ws("v12.alpha", 9, &canon), &pa);
	assert_string_equal(canon, "v12.alpha");
	/* exact tokens only: prefixes, longer strings and case differ */
	assert_null(protocol_find_ws("alp", 3, NULL));
	assert_null(protocol_find_ws("alphas", 6, NULL));
	assert_null(protocol_find_ws("ALPHA", 5, NULL));
	assert_null(protocol_find_ws("alpha", 4, NULL));
}

static void test_sniff(void **st)
{
	int more;
	assert_null(protocol_sniff((const uint8_t *)"A", 1, &more));
	assert_int_equal(more, 1);
	assert_ptr_equal(protocol_sniff((const uint8_t *)"AA", 2, &more), &pa);
	assert_ptr_equal(protocol_sniff((const uint8_t *)"Bx", 2, &more), &pb);
	assert_null(protocol_sniff((const uint8_t *)"Z", 1, &more));
	assert_int_equal(more, 0);
}

static void test_names_list(void **st)
{
	char buf[64];
	size_t n = protocol_ws_names_list(buf, sizeof(buf));
	assert_string_equal(buf, "v12.alpha, alpha, beta");
	assert_int_equal(n, strlen(buf));
	char small[12];
	protocol_ws_names_list(small, sizeof(small));
	assert_string_equal(small, "v12.alpha"); /* whole names only */
}

/* A protocol with broker-wide state: each init makes its own instance,
 * every later call sees it in env->state, teardown gets it back. */
static int torn_down;

static void *counter_init(const struct proto_env *env)
{
	static int made;
	int *state = malloc(sizeof(*state));
	if (state)
		*state = ++made;
	return state;
}

static void counter_teardown(const struct proto_env *env)
{
	torn_down += *(int *)env->state;
	free(env->state);
}

static void *failing_init(const struct proto_env *env) { return NULL; }

static const struct protocol pc = {.name = "counter", .init = counter_init,
				   .teardown = counter_teardown};
static const struct protocol pd = {.name = "failing", .init = failing_init,
				   .teardown = counter_teardown};

static void test_env_state(void **st)
{
	int router_stand_in;
	struct proto_env base = {.router = (struct router *)&router_stand_in};
	char err[100];

	protocol_register(&pc);
	assert_int_equal(protocol_init_all(&base, err, sizeof(err)), 0);
	const struct proto_env *ea = protocol_env(&pa), *ec = protocol_env(&pc);
	assert_non_null(ea);
	assert_ptr_equal(ea->router, base.router);
	assert_null(ea->state);                  /* no init, no state */
	assert_ptr_equal(ec->router, base.router);
	assert_non_null(ec->state);
	int first = *(int *)ec->state;
	torn_down = 0;
	protocol_teardown_all();
	assert_int_equal(torn_down, first);
	assert_null(protocol_env(&pc)->state);
	/* a second start is a second, independent instance */
	assert_int_equal(protocol_init_all(&base, err, sizeof(err)), 0);
	assert_int_equal(*(int *)protocol_env(&pc)->state, first + 1);
	protocol_teardown_all();

	/* a failing init names the protocol, and teardown skips it */
	protocol_register(&pd);
	assert_int_equal(protocol_init_all(&base, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "failing"));
	torn_down = 0;
	protocol_teardown_all();
	assert_int_equal(torn_down, first + 2);  /* counter's third instance only */
	assert_null(protocol_env(&pd)->state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_find, setup),
		cmocka_unit_test_setup(test_sniff, setup),
		cmocka_unit_test_setup(test_names_list, setup),
		cmocka_unit_test_setup(test_env_state, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
