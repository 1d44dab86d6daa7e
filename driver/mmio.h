/* SPDX-License-Identifier: MIT */
/*
 * Register access and device-ordering barriers. Every access to BAR0 goes
 * through the helpers here, so the access widths and their order are in
 * one place.
 *
 * Two barrier vocabularies, kept apart on purpose:
 *  - nvr_dma_*(): ordering between the CPU and the device (DMA memory and
 *    MMIO). Used before a doorbell write and after a phase-tag check.
 *  - CPU-to-CPU ordering for rings shared between threads uses C11
 *    atomics directly (abi/), never these.
 */
#ifndef NVRING_DRIVER_MMIO_H
#define NVRING_DRIVER_MMIO_H

#include <stdint.h>

/*
 * nvr_dma_wmb() - stores to DMA memory (an SQE, a PRP list, DSM ranges)
 * become visible to the device before a following MMIO store (the SQ tail
 * doorbell). x86: sfence, as SPDK's spdk_wmb(); arm64: dmb oshst (stores
 * vs stores, outer shareable domain, which includes the device).
 */
static inline void nvr_dma_wmb(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("sfence" ::: "memory");
#elif defined(__aarch64__)
	__asm__ volatile("dmb oshst" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * nvr_dma_rmb() - loads of a CQE's other fields happen after the load of
 * its phase tag, so we never read a stale command ID behind a fresh
 * phase. x86 (TSO) never reorders loads from write-back memory with older
 * loads, so only the compiler must be held back (Linux's dma_rmb() does
 * the same); arm64: dmb oshld.
 */
static inline void nvr_dma_rmb(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("" ::: "memory");
#elif defined(__aarch64__)
	__asm__ volatile("dmb oshld" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * nvr_dma_release() - every earlier load and store (the CQEs just
 * consumed) completes before a following MMIO store (the CQ head
 * doorbell) that lets the device overwrite those entries. x86 (TSO) never
 * moves a store ahead of older loads or stores: compiler barrier only;
 * arm64: dmb osh (full, outer shareable).
 */
static inline void nvr_dma_release(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("" ::: "memory");
#elif defined(__aarch64__)
	__asm__ volatile("dmb osh" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static inline uint32_t nvr_mmio_read32(volatile uint8_t *bar, uint32_t off)
{
	return *(volatile uint32_t *)(bar + off);
}

static inline void nvr_mmio_write32(volatile uint8_t *bar, uint32_t off, uint32_t val)
{
	*(volatile uint32_t *)(bar + off) = val;
}

/* 64-bit registers as two 32-bit accesses, low half first: QEMU's
 * controller takes at most 8-byte accesses and some platforms cannot
 * issue them at all; the low-then-high order is what NVMe 2.0 §3.1.2
 * allows for 64-bit registers accessed as two dwords. */
static inline uint64_t nvr_mmio_read64(volatile uint8_t *bar, uint32_t off)
{
	uint32_t lo = nvr_mmio_read32(bar, off);
	uint32_t hi = nvr_mmio_read32(bar, off + 4);
	return (uint64_t)hi << 32 | lo;
}

static inline void nvr_mmio_write64(volatile uint8_t *bar, uint32_t off, uint64_t val)
{
	nvr_mmio_write32(bar, off, (uint32_t)val);
	nvr_mmio_write32(bar, off + 4, (uint32_t)(val >> 32));
}

/* A doorbell: one 32-bit store to a precomputed register address. */
static inline void nvr_mmio_doorbell(volatile uint32_t *db, uint32_t val)
{
	*db = val;
}

#endif
