/* Unit tests for storage/store_acks.c: answers wait only when they must,
 * come out in request order, a failed commit reaches only the request that
 * wrote, and a detached owner hears nothing more. Each test runs against an
 * in-memory store, completions driven by store_flush_sync. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "store.h"
#include "store_acks.h"

/* What the owner heard, in order. */
struct heard {
	unsigned n;
	char names[16];
	enum store_status st[16];
	unsigned pending_after[16];  /* store_acks_pending inside the callback */
	struct store_acks *acks;
};

static void on_ack(void *owner, const void *payload, enum store_status st)
{
	struct heard *h = owner;
	assert_true(h->n < 16);
	h->names[h->n] = payload ? *(const char *)payload : '-';
	h->st[h->n] = st;
	h->pending_after[h->n] = store_acks_pending(h->acks);
	h->n++;
}

struct fixture {
	struct store *st;
	struct store_acks acks;
	struct heard heard;
};

static int setup(void **state)
{
	static struct fixture f;
	char err[200];
	memset(&f, 0, sizeof(f));
	f.st = store_open(":memory:", STORE_SYNC_FULL, NULL, err, sizeof(err));
	assert_non_null(f.st);
	store_acks_init(&f.acks, f.st, on_ack, &f.heard);
	f.heard.acks = &f.acks;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_acks_detach(&f->acks);
	store_close(f->st);
	return 0;
}

/* A request that wrote: a row for it, and the mark taken before. */
static uint64_t write_one(struct fixture *f, const char *topic)
{
	uint64_t since = store_submitted(f->st);
	assert_int_equal(store_del_retained(f->st, topic, NULL, NULL), 0);
	return since;
}

static void test_nothing_written_nothing_waits(void **state)
{
	struct fixture *f = *state;
	assert_false(store_acks_must_wait(&f->acks, false));
	assert_true(store_acks_must_wait(&f->acks, true));
	assert_false(store_acks_pending(&f->acks));
}

static void test_order_kept(void **state)
{
	struct fixture *f = *state;
	store_test_pause(f->st, true);
	uint64_t since = write_one(f, "a");
	assert_int_equal(store_acks_after(&f->acks, since, true, "A", 1), 0);
	/* B wrote nothing, but A waits: B must wait behind it. */
	assert_true(store_acks_must_wait(&f->acks, false));
	assert_int_equal(store_acks_after(&f->acks, store_submitted(f->st), false,
					  "B", 1), 0);
	since = write_one(f, "c");
	assert_int_equal(store_acks_after(&f->acks, since, true, NULL, 0), 0);
	assert_true(store_acks_pending(&f->acks));
	assert_int_equal(f->heard.n, 0);
	store_test_pause(f->st, false);
	store_flush_sync(f->st);
	assert_int_equal(f->heard.n, 3);
	assert_memory_equal(f->heard.names, "AB-", 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(f->heard.st[i], STORE_OK);
	assert_int_equal(f->heard.pending_after[0], 1);
	assert_int_equal(f->heard.pending_after[1], 1);
	assert_int_equal(f->heard.pending_after[2], 0);
	assert_false(store_acks_pending(&f->acks));
	assert_false(store_acks_must_wait(&f->acks, false));
}

/* One batch fails: A wrote and hears the error; B, queued in the same
 * batch without writing, hears STORE_OK; C, in a later batch, too. */
static void test_failure_only_to_the_writer(void **state)
{
	struct fixture *f = *state;
	store_test_pause(f->st, true);
	uint64_t since = write_one(f, "a");
	assert_int_equal(store_acks_after(&f->acks, since, true, "A", 1), 0);
	assert_int_equal(store_acks_after(&f->acks, store_submitted(f->st), false,
					  "B", 1), 0);
	store_test_fail_next_commit(f->st, STORE_ERR_IO);
	store_test_pause(f->st, false);
	store_flush_sync(f->st);
	since = write_one(f, "c");
	assert_int_equal(store_acks_after(&f->acks, since, true, "C", 1), 0);
	store_flush_sync(f->st);
	assert_int_equal(f->heard.n, 3);
	assert_memory_equal(f->heard.names, "ABC", 3);
	assert_int_equal(f->heard.st[0], STORE_ERR_IO);
	assert_int_equal(f->heard.st[1], STORE_OK);
	assert_int_equal(f->heard.st[2], STORE_OK);
}

static void test_detach(void **state)
{
	struct fixture *f = *state;
	store_test_pause(f->st, true);
	uint64_t since = write_one(f, "a");
	assert_int_equal(store_acks_after(&f->acks, since, true, "A", 1), 0);
	assert_int_equal(store_acks_after(&f->acks, since, false, "B", 1), 0);
	store_acks_detach(&f->acks);
	assert_false(store_acks_pending(&f->acks));
	store_test_pause(f->st, false);
	assert_int_equal(store_flush_sync(f->st), 3);   /* the write, two barriers */
	assert_int_equal(f->heard.n, 0);
}

/* The payload is a copy: the caller's buffer may change at once. */
static void test_payload_copied(void **state)
{
	struct fixture *f = *state;
	char buf[2] = "X";
	uint64_t since = write_one(f, "a");
	assert_int_equal(store_acks_after(&f->acks, since, true, buf, sizeof(buf)), 0);
	buf[0] = 'Y';
	store_flush_sync(f->st);
	assert_int_equal(f->heard.n, 1);
	assert_int_equal(f->heard.names[0], 'X');
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_nothing_written_nothing_waits),
		T(test_order_kept),
		T(test_failure_only_to_the_writer),
		T(test_detach),
		T(test_payload_copied),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
