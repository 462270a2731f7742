// SPDX-License-Identifier: GPL-2.0
/*
 * The real drm_exec as the benchmark's C baseline (built only when the kernel has
 * CONFIG_DRM_EXEC): what a C driver writes to lock its buffer objects for a submission.
 *
 * drm_exec locks GEM objects, so each reservation the Rust side locks gets a GEM object whose
 * resv pointer is that same dma_resv: drm_gem_private_object_init() keeps a resv set before the
 * call, and the object needs no backing store. The objects belong to a drm_device that is
 * allocated but never registered (no minor is visible to userspace), whose parent is a faux
 * device: the least a GEM object needs to be a real one.
 */

#include <linux/device/faux.h>
#include <linux/ktime.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_exec.h>
#include <drm/drm_gem.h>

#include "c_paths.h"

struct dl_bench_gem_set {
	struct faux_device *faux;
	struct drm_device *drm;
	u32 count;
	struct drm_gem_object *objs;
	/* Pointers into objs, in the order the caller gave their reservations. */
	struct drm_gem_object *ptrs[] __counted_by(count);
};

static const struct drm_driver dl_bench_drm_driver = {
	.driver_features = DRIVER_GEM,
	.name = "dmabuf_lock_bench",
	.desc = "dmabuf-lock benchmark objects",
	.major = 1,
};

struct dl_bench_gem_set *dl_bench_gem_set_new(struct dma_resv **resvs, u32 count)
{
	struct dl_bench_gem_set *set;
	u32 i;

	set = kzalloc(struct_size(set, ptrs, count), GFP_KERNEL);
	if (!set)
		return NULL;
	set->count = count;
	set->objs = kcalloc(count, sizeof(*set->objs), GFP_KERNEL);
	if (!set->objs)
		goto free_set;
	set->faux = faux_device_create("dmabuf_lock_bench", NULL, NULL);
	if (!set->faux)
		goto free_objs;
	set->drm = drm_dev_alloc(&dl_bench_drm_driver, &set->faux->dev);
	if (IS_ERR(set->drm))
		goto destroy_faux;
	for (i = 0; i < count; i++) {
		/* Set before the init, which then keeps it instead of pointing at obj->_resv. */
		set->objs[i].resv = resvs[i];
		drm_gem_private_object_init(set->drm, &set->objs[i], PAGE_SIZE);
		set->ptrs[i] = &set->objs[i];
	}
	return set;

destroy_faux:
	faux_device_destroy(set->faux);
free_objs:
	kfree(set->objs);
free_set:
	kfree(set);
	return NULL;
}

void dl_bench_gem_set_free(struct dl_bench_gem_set *set)
{
	u32 i;

	/* Every reference drm_exec took was dropped by drm_exec_fini(); the objects' own stay. */
	for (i = 0; i < set->count; i++)
		drm_gem_private_object_fini(&set->objs[i]);
	drm_dev_put(set->drm);
	faux_device_destroy(set->faux);
	kfree(set->objs);
	kfree(set);
}

/* Locks objs[0..n) with drm_exec, the way a driver's submission path does; returns backoffs. */
static u64 dl_bench_exec_lock(struct drm_exec *exec, struct drm_gem_object **objs, u32 n)
{
	u64 backoffs = 0;
	u32 i;
	int ret;

	drm_exec_until_all_locked(exec) {
		for (i = 0; i < n; i++) {
			ret = drm_exec_lock_obj(exec, objs[i]);
			if (drm_exec_is_contended(exec))
				backoffs++;
			drm_exec_retry_on_contention(exec);
			if (WARN_ON_ONCE(ret))
				return backoffs;
		}
	}
	return backoffs;
}

u64 dl_bench_exec_lock_all(struct dl_bench_gem_set *set, u32 n, u32 iters)
{
	u64 start = ktime_get_ns();
	struct drm_exec exec;
	u32 i;

	for (i = 0; i < iters; i++) {
		/* The capacity hint a driver passes when it knows its object count. */
		drm_exec_init(&exec, 0, n);
		dl_bench_exec_lock(&exec, set->ptrs, n);
		drm_exec_fini(&exec);
	}
	return ktime_get_ns() - start;
}

void dl_bench_exec_contend(struct dl_bench_gem_set *set, u32 rounds, u32 seed,
			   u64 *backoffs)
{
	struct drm_gem_object *subset[DL_BENCH_MAX_SUBSET];
	u32 idx[DL_BENCH_MAX_SUBSET];
	struct drm_exec exec;
	u32 i, r, k;

	*backoffs = 0;
	for (r = 0; r < rounds; r++) {
		k = dl_bench_next_subset(&seed, set->count, idx);
		for (i = 0; i < k; i++)
			subset[i] = set->ptrs[idx[i]];
		drm_exec_init(&exec, 0, k);
		*backoffs += dl_bench_exec_lock(&exec, subset, k);
		drm_exec_fini(&exec);
	}
}
