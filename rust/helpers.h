/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of the helpers in helpers.c; rust/dmabuf_lock/ffi.rs declares the same list for
 * Rust.
 */
#ifndef DMABUF_LOCK_HELPERS_H
#define DMABUF_LOCK_HELPERS_H

#include <linux/dma-fence.h>
#include <linux/dma-resv.h>
#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/sched/signal.h>
#include <linux/spinlock.h>
#include <linux/vmalloc.h>
#include <linux/dma-mapping.h>
#include <linux/module.h>
#include <linux/ww_mutex.h>

void dl_ww_acquire_init(struct ww_acquire_ctx *ctx);
void dl_ww_acquire_done(struct ww_acquire_ctx *ctx);
void dl_ww_acquire_fini(struct ww_acquire_ctx *ctx);
bool dl_dma_resv_is_locked(struct dma_resv *obj);
struct dma_fence *dl_dma_fence_get(struct dma_fence *fence);
void dl_dma_fence_put(struct dma_fence *fence);
bool dl_dma_fence_is_container(struct dma_fence *fence);
bool dl_dma_fence_is_signaled(struct dma_fence *fence);
bool dl_dma_fence_is_later_or_same(struct dma_fence *f1, struct dma_fence *f2);
bool dl_dma_fence_signal_error(struct dma_fence *fence, int error);
void dl_might_lock_mutex(struct mutex *lock);
void dl_might_lock_spinlock(spinlock_t *lock);
void dl_dma_resv_might_lock(struct dma_resv *obj);
void dl_lock_map_acquire(struct lockdep_map *map);
void dl_lock_map_acquire_read(struct lockdep_map *map);
void dl_lock_map_release(struct lockdep_map *map);
/*
 * A driver fence of the library (rust/dmabuf_lock/fence.rs, DriverFenceStorage, has the same
 * layout): the fence, then its NUL-terminated driver and timeline names, then the driver's
 * hardware that its `signaled` and `enable_signaling` hooks read (NULL for these ops, which
 * have none; rust/dmabuf_lock/fence/hardware.rs).
 */
#define DL_FENCE_NAME_SIZE 32
struct dl_driver_fence {
	struct dma_fence base;
	char driver_name[DL_FENCE_NAME_SIZE];
	char timeline_name[DL_FENCE_NAME_SIZE];
	const void *hw;
};
extern const struct dma_fence_ops dl_driver_fence_ops;
struct module *dl_core_module(void);
void dl_warn(const char *msg);
void dl_warn_once(const char *msg);
void dl_might_sleep(void);
bool dl_in_atomic_context(void);


/* For the KUnit suites: letting a test's kthread take a signal. */
void dl_allow_signal(int sig);
void dl_disallow_signal(int sig);

/* For the sample drivers (samples/): page-array buffers shared as dma-bufs. */
void *dl_vmap_pages(struct page **pages, unsigned int count);
void dl_vunmap(const void *addr);
unsigned int dl_dma_max_segment(struct device *dev);
void dl_dma_unmap_sgtable(struct device *dev, struct sg_table *sgt, enum dma_data_direction dir);
int dl_dma_coerce_mask_64(struct device *dev);

/* For exporters' CPU page faults (dmabuf/exporter/fault.rs). */
void dl_release_fault_lock(struct vm_fault *vmf);

#endif
