/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The ioctls of the dmabuf-lock sample drivers: /dev/dmabuf_exporter and /dev/dmabuf_importer.
 *
 * Every argument starts with `version` (DLS_UAPI_VERSION) and `size` (sizeof the struct as the
 * caller knows it); the drivers refuse anything else with EINVAL, so the structs can grow.
 */
#ifndef _UAPI_DMABUF_LOCK_SAMPLE_H
#define _UAPI_DMABUF_LOCK_SAMPLE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DLS_UAPI_VERSION 1

/* Largest buffer the exporter creates, in pages. */
#define DLS_MAX_PAGES 1024
/* Most buffers one job may use. */
#define DLS_MAX_JOB_BUFFERS 64
/*
 * Most pages (64 MiB) that the live buffers created through one open exporter file may hold:
 * DLS_IOCTL_CREATE fails with ENOSPC beyond it. A buffer counts until its last reference is gone,
 * even after the file that created it is closed. Buffer pages are also charged to the creating
 * task's memory cgroup.
 */
#define DLS_MAX_FILE_PAGES 16384
/* A job's `delay_ms` flag: the job never completes, its watchdog times it out. */
#define DLS_JOB_HANG (1u << 31)
/* How long after its delay a job's watchdog signals its fence with -ETIMEDOUT. */
#define DLS_JOB_GRACE_MS 1000

/*
 * Exporter: create a buffer of `pages` zeroed pages; returns a dma-buf fd. `pad` must be zero.
 * On any error no fd is created.
 */
struct dls_create {
	__u32 version;
	__u32 size;
	__u64 pages;
	__s32 fd;	/* out */
	__u32 pad;
};

/*
 * Exporter: a job writing `count` buffers (dma-buf fds at `fds_ptr`, from this exporter): each
 * gets a write fence, signalled `delay_ms` (at most 10000) after submission by the exporter's
 * completion interrupt (an hrtimer standing in for a GPU's). With DLS_JOB_HANG or'ed into
 * `delay_ms`, the "hardware" never completes the job. Every job has a watchdog that signals its
 * fence with -ETIMEDOUT DLS_JOB_GRACE_MS after the delay if the interrupt has not come. On any
 * error, EFAULT included, no fence was published.
 */
struct dls_job {
	__u32 version;
	__u32 size;
	__u64 fds_ptr;
	__u32 count;
	__u32 delay_ms;
	__u64 seqno;	/* out: the job fence's sequence number */
};

/*
 * Exporter: where the buffer behind `fd` (created through this exporter file) is, and what the
 * file's shrinker has done: under memory pressure it evicts idle buffers, keeping the pages that
 * hold data and freeing the all-zero ones; a map, vmap or mmap brings a buffer back.
 */
#define DLS_STATE_EVICTED (1u << 0)

struct dls_state {
	__u32 version;
	__u32 size;
	__s32 fd;
	__u32 flags;		/* in: 0; out: DLS_STATE_EVICTED */
	__u64 pages_in_memory;	/* out: the buffer's pages in memory */
	__u64 evictions;	/* out: buffers of this file evicted so far */
	__u64 freed_pages;	/* out: all-zero pages those evictions freed */
	__u64 restores;		/* out: evicted buffers brought back */
};

/* Importer: import a dma-buf fd as a dynamic attachment; returns a handle. */
struct dli_import {
	__u32 version;
	__u32 size;
	__s32 fd;
	__u32 handle;	/* out */
};

/* Importer: an operation on an imported handle. */
struct dli_op {
	__u32 version;
	__u32 size;
	__u32 handle;
	__u32 timeout_ms;	/* DLI_IOCTL_WAIT */
	/*
	 * out: MAP: mapped segments; CHECKSUM: checksum; WAIT: 1; USERPTR_WAITED: invalidations
	 * that waited for a job
	 */
	__u64 result;
};

/*
 * Importer: wrap `len` bytes of the caller's memory at `addr` (page-aligned, whole pages, at most
 * DLS_MAX_PAGES, mapped writable: EINVAL, EFAULT otherwise) as a userptr; returns a handle. An mmu
 * notifier watches the range: when the process unmaps it, changes its protection, forks or the
 * kernel reclaims its pages, the change waits for the userptr's pending jobs first. `flags` must
 * be zero. EOPNOTSUPP on a kernel without CONFIG_MMU_NOTIFIER. DLI_IOCTL_WAIT on the handle waits
 * for its jobs, DLI_IOCTL_RELEASE releases it; MAP and CHECKSUM are EINVAL.
 */
struct dli_userptr {
	__u32 version;
	__u32 size;
	__u64 addr;
	__u64 len;
	__u32 handle;	/* out */
	__u32 flags;
};

/*
 * Importer: a job using a userptr's pages, whose fence signals as a DLS_IOCTL_JOB's does
 * (`delay_ms`, DLS_JOB_HANG, the watchdog). The pages are looked up when the job is submitted:
 * EFAULT if the range is no longer mapped writable, EAGAIN if it kept changing meanwhile.
 */
struct dli_userptr_job {
	__u32 version;
	__u32 size;
	__u32 handle;
	__u32 delay_ms;
	__u64 seqno;	/* out: the job fence's sequence number */
};

#define DLS_IOCTL_CREATE	_IOWR('D', 0x40, struct dls_create)
#define DLS_IOCTL_JOB		_IOWR('D', 0x41, struct dls_job)
#define DLS_IOCTL_EVICT		_IOWR('D', 0x42, struct dls_create)	/* `fd`: buffer to move */
#define DLS_IOCTL_STATE		_IOWR('D', 0x43, struct dls_state)
#define DLI_IOCTL_IMPORT	_IOWR('D', 0x50, struct dli_import)
#define DLI_IOCTL_MAP		_IOWR('D', 0x51, struct dli_op)
#define DLI_IOCTL_WAIT		_IOWR('D', 0x52, struct dli_op)
#define DLI_IOCTL_CHECKSUM	_IOWR('D', 0x53, struct dli_op)
#define DLI_IOCTL_RELEASE	_IOWR('D', 0x54, struct dli_op)
#define DLI_IOCTL_USERPTR	_IOWR('D', 0x55, struct dli_userptr)
#define DLI_IOCTL_USERPTR_JOB	_IOWR('D', 0x56, struct dli_userptr_job)
#define DLI_IOCTL_USERPTR_WAITED _IOWR('D', 0x57, struct dli_op)

/*
 * The checksum: FNV-1a over the buffer's bytes, 64 bits.
 */

#endif
