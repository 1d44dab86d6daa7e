/* SPDX-License-Identifier: MIT */
/*
 * uring_threads DEVICE — one ring, two threads: a submitter thread queues
 * 512 reads of 4 KiB (batches of up to 4, at most 16 in flight: one buffer
 * slot each), while the main thread waits with io_uring_wait_cqe, checks
 * and reaps each, and frees its slot. Totals (count, bytes, the sum of the
 * per-read checksums, which does not depend on completion order) are
 * printed.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "uring_prog.h"

#define TAG 0x7468   /* "th" */
#define OFF (12u << 20)
#define NBLK 256u           /* the area read: 1 MiB */
#define NREAD 512u
#define NSLOT 16u
#define BATCH 4u

static struct io_uring ring;
static struct dev d;
static char *slots;
static sem_t free_slots;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned slot_stack[NSLOT], slot_top;
static int submit_error;
static atomic_uint submitted;   /* SQEs io_uring_submit has taken */

static unsigned slot_pop(void)
{
	pthread_mutex_lock(&slot_lock);
	unsigned s = slot_stack[--slot_top];
	pthread_mutex_unlock(&slot_lock);
	return s;
}

static void slot_push(unsigned s)
{
	pthread_mutex_lock(&slot_lock);
	slot_stack[slot_top++] = s;
	pthread_mutex_unlock(&slot_lock);
}

/* Block i of the reads: a fixed permutation of the area, twice over. */
static unsigned block_of(unsigned i)
{
	return (i * 97u + 13u) % NBLK;
}

static void *submitter(void *arg)
{
	(void)arg;
	unsigned queued = 0;

	for (unsigned i = 0; i < NREAD; i++) {
		sem_wait(&free_slots);
		unsigned s = slot_pop();
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		if (!sqe) {
			submit_error = -EBUSY;
			return NULL;
		}
		io_uring_prep_read(sqe, d.fd, slots + (size_t)s * BLOCK, BLOCK, d.base + OFF + block_of(i) * BLOCK);
		sqe->user_data = (uint64_t)i << 8 | s;
		if (++queued == BATCH || i == NREAD - 1) {
			int rc = io_uring_submit(&ring);
			if (rc != (int)queued) {
				submit_error = rc < 0 ? rc : -EIO;
				return NULL;
			}
			/* release: pairs with the waiter's acquire load; orders nothing
			 * else, the count alone says a CQE is coming */
			atomic_fetch_add_explicit(&submitted, queued, memory_order_release);
			queued = 0;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int rc = dev_open(argc, argv, &d);

	if (rc)
		return rc;
	ring_init(&ring, 32, 0);

	char *area = buf_alloc(NBLK * BLOCK);
	pattern(area, OFF, NBLK * BLOCK, TAG);
	struct io_uring_sqe *sqe = sqe_get(&ring);
	io_uring_prep_write(sqe, d.fd, area, NBLK * BLOCK, d.base + OFF);
	sqe->user_data = 0;
	int res = 0;
	bool ok = submit_n(&ring, 1) && reap(&ring, 1, &res, 1, NULL);
	check(ok && res == (int)(NBLK * BLOCK), "write of the 1 MiB area: res %d", res);

	slots = buf_alloc(NSLOT * BLOCK);
	for (unsigned s = 0; s < NSLOT; s++)
		slot_stack[slot_top++] = s;
	sem_init(&free_slots, 0, NSLOT);
	pthread_t th;
	if (!check(pthread_create(&th, NULL, submitter, NULL) == 0, "submitter thread started"))
		return prog_exit();

	unsigned done = 0, bad = 0, seen_twice = 0;
	uint64_t bytes = 0, sum = 0;
	static unsigned char seen[NREAD];
	while (done < NREAD && !submit_error) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec t = { .tv_sec = 1 };
		/* A plain wait when a CQE is sure to come; otherwise a timed one,
		 * so that a submitter that stopped cannot leave us waiting. */
		if (atomic_load_explicit(&submitted, memory_order_acquire) > done)
			rc = io_uring_wait_cqe(&ring, &cqe);
		else
			rc = io_uring_wait_cqe_timeout(&ring, &cqe, &t);
		if (rc == -ETIME)
			continue;
		if (rc < 0) {
			note("io_uring_wait_cqe: %s\n", strerror(-rc));
			break;
		}
		unsigned i = (unsigned)(cqe->user_data >> 8), s = cqe->user_data & 0xff;
		char *p = slots + (size_t)s * BLOCK;
		if (i >= NREAD || s >= NSLOT || cqe->res != BLOCK ||
		    !pattern_ok(p, OFF + block_of(i) * BLOCK, BLOCK, TAG))
			bad++;
		if (i < NREAD && seen[i]++)
			seen_twice++;
		if (cqe->res > 0)
			bytes += (uint64_t)cqe->res;
		if (s < NSLOT)
			sum += fnv64(p, BLOCK, FNV_INIT);
		io_uring_cqe_seen(&ring, cqe);
		done++;
		if (s < NSLOT) {
			slot_push(s);
			sem_post(&free_slots);
		}
	}
	pthread_join(th, NULL);
	check(submit_error == 0, "submitter: %d", submit_error);
	check(done == NREAD && seen_twice == 0, "reaped %u of %u reads, %u duplicates", done, NREAD, seen_twice);
	check(bad == 0 && bytes == (uint64_t)NREAD * BLOCK, "%" PRIu64 " bytes, %u bad, checksum sum %016" PRIx64,
	      bytes, bad, sum);
	io_uring_queue_exit(&ring);
	return prog_exit();
}
