// SPDX-License-Identifier: GPL-2.0

//! Running a closure on a workqueue, for the project's test and benchmark modules.
//!
//! `Queue::try_spawn` of Linux 7.3 cannot be used by two modules loaded together: its work
//! items' lockdep class key is a static of the kernel crate, while the class name, a string
//! literal of the same generic function, is emitted into every module that instantiates it, so
//! the second module's work item meets the first one's class with a different name pointer and
//! lockdep warns "found a different class ... with the same key" (reproducer:
//! `tests/kbug/try_spawn_class_clash_{a,b}.rs`, boot `kernel-bug:try-spawn-class-clash`). Here
//! the work item type, its key and its name all belong to the module this file is compiled
//! into.

use kernel::{
    impl_has_work, new_work,
    prelude::*,
    workqueue::{Queue, Work, WorkItem},
};

/// A closure queued as a work item, with a lockdep class of the module's own.
#[pin_data]
struct ModuleWork<F> {
    #[pin]
    work: Work<ModuleWork<F>>,
    func: Option<F>,
}

impl_has_work! {
    impl{F} HasWork<Self> for ModuleWork<F> { self.work }
}

impl<F: FnOnce() + Send + 'static> WorkItem for ModuleWork<F> {
    type Pointer = Pin<KBox<Self>>;

    fn run(mut this: Pin<KBox<Self>>) {
        if let Some(func) = this.as_mut().project().func.take() {
            func();
        }
    }
}

/// The kernel's default unbound workqueue, `system_dfl_wq`.
///
/// Linux 7.3's `workqueue::system_unbound()` returns `system_unbound_wq`, which C deprecated for
/// this queue (6.17): a work item queued there makes the kernel say "enqueued on deprecated
/// workqueue" (README, Known issues; `kernel-bug:rust-system-queues-deprecated`).
pub(crate) fn system_dfl() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is set up by the workqueue code before any module loads and never
    // destroyed, so it points at a valid workqueue for `'static`.
    unsafe { Queue::from_raw(kernel::bindings::system_dfl_wq) }
}

/// Runs `func` on `queue`, allocating its work item with `GFP_KERNEL`.
pub(crate) fn spawn<F: FnOnce() + Send + 'static>(queue: &Queue, func: F) -> Result {
    let work = KBox::pin_init(
        pin_init!(ModuleWork {
            work <- new_work!("dmabuf_lock test work"),
            func: Some(func),
        }),
        GFP_KERNEL,
    )?;
    // A new work item cannot be queued already.
    queue.enqueue(work);
    Ok(())
}
