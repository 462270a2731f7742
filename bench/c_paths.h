/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C baselines the benchmark compares the Rust library against: the same operations written
 * the way a C driver writes them today, as a bare ww_mutex loop (c_paths.c) and, where the kernel
 * has it, with drm_exec (c_drm_exec.c).
 */
#ifndef DMABUF_LOCK_BENCH_C_PATHS_H
#define DMABUF_LOCK_BENCH_C_PATHS_H

#include <linux/dma-resv.h>
#include <linux/types.h>

/* The largest subset one contention round locks. */
#define DL_BENCH_MAX_SUBSET 8

/*
 * The contention workload's next subset of objs[0..n): k distinct indices (an odd stride over a
 * power-of-two n), from a xorshift seed. bench_main.rs computes the same sequence.
 */
static inline u32 dl_bench_next_subset(u32 *seed, u32 n, u32 *idx)
{
	u32 s = *seed, k, start, stride, i;

	s ^= s << 13;
	s ^= s >> 17;
	s ^= s << 5;
	*seed = s;
	k = 1 + s % DL_BENCH_MAX_SUBSET;
	start = (s >> 8) % n;
	stride = ((s >> 16) % n) | 1;
	for (i = 0; i < k; i++)
		idx[i] = (start + i * stride) % n;
	return k;
}

u64 dl_bench_c_lock_unlock(struct dma_resv *obj, u32 iters);
u64 dl_bench_c_lock_all(struct dma_resv **objs, u32 n, u32 iters);
u64 dl_bench_c_lock_all_via_helpers(struct dma_resv **objs, u32 n, u32 iters);
u64 dl_bench_c_signalling(u32 iters);
void dl_bench_c_contend(struct dma_resv **objs, u32 n, u32 rounds, u32 seed, u64 *backoffs);
int dl_bench_c_check_ctx(struct dma_resv *obj, u32 held, unsigned long *stamp);
u32 dl_bench_online_cpus(void);

/* drm_exec over GEM objects that share the given reservations (c_drm_exec.c). */
struct dl_bench_gem_set;
struct dl_bench_gem_set *dl_bench_gem_set_new(struct dma_resv **resvs, u32 count);
void dl_bench_gem_set_free(struct dl_bench_gem_set *set);
u64 dl_bench_exec_lock_all(struct dl_bench_gem_set *set, u32 n, u32 iters);
void dl_bench_exec_contend(struct dl_bench_gem_set *set, u32 rounds, u32 seed, u64 *backoffs);

#endif
