/* Unit tests for log.c's flood limiter: refusals that come in floods log
 * at most one line a second, and the next line says how many were held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

static void first_event_logs(void **state)
{
	struct log_flood f = {0};
	uint64_t held = 99;
	assert_true(log_flood_ok(&f, 0, &held));   /* even at time 0 */
	assert_int_equal(held, 0);
}

static void a_flood_is_one_line_a_second_with_the_count(void **state)
{
	struct log_flood f = {0};
	uint64_t held = 0;
	int lines = 0;
	/* 10,000 events over 3.5 s, one every 350 us. */
	for (uint64_t i = 0; i < 10000; i++) {
		if (log_flood_ok(&f, 5000 + i * 35 / 100, &held)) {
			lines++;
			if (lines > 1)
				assert_true(held > 2500 && held < 3000);
		}
	}
	assert_int_equal(lines, 4);
}

static void a_quiet_second_lets_the_next_one_through(void **state)
{
	struct log_flood f = {0};
	uint64_t held = 0;
	assert_true(log_flood_ok(&f, 1000, &held));
	assert_false(log_flood_ok(&f, 1999, &held));
	assert_false(log_flood_ok(&f, 1500, &held));
	assert_true(log_flood_ok(&f, 2000, &held));
	assert_int_equal(held, 2);
	assert_true(log_flood_ok(&f, 60000, &held));
	assert_int_equal(held, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_event_logs),
		cmocka_unit_test(a_flood_is_one_line_a_second_with_the_count),
		cmocka_unit_test(a_quiet_second_lets_the_next_one_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
