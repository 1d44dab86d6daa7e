/* SPDX-License-Identifier: MIT */
/*
 * One ring, three threads, as the kernel allows: a submitter (NOPs and
 * namespace reads), a waiter in enter(GETEVENTS, min_complete 1) that reaps
 * every CQE, and a registering thread (files register/unregister, probe).
 * Checked: every request completes exactly once, with its result; the ring
 * indices stay consistent. Plain and IOPOLL rings.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "abi/ring.h"
#include "tests/unit/test_uring_util.h"

#define TOTAL 4000u

struct shared {
	struct tu_ring r;
	int nsfd;
	uint8_t *buf;             /* 512 bytes per request slot */
	_Atomic unsigned reaped, done_submitting;
	uint8_t seen[TOTAL];
	int bad_res;
	pthread_mutex_t sq_lock;  /* SQ producer side: one submitter at a time */
};

static void *submitter(void *arg)
{
	struct shared *s = arg;
	for (unsigned i = 0; i < TOTAL;) {
		unsigned in_flight = i - atomic_load(&s->reaped);
		if (in_flight >= s->r.p.sq_entries) {   /* the CQ has room for all */
			sched_yield();
			continue;
		}
		struct io_uring_sqe *sqe = tu_sqe(&s->r);
		if (!sqe) {
			sched_yield();
			continue;
		}
		if (i % 3 == 0) {
			sqe->opcode = IORING_OP_NOP;
		} else {
			sqe->opcode = IORING_OP_READ;
			sqe->fd = s->nsfd;
			sqe->addr = (uintptr_t)(s->buf + (i % 64) * 512);
			sqe->len = 512;
			sqe->off = (i % 2048) * 512ull;
		}
		sqe->user_data = i;
		tu_flush(&s->r);
		int ret = tu_enter(&s->r, 1, 0, 0, NULL, 0);
		assert_int_equal(ret, 1);
		i++;
	}
	atomic_store(&s->done_submitting, 1);
	return NULL;
}

static void *waiter(void *arg)
{
	struct shared *s = arg;
	while (atomic_load(&s->reaped) < TOTAL) {
		int ret = tu_enter(&s->r, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		assert_true(ret == 0);
		struct io_uring_cqe c;
		while (tu_cqe(&s->r, &c)) {
			assert_true(c.user_data < TOTAL);
			s->seen[c.user_data]++;
			int want = c.user_data % 3 == 0 ? 0 : 512;
			if (c.res != want)
				s->bad_res++;
			atomic_fetch_add(&s->reaped, 1);
		}
	}
	return NULL;
}

static void *registrar(void *arg)
{
	struct shared *s = arg;
	struct io_uring_probe *p = calloc(1, sizeof(*p) + 256 * sizeof(struct io_uring_probe_op));
	while (!atomic_load(&s->done_submitting)) {
		int fds[2] = { s->nsfd, -1 };
		assert_int_equal(tu_register(&s->r, IORING_REGISTER_FILES, fds, 2), 0);
		assert_int_equal(tu_register(&s->r, IORING_UNREGISTER_FILES, NULL, 0), 0);
		memset(p, 0, sizeof(*p) + 256 * sizeof(struct io_uring_probe_op));
		assert_int_equal(tu_register(&s->r, IORING_REGISTER_PROBE, p, 256), 0);
		assert_true(p->ops_len > IORING_OP_READ);
	}
	free(p);
	return NULL;
}

static void run(unsigned setup_flags)
{
	struct tu_env e;
	struct nvme_model_cfg cfg = { .ns_blocks = 4096 };
	tu_attach(&e, &cfg);
	struct shared *s = calloc(1, sizeof(*s));
	struct io_uring_params p = { .flags = setup_flags };
	assert_true(tu_ring_init(&s->r, e.c, 16, &p) >= 0);
	s->nsfd = nvr_ns_open(e.c, 1);
	assert_true(s->nsfd >= 0);
	s->buf = malloc(64 * 512);
	pthread_t a, b, c;
	assert_int_equal(pthread_create(&b, NULL, waiter, s), 0);
	assert_int_equal(pthread_create(&c, NULL, registrar, s), 0);
	assert_int_equal(pthread_create(&a, NULL, submitter, s), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_join(c, NULL);
	assert_int_equal(s->bad_res, 0);
	for (unsigned i = 0; i < TOTAL; i++)
		assert_int_equal(s->seen[i], 1);
	/* indices: everything consumed and reaped, nothing dropped */
	assert_int_equal(*s->r.sq_head, *s->r.sq_tail);
	assert_int_equal(*s->r.cq_head, *s->r.cq_tail);
	assert_int_equal(*s->r.sq_dropped, 0);
	assert_int_equal(*s->r.cq_overflow, 0);
	nvr_ns_close(s->nsfd);
	tu_ring_exit(&s->r);
	free(s->buf);
	free(s);
	tu_detach(&e);
}

/* The ring's lock (abi/ring.h ur_lock()) excludes: four threads add to a
 * plain counter under it, with sched_yield() inside the critical section
 * now and then so that others find it held, sleep on the futex and must
 * be woken; every increment is counted and the lock ends free. */
#define LOCK_THREADS 4
#define LOCK_ROUNDS  20000u
static struct ur_lock t_lock;
static unsigned long t_count;
static _Atomic unsigned t_contended;

static void *locker(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < LOCK_ROUNDS; i++) {
		ur_lock(&t_lock);
		unsigned long c = t_count;
		if (i % 64 == 0) {
			sched_yield();
			if (atomic_load_explicit(&t_lock.v, memory_order_relaxed) == 2)
				atomic_fetch_add(&t_contended, 1);
		}
		t_count = c + 1;
		ur_unlock(&t_lock);
	}
	return NULL;
}

static void test_ring_lock_excludes(void **state)
{
	(void)state;
	ur_lock_init(&t_lock);
	pthread_t th[LOCK_THREADS];
	for (int i = 0; i < LOCK_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, locker, NULL), 0);
	for (int i = 0; i < LOCK_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(t_count, (unsigned long)LOCK_THREADS * LOCK_ROUNDS);
	assert_int_equal(atomic_load(&t_lock.v), 0);
	print_message("ring lock: %u yields found waiters\n", atomic_load(&t_contended));
}

static void test_plain_ring_three_threads(void **state) { (void)state; run(0); }
static void test_iopoll_ring_three_threads(void **state) { (void)state; run(IORING_SETUP_IOPOLL); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_lock_excludes),
		cmocka_unit_test(test_plain_ring_three_threads),
		cmocka_unit_test(test_iopoll_ring_three_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
