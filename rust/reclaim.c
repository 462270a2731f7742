// SPDX-License-Identifier: GPL-2.0
/*
 * Reclaim helpers of dmabuf_lock.ko: the shrinkers of the library's `Shrinker` and the lockdep
 * map that stands for mmu-notifier invalidation when priming (`Level::MmuNotifier`).
 *
 * A shrinker's callbacks are code of the module that registered it. A `Shrinker` that safe Rust
 * leaked (`mem::forget`, `KBox::leak`) is never freed by that module, so this module keeps a
 * list of the shrinkers registered through the library with their module, and frees those of a
 * module that goes away (unloaded, or its init failed), before its code is freed.
 */
#include <linux/completion.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/slab.h>

#include "reclaim.h"

/*
 * @shrinker: registered until taken, under dl_shrinkers_lock, by dl_shrinker_free() or
 *	dl_reap(); NULL once taken by dl_reap().
 * @owner: the module whose code @shrinker's callbacks are.
 * @node: in dl_shrinkers while @shrinker is set.
 * @reaped: completed by dl_reap() once it has freed @shrinker (its scans have returned);
 *	afterwards dl_reap() no longer touches this record.
 */
struct dl_shrinker {
	struct shrinker *shrinker;
	struct module *owner;
	struct list_head node;
	struct completion reaped;
};

static DEFINE_MUTEX(dl_shrinkers_lock);
static LIST_HEAD(dl_shrinkers);

struct dl_shrinker *dl_shrinker_register(const char *name, struct module *owner,
	unsigned long (*count)(struct shrinker *, struct shrink_control *),
	unsigned long (*scan)(struct shrinker *, struct shrink_control *),
	void *private_data)
{
	struct dl_shrinker *dl = kzalloc_obj(*dl);
	struct shrinker *shrinker;

	if (!dl)
		return ERR_PTR(-ENOMEM);
	shrinker = shrinker_alloc(0, "%s", name);
	if (!shrinker) {
		kfree(dl);
		return ERR_PTR(-ENOMEM);
	}
	shrinker->count_objects = count;
	shrinker->scan_objects = scan;
	shrinker->private_data = private_data;
	dl->shrinker = shrinker;
	dl->owner = owner;
	init_completion(&dl->reaped);

	mutex_lock(&dl_shrinkers_lock);
	/*
	 * From MODULE_STATE_GOING on, dl_module_going() may have run already for @owner, and
	 * would not see this shrinker.
	 */
	if (READ_ONCE(owner->state) == MODULE_STATE_GOING) {
		mutex_unlock(&dl_shrinkers_lock);
		shrinker_free(shrinker);
		kfree(dl);
		return ERR_PTR(-ENODEV);
	}
	list_add(&dl->node, &dl_shrinkers);
	shrinker_register(shrinker);
	mutex_unlock(&dl_shrinkers_lock);
	return dl;
}
EXPORT_SYMBOL_GPL(dl_shrinker_register);

/*
 * Unregisters (waiting for scans under way, RCU for the rest) and frees. If dl_reap() took the
 * shrinker first, waits until it has freed it: the caller drops the callbacks' data next.
 */
void dl_shrinker_free(struct dl_shrinker *dl)
{
	struct shrinker *shrinker;

	mutex_lock(&dl_shrinkers_lock);
	shrinker = dl->shrinker;
	if (shrinker)
		list_del(&dl->node);
	mutex_unlock(&dl_shrinkers_lock);
	if (shrinker)
		shrinker_free(shrinker);
	else
		wait_for_completion(&dl->reaped);
	kfree(dl);
}
EXPORT_SYMBOL_GPL(dl_shrinker_free);

/*
 * Frees the shrinkers still registered by @mod (by any module if @mod is NULL), one at a time,
 * without dl_shrinkers_lock: shrinker_free() waits for the scans under way, and a scan may drop
 * or register a shrinker itself. Their dl_shrinker stays allocated (its owner may still call
 * dl_shrinker_free() from code of the module that runs until then). Returns how many it freed.
 */
static unsigned int dl_reap(struct module *mod)
{
	unsigned int reaped = 0;

	for (;;) {
		struct dl_shrinker *dl, *found = NULL;
		struct shrinker *shrinker;

		mutex_lock(&dl_shrinkers_lock);
		list_for_each_entry(dl, &dl_shrinkers, node) {
			if (!mod || dl->owner == mod) {
				found = dl;
				break;
			}
		}
		if (!found) {
			mutex_unlock(&dl_shrinkers_lock);
			return reaped;
		}
		list_del(&found->node);
		shrinker = found->shrinker;
		found->shrinker = NULL;
		mutex_unlock(&dl_shrinkers_lock);

		pr_warn("dmabuf_lock: module %s leaked a shrinker; freed as the module goes\n",
			module_name(found->owner));
		/* Waits for its scans under way; none can start once it returns. */
		shrinker_free(shrinker);
		complete(&found->reaped);
		reaped++;
	}
}

/*
 * Called after a module's exit function (or its failed init) and before its memory is freed:
 * frees the shrinkers it leaked.
 */
static int dl_module_going(struct notifier_block *nb, unsigned long action, void *data)
{
	if (action != MODULE_STATE_GOING)
		return NOTIFY_DONE;
	dl_reap(data);
	return NOTIFY_OK;
}

static struct notifier_block dl_module_nb = {
	.notifier_call = dl_module_going,
};

int dl_reclaim_init(void)
{
	return register_module_notifier(&dl_module_nb);
}
EXPORT_SYMBOL_GPL(dl_reclaim_init);

/*
 * Called from this module's exit: the modules that link against it are gone, so what is left
 * was leaked by this module itself, whose GOING notification comes after its exit, too late.
 */
void dl_reclaim_exit(void)
{
	unregister_module_notifier(&dl_module_nb);
	WARN(dl_reap(NULL), "dmabuf_lock: shrinkers left at unload\n");
}
EXPORT_SYMBOL_GPL(dl_reclaim_exit);

#ifdef CONFIG_LOCKDEP
/*
 * The kernel's own map, __mmu_notifier_invalidate_range_start_map, is not exported (and exists
 * only with CONFIG_MMU_NOTIFIER). This one has its place in the order: dmabuf_lock.ko primes
 * fs_reclaim -> it -> fence wait at load, as dma_resv_lockdep() does with the kernel's. It is
 * another lockdep class, so it is named apart: a real invalidation does not take it, and lockdep
 * sees only the orders that drivers prime or annotate with it.
 */
static struct lockdep_map dl_mmu_notifier_lockdep_map =
	STATIC_LOCKDEP_MAP_INIT("dmabuf_lock_mmu_notifier", &dl_mmu_notifier_lockdep_map);

struct lockdep_map *dl_mmu_notifier_map(void)
{
	return &dl_mmu_notifier_lockdep_map;
}
EXPORT_SYMBOL_GPL(dl_mmu_notifier_map);
#endif
