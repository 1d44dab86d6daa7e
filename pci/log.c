/* SPDX-License-Identifier: MIT */
/*
 * Logging (see "Logging" in include/nvring/nvring.h): the hook, the
 * threshold and the NVRING_LOG default destination.
 *
 * The hook is a pair (function, argument) that must be read together, on
 * any thread, without a lock on the logging path: a sequence counter
 * around the two atomics (a seqlock) gives the reader a consistent pair.
 * Writers serialise on hook_lock.
 */
#include "pci/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint hook_seq;                 /* odd while a writer is mid-update */
static _Atomic(nvr_log_fn) hook_fn;
static _Atomic(void *) hook_arg;

/* State derived from NVRING_LOG, set up once by log_init(). */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool inited;
static atomic_int threshold = NVR_LOG_WARN;
static int default_fd = -1;                  /* -1: the default destination is nowhere */
static bool default_owned;                   /* default_fd is our FILE, not stderr */

static int parse_level(const char *s, size_t len)
{
	static const char *const names[] = {
		[NVR_LOG_OFF] = "off", [NVR_LOG_ERR] = "err", [NVR_LOG_WARN] = "warn",
		[NVR_LOG_INFO] = "info", [NVR_LOG_DEBUG] = "debug",
	};

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strlen(names[i]) == len && strncmp(s, names[i], len) == 0)
			return i;
	return -1;
}

static void log_init(void)
{
	/* Acquire: pairs with the release below, so default_fd is seen set. */
	if (atomic_load_explicit(&inited, memory_order_acquire))
		return;
	pthread_mutex_lock(&init_lock);
	if (!atomic_load_explicit(&inited, memory_order_relaxed)) {
		const char *env = getenv("NVRING_LOG");
		const char *colon = env ? strchr(env, ':') : NULL;
		int level = env ? parse_level(env, colon ? (size_t)(colon - env) : strlen(env)) : -1;

		if (level >= 0) {
			atomic_store_explicit(&threshold, level, memory_order_relaxed);
			if (colon && colon[1]) {
				default_fd = open(colon + 1, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
				default_owned = default_fd >= 0;
			} else if (!colon) {
				default_fd = STDERR_FILENO;
			}
		}
		/* Release: default_fd and threshold before "inited". */
		atomic_store_explicit(&inited, true, memory_order_release);
	}
	pthread_mutex_unlock(&init_lock);
}

void nvr_log_reset(void)
{
	pthread_mutex_lock(&init_lock);
	if (default_owned)
		close(default_fd);
	default_fd = -1;
	default_owned = false;
	atomic_store_explicit(&threshold, NVR_LOG_WARN, memory_order_relaxed);
	atomic_store_explicit(&inited, false, memory_order_release);
	pthread_mutex_unlock(&init_lock);
}

NVR_API void nvr_set_log_hook(nvr_log_fn fn, void *arg)
{
	pthread_mutex_lock(&hook_lock);
	unsigned seq = atomic_load_explicit(&hook_seq, memory_order_relaxed);

	atomic_store_explicit(&hook_seq, seq + 1, memory_order_relaxed);
	/* Release fence: the odd count is visible before either new value,
	 * so a reader that sees a new value also sees the update begun. */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&hook_fn, fn, memory_order_relaxed);
	atomic_store_explicit(&hook_arg, arg, memory_order_relaxed);
	/* Release: both new values before the even count that ends it. */
	atomic_store_explicit(&hook_seq, seq + 2, memory_order_release);
	pthread_mutex_unlock(&hook_lock);
}

static nvr_log_fn read_hook(void **arg)
{
	unsigned s1, s2;
	nvr_log_fn fn;

	do {
		/* Acquire: the values read below are at least as new as s1. */
		s1 = atomic_load_explicit(&hook_seq, memory_order_acquire);
		fn = atomic_load_explicit(&hook_fn, memory_order_relaxed);
		*arg = atomic_load_explicit(&hook_arg, memory_order_relaxed);
		/* Acquire fence: the two reads complete before s2 is read, so
		 * an unchanged even count means no writer touched them. */
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&hook_seq, memory_order_relaxed);
	} while (s1 != s2 || (s1 & 1));
	return fn;
}

NVR_API int nvr_set_log_level(int level)
{
	if (level < NVR_LOG_OFF || level > NVR_LOG_DEBUG)
		return -EINVAL;
	log_init();
	return atomic_exchange_explicit(&threshold, level, memory_order_relaxed);
}

/* The default destination: one write() per line, so lines from several
 * threads (or processes appending to one file) do not interleave. */
static void write_default(const char *msg)
{
	char line[NVR_LOG_LINE_MAX + 16];
	int n;

	if (default_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "nvring: %s\n", msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	/* Nothing useful to do if the log itself cannot be written. */
	if (write(default_fd, line, (size_t)n) < 0)
		return;
}

void nvr_log(int level, const char *fmt, ...)
{
	char msg[NVR_LOG_LINE_MAX];
	int saved_errno = errno;
	nvr_log_fn fn;
	void *arg;
	va_list ap;
	size_t len;

	log_init();
	if (level <= NVR_LOG_OFF || level > atomic_load_explicit(&threshold, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line per message, whatever the caller wrote. */
	len = strlen(msg);
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';

	fn = read_hook(&arg);
	if (fn)
		fn(arg, level, msg);
	else
		write_default(msg);
	errno = saved_errno;
}
