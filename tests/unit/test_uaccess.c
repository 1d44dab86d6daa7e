/* SPDX-License-Identifier: MIT */
/*
 * abi/uaccess: the exception-table copy (uaccess_fault.c) against the
 * process_vm path (uaccess.c), whose results the VM difftest showed equal
 * to Linux 6.1's. Thousands of seeded layouts -- pages read-write,
 * read-only, PROT_NONE or unmapped, segments crossing them at any offset,
 * zero-length segments, NULL, non-canonical and kernel addresses, lengths
 * with the sign bit -- through the primitive and through every public
 * function: identical returns and identical bytes on both sides. Then the
 * signal handling: faults in another thread, faults that are not ours
 * going to the previous handler (or killing the process as SIG_DFL
 * would), a handler installed after ours and a thread that blocks
 * SIGSEGV making the copy fall back to process_vm.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "abi/ring.h"
#include "abi/uaccess.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define PG      4096u
#define NPAGES  8u
#define ARENA   (NPAGES * PG)
#define LOCAL   (3 * ARENA)
#define MAXSEG  1100   /* more than UR_UIO_MAXIOV, for the split */

static uint64_t rng = 0x9e3779b97f4a7c15ull;   /* fixed seed */
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

/* Skip when the fault path cannot be had (valgrind, not x86-64). */
static void need_fault_path(void)
{
	int ret = ur_uaccess_set_path(UR_UA_FAULT);
	if (ret == -ENOTSUP) {
		print_message("no exception-table copy here (valgrind or not x86-64): skipped\n");
		skip();
	}
	assert_int_equal(ret, 0);
	assert_true(ur_fault_usable());
}

enum prot { P_RW, P_RO, P_NONE, P_HOLE };

struct side {
	uint8_t *arena;        /* NPAGES pages laid out as prot[] */
	uint8_t *local;        /* our buffer, LOCAL bytes */
	struct iovec *iov;
};

static void side_map(struct side *s, uint64_t fill)
{
	/* a PROT_NONE page after it: segments running off the end fault
	 * the same on both sides */
	s->arena = mmap(NULL, ARENA + PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(s->arena != MAP_FAILED);
	assert_int_equal(mprotect(s->arena + ARENA, PG, PROT_NONE), 0);
	uint64_t x = fill;
	for (unsigned i = 0; i < ARENA; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		s->arena[i] = (uint8_t)(x >> 56);
	}
	for (unsigned i = 0; i < LOCAL; i++)
		s->local[i] = (uint8_t)(i * 7 + 3);
}

/* After both sides are mapped, so that one side's mmap() cannot fill
 * the other's holes. */
static void side_protect(struct side *s, const enum prot *prot)
{
	for (unsigned p = 0; p < NPAGES; p++) {
		uint8_t *a = s->arena + p * PG;
		if (prot[p] == P_RO)
			assert_int_equal(mprotect(a, PG, PROT_READ), 0);
		else if (prot[p] == P_NONE)
			assert_int_equal(mprotect(a, PG, PROT_NONE), 0);
		else if (prot[p] == P_HOLE)
			assert_int_equal(munmap(a, PG), 0);
	}
}

/* The two arenas' mapped pages hold the same bytes; then unmap them. */
static void sides_compare_free(struct side *a, struct side *b, const enum prot *prot, int ncase)
{
	for (unsigned p = 0; p < NPAGES; p++) {
		unsigned char vec;
		if (prot[p] == P_HOLE) {
			/* still a hole: nothing was mapped there meanwhile */
			if (!mincore(a->arena + p * PG, PG, &vec) || !mincore(b->arena + p * PG, PG, &vec))
				fail_msg("case %d: hole at page %u was mapped during the case", ncase, p);
			continue;
		}
		assert_int_equal(mprotect(a->arena + p * PG, PG, PROT_READ), 0);
		assert_int_equal(mprotect(b->arena + p * PG, PG, PROT_READ), 0);
		if (memcmp(a->arena + p * PG, b->arena + p * PG, PG))
			fail_msg("case %d: user page %u differs", ncase, p);
	}
	if (memcmp(a->local, b->local, LOCAL))
		{ size_t k = 0; while (a->local[k] == b->local[k]) k++; fail_msg("case %d: our buffer differs at %zu: %02x %02x", ncase, k, a->local[k], b->local[k]); }
	munmap(a->arena, ARENA + PG);
	munmap(b->arena, ARENA + PG);
}

/* A base address: mostly inside the arena, sometimes one no copy can
 * reach. Returned as an offset into the arena when inside (*in). */
static uint64_t pick_base(bool *in)
{
	static const uint64_t odd[] = {
		0, 16, 0x0000800000000000ull, 0x8000000000000000ull, 0xffff800000000000ull,
		UR_TASK_SIZE_MAX - 100, 0x00007ffffffff000ull,
	};
	if (below(12) == 0) {
		*in = false;
		return odd[below(sizeof(odd) / sizeof(odd[0]))];
	}
	*in = true;
	switch (below(4)) {
	case 0: return below(NPAGES) * PG;                           /* page start */
	case 1: return below(NPAGES) * PG + PG - 1 - below(8);       /* just before an end */
	default: return below(ARENA);
	}
}

static size_t pick_len(void)
{
	switch (below(6)) {
	case 0: return 0;
	case 1: return 1 + below(16);
	case 2: return PG;
	case 3: return PG * (1 + below(3)) + below(3) - 1;
	default: return 1 + below(2 * PG);
	}
}

/* Segments for both sides: the same offsets in each arena, the same odd
 * addresses; @n of them. */
static void make_iov(struct side *a, struct side *b, unsigned n, bool sign_bit)
{
	for (unsigned i = 0; i < n; i++) {
		bool in;
		uint64_t base = pick_base(&in);
		size_t len = pick_len();
		if (sign_bit && i == n - 1 - below(n))
			len = (size_t)1 << 63 | below(100);
		a->iov[i].iov_base = in ? (void *)(a->arena + base) : (void *)(uintptr_t)base;
		b->iov[i].iov_base = in ? (void *)(b->arena + base) : (void *)(uintptr_t)base;
		a->iov[i].iov_len = b->iov[i].iov_len = len;
	}
}

enum op { OP_MOVE, OP_GATHER, OP_SCATTER, OP_PREFIX, OP_FROM, OP_TO, OP_N };

/* One call on one side; @fault: which path. */
static int64_t run_op(enum op op, bool to_user, struct side *s, unsigned n, size_t len, bool fault)
{
	switch (op) {
	case OP_MOVE:
		return fault ? ur_fault_move(to_user, s->local, len, s->iov, n)
			     : ur_pvm_move(to_user, s->local, len, s->iov, n);
	default:
		assert_int_equal(ur_uaccess_set_path(fault ? UR_UA_FAULT : UR_UA_PVM), 0);
		break;
	}
	int64_t ret = 0;
	switch (op) {
	case OP_GATHER: ret = ur_gather_user(s->local, s->iov, (int)n, len); break;
	case OP_SCATTER: ret = ur_scatter_user(s->iov, (int)n, s->local, len); break;
	case OP_PREFIX: ret = (int64_t)ur_user_prefix(s->iov, (int)n, len); break;
	case OP_FROM:
		ret = ur_copy_from_user(s->local, (uintptr_t)s->iov[0].iov_base, s->iov[0].iov_len);
		break;
	case OP_TO:
		ret = ur_copy_to_user((uintptr_t)s->iov[0].iov_base, s->local, s->iov[0].iov_len);
		break;
	default:
		break;
	}
	/* the public functions chose the path asked for */
	assert_true(ur_fault_usable() == fault);
	return ret;
}

static void test_same_results(void **state)
{
	(void)state;
	need_fault_path();
	struct side a = { 0 }, b = { 0 };
	a.local = malloc(LOCAL);
	b.local = malloc(LOCAL);
	a.iov = calloc(MAXSEG, sizeof(struct iovec));
	b.iov = calloc(MAXSEG, sizeof(struct iovec));
	assert_true(a.local && b.local && a.iov && b.iov);
	unsigned short_counts = 0, faults = 0, whole = 0;
	for (int c = 0; c < 4000; c++) {
		enum prot prot[NPAGES];
		for (unsigned p = 0; p < NPAGES; p++) {
			uint64_t r = below(10);
			prot[p] = r < 6 ? P_RW : r < 8 ? P_RO : r < 9 ? P_NONE : P_HOLE;
		}
		uint64_t fill = rnd();
		side_map(&a, fill);
		side_map(&b, fill);
		side_protect(&a, prot);
		side_protect(&b, prot);
		enum op op = (enum op)below(OP_N);
		bool to_user = op == OP_SCATTER || op == OP_TO || (op == OP_MOVE && below(2));
		unsigned n = 1 + (unsigned)below(8);
		if (op == OP_MOVE && below(20) == 0)
			n = UR_UIO_MAXIOV;
		if ((op == OP_GATHER || op == OP_SCATTER) && below(40) == 0)
			n = MAXSEG;
		if (op == OP_FROM || op == OP_TO)
			n = 1;
		make_iov(&a, &b, n, op == OP_MOVE && below(15) == 0);
		size_t total = 0;
		for (unsigned i = 0; i < n; i++)
			total += (a.iov[i].iov_len >> 63) ? 0 : a.iov[i].iov_len;
		size_t len = below(3) ? total : below(LOCAL);
		if (len > LOCAL)
			len = LOCAL;
		if ((op == OP_FROM || op == OP_TO) && a.iov[0].iov_len > LOCAL)
			a.iov[0].iov_len = b.iov[0].iov_len = LOCAL;
		int64_t ra = run_op(op, to_user, &a, n, len, false);
		int64_t rb = run_op(op, to_user, &b, n, len, true);
		if (ra != rb)
			fail_msg("case %d (op %d, %u segs, len %zu): process_vm %lld, fault path %lld", c,
				 op, n, len, (long long)ra, (long long)rb);
		if (ra < 0)
			faults++;
		else if ((size_t)ra < len && op != OP_FROM && op != OP_TO)
			short_counts++;
		else
			whole++;
		sides_compare_free(&a, &b, prot, c);
	}
	ur_uaccess_set_path(UR_UA_AUTO);
	print_message("4000 layouts: %u -EFAULT, %u short, %u whole (or 0)\n", faults,
		      short_counts, whole);
	/* the layouts reach every kind of result */
	assert_true(faults > 200 && short_counts > 200 && whole > 200);
	free(a.local);
	free(b.local);
	free(a.iov);
	free(b.iov);
}

/* A page that faults, and the one before it that does not. */
static uint8_t *two_pages(void)
{
	uint8_t *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0x5a, 2 * PG);
	assert_int_equal(mprotect(p + PG, PG, PROT_NONE), 0);
	return p;
}

/* Asking whether the fault path is usable takes the claim lock with a
 * trylock: two threads asking at once make one of them use process_vm for
 * a while (by design, see ur_fault_process_ok()). The asks are serialised
 * here so that the answer is always yes; the copies and their fixups still
 * run in both threads at once. */
static pthread_mutex_t ask_lock = PTHREAD_MUTEX_INITIALIZER;

static void *copy_in_thread(void *arg)
{
	uint8_t *p = arg, dst[PG];
	intptr_t bad = 0;
	for (int i = 0; i < 1000; i++) {
		struct iovec v = { p + PG - 100, 300 };
		bad += ur_fault_move(false, dst, sizeof(dst), &v, 1) != 100;
		pthread_mutex_lock(&ask_lock);
		bad += ur_copy_from_user(dst, (uintptr_t)(p + PG), 1) != -EFAULT;
		bad += !ur_fault_usable();
		pthread_mutex_unlock(&ask_lock);
	}
	return (void *)bad;
}

static void test_other_threads(void **state)
{
	(void)state;
	need_fault_path();
	uint8_t *p = two_pages();
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, copy_in_thread, p), 0);
	for (int i = 0; i < 2; i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_null(bad);
	}
	munmap(p, 2 * PG);
	ur_uaccess_set_path(UR_UA_AUTO);
}

static sigjmp_buf prev_jmp;
static volatile sig_atomic_t prev_calls;
static void *volatile prev_addr;
static volatile int prev_code;
static void prev_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	prev_calls++;
	prev_addr = si->si_addr;
	prev_code = si->si_code;
	siglongjmp(prev_jmp, 1);
}

static void install_prev(struct sigaction *saved)
{
	struct sigaction sa = { .sa_sigaction = prev_handler, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGSEGV, &sa, saved), 0);
	prev_calls = 0;
}

/* Faults outside the copy go to the handler that was there before. */
static void test_chain_to_previous(void **state)
{
	(void)state;
	struct sigaction saved;
	install_prev(&saved);
	need_fault_path();
	uint8_t *p = two_pages();
	volatile uint8_t *bad = p + PG + 8;
	if (!sigsetjmp(prev_jmp, 1))
		(void)*bad;
	assert_int_equal(prev_calls, 1);
	assert_ptr_equal(prev_addr, (void *)(p + PG + 8));
	assert_int_equal(prev_code, SEGV_ACCERR);
	/* ours is still in place, and copies still get their -EFAULT */
	assert_int_equal(ur_copy_from_user((void *)&prev_code, (uintptr_t)bad, 1), -EFAULT);
	assert_int_equal(prev_calls, 1);
	/* a SIGSEGV sent, not raised by a fault, goes there too */
	if (!sigsetjmp(prev_jmp, 1))
		raise(SIGSEGV);
	assert_int_equal(prev_calls, 2);
	assert_true(prev_code <= 0);
	munmap(p, 2 * PG);
	sigaction(SIGSEGV, &saved, NULL);
	ur_uaccess_set_path(UR_UA_AUTO);
}

/* With SIG_DFL (or SIG_IGN) before ours, a fault that is not ours kills
 * the process with SIGSEGV, as without us. */
static void test_chain_to_default(void **state)
{
	(void)state;
	need_fault_path();
	for (int ign = 0; ign < 2; ign++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			struct rlimit no_core = { 0, 0 };
			setrlimit(RLIMIT_CORE, &no_core);
			signal(SIGSEGV, ign ? SIG_IGN : SIG_DFL);
			if (ur_uaccess_set_path(UR_UA_FAULT))
				_exit(2);
			uint8_t *p = two_pages();
			if (ur_copy_from_user(p, (uintptr_t)(p + PG), 1) != -EFAULT)
				_exit(3);
			volatile uint8_t *bad = p + PG;
			(void)*bad;
			_exit(4);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFSIGNALED(st))
			fail_msg("child (%s before ours) exited %d", ign ? "SIG_IGN" : "SIG_DFL",
				 WEXITSTATUS(st));
		assert_int_equal(WTERMSIG(st), SIGSEGV);
	}
	ur_uaccess_set_path(UR_UA_AUTO);
}

/* A handler installed after ours: we leave it alone and copy through
 * process_vm (the results stay right, and it sees no fault). */
static void test_foreign_handler_after_ours(void **state)
{
	(void)state;
	need_fault_path();
	struct sigaction saved;
	install_prev(&saved);
	ur_fault_recheck();
	assert_false(ur_fault_usable());
	uint8_t *p = two_pages(), dst[200];
	struct iovec v = { p + PG - 100, 200 };
	assert_int_equal(ur_gather_user(dst, &v, 1, 200), 100);
	assert_int_equal(ur_copy_to_user((uintptr_t)(p + PG), dst, 1), -EFAULT);
	assert_int_equal(prev_calls, 0);
	/* SIG_DFL put back: ours again */
	signal(SIGSEGV, SIG_DFL);
	ur_fault_recheck();
	assert_true(ur_fault_usable());
	assert_int_equal(ur_gather_user(dst, &v, 1, 200), 100);
	munmap(p, 2 * PG);
	sigaction(SIGSEGV, &saved, NULL);
	ur_uaccess_set_path(UR_UA_AUTO);
}

static void *blocked_thread(void *arg)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &m, NULL);
	uint8_t *p = arg, dst[8];
	intptr_t bad = ur_fault_usable();
	bad += ur_copy_from_user(dst, (uintptr_t)(p + PG), sizeof(dst)) != -EFAULT;
	return (void *)bad;
}

/* A thread with SIGSEGV blocked would die of a fault: it gets process_vm. */
static void test_blocked_thread(void **state)
{
	(void)state;
	need_fault_path();
	uint8_t *p = two_pages();
	pthread_t t;
	void *bad;
	assert_int_equal(pthread_create(&t, NULL, blocked_thread, p), 0);
	assert_int_equal(pthread_join(t, &bad), 0);
	assert_null(bad);
	munmap(p, 2 * PG);
	ur_uaccess_set_path(UR_UA_AUTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_results),
		cmocka_unit_test(test_other_threads),
		cmocka_unit_test(test_chain_to_previous),
		cmocka_unit_test(test_chain_to_default),
		cmocka_unit_test(test_foreign_handler_after_ours),
		cmocka_unit_test(test_blocked_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
