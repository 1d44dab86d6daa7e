/* SPDX-License-Identifier: MIT */
/*
 * The library's one way to say something: nvr_log() hands a formatted line
 * to the application's hook (nvr_set_log_hook()), or, without a hook, to
 * the destination NVRING_LOG names, or to nothing. It lives in pci/, the
 * lowest layer, so pci/, driver/ and abi/ can all use it.
 */
#ifndef NVRING_PCI_LOG_H
#define NVRING_PCI_LOG_H

#include "nvring/nvring.h"

/* Messages longer than this (with the terminating NUL) are truncated. */
#define NVR_LOG_LINE_MAX 1024

/* Deliver one message at @level (NVR_LOG_ERR ... NVR_LOG_DEBUG) if the
 * threshold lets it through. One line: no trailing newline in @fmt. errno
 * is preserved. Thread safe. */
void nvr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For tests: forget the state derived from NVRING_LOG (closing its file)
 * and any nvr_set_log_level(), so the next message reads the environment
 * again. Not thread safe. */
void nvr_log_reset(void);

#endif
