// SPDX-License-Identifier: GPL-2.0
/*
 * expect-splat: possible circular locking dependency detected[\s\S]*mmap_lock[\s\S]*reservation_ww_class_mutex
 *
 * A plain C module that faults under a reservation (R1): loaded after dmabuf_lock.ko, whose
 * priming (like the kernel's own) orders mmap_lock outside reservations, it is reported at its
 * first user copy. The test loads dmabuf_lock.ko first, as a driver stack would.
 */

#include <linux/dma-resv.h>
#include <linux/module.h>
#include <linux/uaccess.h>

static int __init c_fault_under_resv_init(void)
{
	struct dma_resv resv;
	char buf[16];
	unsigned long left;

	dma_resv_init(&resv);
	dma_resv_lock(&resv, NULL);
	left = copy_from_user(buf, (const void __user *)0, sizeof(buf));
	dma_resv_unlock(&resv);
	dma_resv_fini(&resv);
	pr_info("copied with %lu bytes left under a reservation\n", left);
	return 0;
}
module_init(c_fault_under_resv_init);

static void __exit c_fault_under_resv_exit(void)
{
}
module_exit(c_fault_under_resv_exit);

MODULE_DESCRIPTION("Lockdep negative test: a C driver faulting under a reservation (R1)");
MODULE_LICENSE("GPL");
