// SPDX-License-Identifier: GPL-2.0
/*
 * C baselines for the benchmark (see c_paths.h). dl_bench_c_lock_objs() is the canonical
 * drm_exec loop, without drm_exec's object array: lock in order, on -EDEADLK unlock everything,
 * take the contended object with dma_resv_lock_slow() and start again. Each function returns the
 * nanoseconds its whole loop took, so the Rust side can time the same loop the same way.
 */

#include <linux/dma-fence.h>
#include <linux/cpumask.h>
#include <linux/ktime.h>
#include <linux/string.h>

#include "c_paths.h"
#include "../rust/helpers.h"

u64 dl_bench_c_lock_unlock(struct dma_resv *obj, u32 iters)
{
	u64 start = ktime_get_ns();
	u32 i;

	for (i = 0; i < iters; i++) {
		dma_resv_lock(obj, NULL);
		dma_resv_unlock(obj);
	}
	return ktime_get_ns() - start;
}

static void dl_bench_c_unlock_objs(struct dma_resv **objs, u32 count, struct dma_resv *prelocked)
{
	u32 i;

	for (i = 0; i < count; i++)
		if (objs[i] != prelocked)
			dma_resv_unlock(objs[i]);
	if (prelocked)
		dma_resv_unlock(prelocked);
}

/*
 * Locks objs[0..n) in one context and marks it done with done(); returns the number of backoffs.
 * Always inlined, so that done() is a direct call (or inlined) in each caller.
 */
static __always_inline u64 dl_bench_c_lock_objs_with(struct dma_resv **objs, u32 n,
						      struct ww_acquire_ctx *ctx,
						      void (*done)(struct ww_acquire_ctx *))
{
	struct dma_resv *contended = NULL;
	u64 backoffs = 0;
	u32 i;
	int ret;

retry:
	if (contended)
		dma_resv_lock_slow(contended, ctx);
	for (i = 0; i < n; i++) {
		if (objs[i] == contended)
			continue;
		ret = dma_resv_lock(objs[i], ctx);
		if (ret == -EDEADLK) {
			dl_bench_c_unlock_objs(objs, i, contended);
			contended = objs[i];
			backoffs++;
			goto retry;
		}
	}
	done(ctx);
	return backoffs;
}

static u64 dl_bench_c_lock_objs(struct dma_resv **objs, u32 n, struct ww_acquire_ctx *ctx)
{
	return dl_bench_c_lock_objs_with(objs, n, ctx, ww_acquire_done);
}

u64 dl_bench_c_lock_all(struct dma_resv **objs, u32 n, u32 iters)
{
	struct ww_acquire_ctx ctx;
	u64 start = ktime_get_ns();
	u32 i;

	for (i = 0; i < iters; i++) {
		ww_acquire_init(&ctx, &reservation_ww_class);
		dl_bench_c_lock_objs(objs, n, &ctx);
		dl_bench_c_unlock_objs(objs, n, NULL);
		ww_acquire_fini(&ctx);
	}
	return ktime_get_ns() - start;
}

/*
 * The same loop with its acquire context reached through the out-of-line helpers that
 * dmabuf_lock.ko exports for the static inlines ww_acquire_init/done/fini, as the Rust library
 * reached them before it wrote them in Rust (rust/dmabuf_lock/acquire/ww.rs; with lock debugging
 * it still does). The difference to dl_bench_c_lock_all() is what those calls cost.
 */
u64 dl_bench_c_lock_all_via_helpers(struct dma_resv **objs, u32 n, u32 iters)
{
	struct ww_acquire_ctx ctx;
	u64 start = ktime_get_ns();
	u32 i;

	for (i = 0; i < iters; i++) {
		dl_ww_acquire_init(&ctx);
		dl_bench_c_lock_objs_with(objs, n, &ctx, dl_ww_acquire_done);
		dl_bench_c_unlock_objs(objs, n, NULL);
		dl_ww_acquire_fini(&ctx);
	}
	return ktime_get_ns() - start;
}

u64 dl_bench_c_signalling(u32 iters)
{
	u64 start = ktime_get_ns();
	u32 i;

	for (i = 0; i < iters; i++) {
		bool cookie = dma_fence_begin_signalling();

		dma_fence_end_signalling(cookie);
	}
	return ktime_get_ns() - start;
}

void dl_bench_c_contend(struct dma_resv **objs, u32 n, u32 rounds, u32 seed, u64 *backoffs)
{
	struct dma_resv *subset[DL_BENCH_MAX_SUBSET];
	u32 idx[DL_BENCH_MAX_SUBSET];
	struct ww_acquire_ctx ctx;
	u32 i, r, k;

	*backoffs = 0;
	for (r = 0; r < rounds; r++) {
		k = dl_bench_next_subset(&seed, n, idx);
		for (i = 0; i < k; i++)
			subset[i] = objs[idx[i]];
		ww_acquire_init(&ctx, &reservation_ww_class);
		*backoffs += dl_bench_c_lock_objs(subset, k, &ctx);
		dl_bench_c_unlock_objs(subset, k, NULL);
		ww_acquire_fini(&ctx);
	}
}

/*
 * Checks the acquire context in which the caller holds obj, and held locks in all, against what
 * ww_acquire_init() sets up: this task as the owner, not wounded, the class's algorithm, a stamp
 * the class has handed out (returned in *stamp), and the held locks counted. The Rust library
 * writes these fields itself where the header has no debugging code
 * (rust/dmabuf_lock/acquire/ww.rs); there, it also sets up a second context with
 * ww_acquire_init() and compares the two byte for byte, but for the stamp (the second's is
 * newer) and the lock count (the second holds nothing). Not with lock debugging: lockdep reports
 * two contexts on one task, and the helper is C's own code there. Returns 1 when it compared the
 * bytes, 0 when not, -EINVAL on a mismatch.
 */
int dl_bench_c_check_ctx(struct dma_resv *obj, u32 held, unsigned long *stamp)
{
	struct ww_acquire_ctx *ctx = READ_ONCE(obj->lock.ctx);
	int compared = 0;

	if (!ctx || ctx->task != current || ctx->acquired != held || ctx->wounded ||
	    ctx->is_wait_die != reservation_ww_class.is_wait_die || !ctx->stamp ||
	    ctx->stamp > (unsigned long)atomic_long_read(&reservation_ww_class.stamp))
		return -EINVAL;
#if !defined(DEBUG_WW_MUTEXES) && !defined(CONFIG_DEBUG_LOCK_ALLOC) && \
	!defined(CONFIG_DEBUG_WW_MUTEX_SLOWPATH)
	{
		struct ww_acquire_ctx c, rust = *ctx;
		bool same;

		ww_acquire_init(&c, &reservation_ww_class);
		same = (long)(c.stamp - rust.stamp) > 0;
		rust.stamp = c.stamp;
		rust.acquired = c.acquired;
		same = same && !memcmp(&rust, &c, sizeof(c));
		ww_acquire_fini(&c);
		if (!same)
			return -EINVAL;
		compared = 1;
	}
#endif
	*stamp = ctx->stamp;
	return compared;
}

u32 dl_bench_online_cpus(void)
{
	return num_online_cpus();
}
