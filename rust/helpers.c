// SPDX-License-Identifier: GPL-2.0
/*
 * Static inline functions and macros of <linux/ww_mutex.h>, <linux/dma-resv.h>,
 * <linux/dma-fence.h>, <linux/lockdep.h>, <linux/vmalloc.h>, <linux/scatterlist.h>,
 * <linux/dma-mapping.h>, <linux/sched/signal.h> and <linux/mm.h> as exported symbols, so
 * that Rust code in this project's modules can call them. Each helper only forwards its call.
 */

#include <linux/export.h>

#include "helpers.h"

/*
 * rust/dmabuf_lock/acquire/ww.rs writes ww_acquire_init/done/fini itself where <linux/ww_mutex.h>
 * compiles no debugging code into them, deciding so from a copy of the header's conditions, and
 * stores the five fields the header has then. Break the build if either copy went stale.
 */
#if defined(DEBUG_WW_MUTEXES) != \
	(defined(CONFIG_DEBUG_MUTEXES) || \
	 (defined(CONFIG_PREEMPT_RT) && defined(CONFIG_DEBUG_RT_MUTEXES)))
#error "DEBUG_WW_MUTEXES: <linux/ww_mutex.h> changed its condition; update acquire/ww.rs"
#endif
#if !defined(DEBUG_WW_MUTEXES) && !defined(CONFIG_DEBUG_LOCK_ALLOC) && \
	!defined(CONFIG_DEBUG_WW_MUTEX_SLOWPATH)
static_assert(sizeof(struct ww_acquire_ctx) ==
	      offsetofend(struct ww_acquire_ctx, is_wait_die),
	      "struct ww_acquire_ctx has fields acquire/ww.rs does not initialise");
#endif

void dl_ww_acquire_init(struct ww_acquire_ctx *ctx)
{
	ww_acquire_init(ctx, &reservation_ww_class);
}
EXPORT_SYMBOL_GPL(dl_ww_acquire_init);

void dl_ww_acquire_done(struct ww_acquire_ctx *ctx)
{
	ww_acquire_done(ctx);
}
EXPORT_SYMBOL_GPL(dl_ww_acquire_done);

void dl_ww_acquire_fini(struct ww_acquire_ctx *ctx)
{
	ww_acquire_fini(ctx);
}
EXPORT_SYMBOL_GPL(dl_ww_acquire_fini);

bool dl_dma_resv_is_locked(struct dma_resv *obj)
{
	return dma_resv_is_locked(obj);
}
EXPORT_SYMBOL_GPL(dl_dma_resv_is_locked);

struct dma_fence *dl_dma_fence_get(struct dma_fence *fence)
{
	return dma_fence_get(fence);
}
EXPORT_SYMBOL_GPL(dl_dma_fence_get);

void dl_dma_fence_put(struct dma_fence *fence)
{
	dma_fence_put(fence);
}
EXPORT_SYMBOL_GPL(dl_dma_fence_put);

bool dl_dma_fence_is_container(struct dma_fence *fence)
{
	return dma_fence_is_container(fence);
}
EXPORT_SYMBOL_GPL(dl_dma_fence_is_container);

bool dl_dma_fence_is_signaled(struct dma_fence *fence)
{
	return dma_fence_is_signaled(fence);
}
EXPORT_SYMBOL_GPL(dl_dma_fence_is_signaled);

bool dl_dma_fence_is_later_or_same(struct dma_fence *f1, struct dma_fence *f2)
{
	return dma_fence_is_later_or_same(f1, f2);
}
EXPORT_SYMBOL_GPL(dl_dma_fence_is_later_or_same);

/*
 * Signals @fence, with @error (0 for none) set first, unless it has signalled already or its
 * `signaled` op says its work is done: dma_fence_is_signaled_locked() asks the op, and signals
 * the fence without the error if it does, so the hardware's word wins over a late timeout or
 * cancellation. The check and the signal are one step under the fence's lock, so the error is
 * never set on a signalled fence. Any context. Returns whether this call set @error.
 */
bool dl_dma_fence_signal_error(struct dma_fence *fence, int error)
{
	unsigned long flags;
	bool signalled = false;

	dma_fence_lock_irqsave(fence, flags);
	if (!dma_fence_is_signaled_locked(fence)) {
		if (error)
			dma_fence_set_error(fence, error);
		dma_fence_signal_locked(fence);
		signalled = true;
	}
	dma_fence_unlock_irqrestore(fence, flags);
	return signalled;
}
EXPORT_SYMBOL_GPL(dl_dma_fence_signal_error);

/*
 * The lockdep annotations below are macros that record their caller's address; passing
 * _RET_IP_ makes reports name the Rust caller rather than the helper.
 */
void dl_might_lock_mutex(struct mutex *lock)
{
	lock_acquire(&lock->dep_map, 0, 0, 0, 1, NULL, _RET_IP_);
	lock_release(&lock->dep_map, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_might_lock_mutex);

void dl_might_lock_spinlock(spinlock_t *lock)
{
	lock_acquire(&lock->dep_map, 0, 0, 0, 1, NULL, _RET_IP_);
	lock_release(&lock->dep_map, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_might_lock_spinlock);

void dl_dma_resv_might_lock(struct dma_resv *obj)
{
	lock_acquire(&obj->lock.base.dep_map, 0, 0, 0, 1, NULL, _RET_IP_);
	lock_release(&obj->lock.base.dep_map, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_dma_resv_might_lock);

void dl_lock_map_acquire(struct lockdep_map *map)
{
	lock_acquire_exclusive(map, 0, 0, NULL, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_lock_map_acquire);

void dl_lock_map_acquire_read(struct lockdep_map *map)
{
	lock_acquire_shared_recursive(map, 0, 0, NULL, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_lock_map_acquire_read);

void dl_lock_map_release(struct lockdep_map *map)
{
	lock_release(map, _RET_IP_);
}
EXPORT_SYMBOL_GPL(dl_lock_map_release);

/*
 * The ops of the library's driver fences. They live here, in dmabuf_lock.ko, rather than in
 * each module that arms a fence: an armed fence pins this module until it signals (when 7.3
 * detaches the ops), so a fence that outlives the module that armed it points at no code of
 * that module. The names are in the fence's own memory (struct dl_driver_fence, written before
 * the fence is initialised and never changed), which the kernel frees an RCU grace period after
 * the last reference, as the names' readers require. No release, so the default kfree_rcu
 * applies.
 */
static const char *dl_driver_fence_name(struct dma_fence *fence)
{
	return container_of(fence, struct dl_driver_fence, base)->driver_name;
}

static const char *dl_driver_fence_timeline_name(struct dma_fence *fence)
{
	return container_of(fence, struct dl_driver_fence, base)->timeline_name;
}

const struct dma_fence_ops dl_driver_fence_ops = {
	.get_driver_name = dl_driver_fence_name,
	.get_timeline_name = dl_driver_fence_timeline_name,
};
EXPORT_SYMBOL_GPL(dl_driver_fence_ops);

struct module *dl_core_module(void)
{
	return THIS_MODULE;
}
EXPORT_SYMBOL_GPL(dl_core_module);

void dl_warn(const char *msg)
{
	WARN(1, "%s\n", msg);
}
EXPORT_SYMBOL_GPL(dl_warn);

void dl_warn_once(const char *msg)
{
	WARN_ONCE(1, "%s\n", msg);
}
EXPORT_SYMBOL_GPL(dl_warn_once);

void dl_might_sleep(void)
{
	might_sleep();
}
EXPORT_SYMBOL_GPL(dl_might_sleep);

/*
 * For MayBlock::new(): in_atomic() sees spinlocks only with CONFIG_PREEMPT_COUNT (the test
 * kernels have it through DEBUG_ATOMIC_SLEEP); elsewhere this is a best-effort check, as
 * might_sleep() is, and interrupt context is always seen.
 */
bool dl_in_atomic_context(void)
{
	return in_atomic() || irqs_disabled();
}
EXPORT_SYMBOL_GPL(dl_in_atomic_context);

void *dl_vmap_pages(struct page **pages, unsigned int count)
{
	return vmap(pages, count, VM_MAP, PAGE_KERNEL);
}
EXPORT_SYMBOL_GPL(dl_vmap_pages);

void dl_vunmap(const void *addr)
{
	vunmap(addr);
}
EXPORT_SYMBOL_GPL(dl_vunmap);

unsigned int dl_dma_max_segment(struct device *dev)
{
	size_t max = min_t(size_t, dma_max_mapping_size(dev), dma_get_max_seg_size(dev));

	return max(round_down(max, PAGE_SIZE), PAGE_SIZE);
}
EXPORT_SYMBOL_GPL(dl_dma_max_segment);

void dl_dma_unmap_sgtable(struct device *dev, struct sg_table *sgt, enum dma_data_direction dir)
{
	dma_unmap_sgtable(dev, sgt, dir, 0);
}
EXPORT_SYMBOL_GPL(dl_dma_unmap_sgtable);

int dl_dma_coerce_mask_64(struct device *dev)
{
	return dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64));
}
EXPORT_SYMBOL_GPL(dl_dma_coerce_mask_64);

void dl_allow_signal(int sig)
{
	allow_signal(sig);
}
EXPORT_SYMBOL_GPL(dl_allow_signal);

void dl_disallow_signal(int sig)
{
	disallow_signal(sig);
}
EXPORT_SYMBOL_GPL(dl_disallow_signal);

void dl_release_fault_lock(struct vm_fault *vmf)
{
	release_fault_lock(vmf);
}
EXPORT_SYMBOL_GPL(dl_release_fault_lock);
