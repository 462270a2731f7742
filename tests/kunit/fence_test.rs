// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_fence`: the fence handle and driver fences (R3, R8).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_fence)]
mod tests {
    use crate::{
        common::{counter, counting_callback, task},
        dmabuf_lock::fence::{CallbackStatus, Fence, FenceTimeline},
    };
    use kernel::{
        prelude::*,
        sync::{aref::ARef, atomic::Relaxed},
    };

    #[test]
    fn driver_fence_signals_once() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let first = timeline.prepare(&task)?.arm();
        let second = timeline.prepare(&task)?.arm();
        let published: ARef<Fence> = first.fence().into();
        assert_ne!(published.context(), second.fence().context());
        assert!(second.fence().seqno() > published.seqno());
        assert!(!published.is_signaled());
        assert_eq!(published.status(), Ok(false));
        first.signal(Ok(()));
        assert!(published.is_signaled());
        assert_eq!(published.status(), Ok(true));
        second.signal(Ok(()));
        Ok(())
    }

    #[test]
    fn error_is_set_before_signalling() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        fence.signal(Err(EIO));
        assert!(published.is_signaled());
        assert_eq!(published.status(), Err(EIO));
        Ok(())
    }

    #[test]
    fn cancel_signals_ecanceled() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        fence.cancel();
        assert_eq!(published.status(), Err(ECANCELED));
        Ok(())
    }

    #[test]
    fn wait_times_out_then_returns() -> Result {
        let task = task()?;
        let timeline = FenceTimeline::new();
        let fence = timeline.prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        assert_eq!(published.wait(&task, false, 10), Ok(false));
        fence.signal(Ok(()));
        assert_eq!(published.wait(&task, true, 10), Ok(true));
        Ok(())
    }

    #[test]
    fn callback_runs_once() -> Result {
        let task = task()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let calls = counter()?;
        let mut cb = counting_callback(&calls)?;
        assert_eq!(
            cb.as_mut().add(fence.fence()),
            Ok(CallbackStatus::Registered)
        );
        assert_eq!(cb.as_mut().add(fence.fence()), Err(EBUSY));
        assert_eq!(calls.load(Relaxed), 0);
        fence.signal(Ok(()));
        assert_eq!(calls.load(Relaxed), 1);
        assert!(!cb.as_mut().remove());
        Ok(())
    }

    #[test]
    fn callback_on_signalled_fence_says_so() -> Result {
        let task = task()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let published: ARef<Fence> = fence.fence().into();
        fence.signal(Ok(()));
        let calls = counter()?;
        let mut cb = counting_callback(&calls)?;
        assert_eq!(
            cb.as_mut().add(&published),
            Ok(CallbackStatus::AlreadySignaled)
        );
        assert_eq!(calls.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn callback_removed_before_signal_never_runs() -> Result {
        let task = task()?;
        let fence = FenceTimeline::new().prepare(&task)?.arm();
        let calls = counter()?;
        let mut cb = counting_callback(&calls)?;
        assert_eq!(
            cb.as_mut().add(fence.fence()),
            Ok(CallbackStatus::Registered)
        );
        assert!(cb.as_mut().remove());
        fence.signal(Ok(()));
        assert_eq!(calls.load(Relaxed), 0);
        Ok(())
    }
}
