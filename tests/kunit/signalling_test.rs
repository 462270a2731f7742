// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_signalling`: fence-signalling critical sections (R3, R4, R5, R8).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_signalling)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            fence::FenceTimeline,
            resv::{FenceUsage, OwnedResv},
            signalling::{
                might_wait_for_fence, spawn_signalling_work, SectionGfp, SignallingQueue,
            },
        },
    };
    use kernel::prelude::*;

    #[test]
    fn section_nests() -> Result {
        let mut task = task()?;
        let timeline = FenceTimeline::new();
        let prepared = timeline.prepare(&task)?;
        let mut section = task.signalling_section();
        let fence = prepared.arm();
        let outer = section.alloc(fence.fence().seqno(), SectionGfp::Atomic)?;
        {
            let inner = section.nested();
            let copy = inner.alloc(*outer, SectionGfp::NoWait)?;
            assert_eq!(*copy, fence.fence().seqno());
        }
        fence.signal(Ok(()));
        drop(section);
        // The task context is usable again once the section has ended.
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        drop(resv.lock(&task));
        Ok(())
    }

    /// The job pattern: lock, publish a write fence, unlock, and signal it from a work item that
    /// runs inside a signalling section; the waiter sees it signalled.
    #[test]
    fn work_item_signals_inside_a_section() -> Result {
        let task = task()?;
        let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        {
            let mut guard = resv.lock(&task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), FenceUsage::Write)?;
        }
        assert!(!resv.test_signaled(FenceUsage::Read));
        let queue = SignallingQueue::new(c"dl_kunit_signal", &task)?;
        spawn_signalling_work(&task, &queue, move |section| {
            if let Ok(stamp) = section.alloc(0u64, SectionGfp::Atomic) {
                drop(stamp);
            }
            fence.signal(Ok(()));
        })?;
        assert_eq!(resv.wait(&task, FenceUsage::Read, false, 5000), Ok(true));
        assert!(resv.test_signaled(FenceUsage::Bookkeep));
        Ok(())
    }

    /// Annotating a path as "may wait for a fence" outside any section is silent; lockdep
    /// would report it inside one that holds a lock the signaller needs.
    #[test]
    fn might_wait_outside_sections() -> Result {
        let task = task()?;
        might_wait_for_fence(&task);
        Ok(())
    }
}
