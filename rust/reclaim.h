/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of the reclaim helpers in reclaim.c (shrinkers and the mmu-notifier lockdep map);
 * rust/dmabuf_lock/shrinker.rs and rust/dmabuf_lock/lockdep.rs declare them for Rust.
 */
#ifndef DMABUF_LOCK_RECLAIM_H
#define DMABUF_LOCK_RECLAIM_H

#include <linux/lockdep.h>
#include <linux/module.h>
#include <linux/shrinker.h>

struct dl_shrinker;

struct dl_shrinker *dl_shrinker_register(const char *name, struct module *owner,
	unsigned long (*count)(struct shrinker *, struct shrink_control *),
	unsigned long (*scan)(struct shrinker *, struct shrink_control *),
	void *private_data);
void dl_shrinker_free(struct dl_shrinker *dl);
int dl_reclaim_init(void);
void dl_reclaim_exit(void);
#ifdef CONFIG_LOCKDEP
struct lockdep_map *dl_mmu_notifier_map(void);
#endif

#endif
