/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C baselines the benchmark compares the Rust library against: the same operations written
 * the way a C driver writes them today.
 */
#ifndef DMABUF_LOCK_BENCH_C_PATHS_H
#define DMABUF_LOCK_BENCH_C_PATHS_H

#include <linux/dma-resv.h>
#include <linux/types.h>

u64 dl_bench_c_lock_unlock(struct dma_resv *obj, u32 iters);
u64 dl_bench_c_lock_all(struct dma_resv **objs, u32 n, u32 iters);
u64 dl_bench_c_signalling(u32 iters);
void dl_bench_c_contend(struct dma_resv **objs, u32 n, u64 duration_ns, u32 seed,
			u64 *acquisitions, u64 *backoffs);

#endif
