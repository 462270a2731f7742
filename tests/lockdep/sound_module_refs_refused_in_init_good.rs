// SPDX-License-Identifier: GPL-2.0

//! Soundness: objects that point at a module's code are refused while its `init` runs.
//!
//! A module whose `init` fails is freed by `do_init_module()` whatever references are held on
//! it, so a signalling job made during `init` and still alive after a failing `init` returns
//! (forgotten, or queued with a delay) would run freed code. The library refuses such objects
//! with `EBUSY` until the module is live, as the module loader refuses its own users
//! (`strong_try_module_get()`): a signalling job, an interrupt job (its timers) and a fence of a
//! `FenceTimeline::with_hardware` timeline (its ops). A fence of a plain timeline is not one of
//! them: its code is the library core's, which is live. This module's `init` fails unless the
//! three are refused and the fence is made; before the check, they were made and the module did
//! not load.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::{
    fence::{FenceHardware, FenceTimeline},
    signalling::{PreparedIrqJob, SignallingQueue},
};
use kernel::prelude::*;

module! {
    type: SoundModuleRefsRefusedInInitGood,
    name: "sound_module_refs_refused_in_init_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: no fence or job pins a module that is still loading",
    license: "GPL",
}

struct SoundModuleRefsRefusedInInitGood;

/// Hardware that never finishes a job on its own.
struct Idle;

impl FenceHardware for Idle {
    fn signaled(&self, _seqno: u64) -> bool {
        false
    }
}

static IDLE: Idle = Idle;

impl kernel::Module for SoundModuleRefsRefusedInInitGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let task = init_task()?;
        let timeline = FenceTimeline::new();
        let fence = timeline
            .prepare(&task)
            .map(|prepared| prepared.arm().cancel());
        let queue = SignallingQueue::new(c"refused_in_init", &task)?;
        let job = queue
            .prepare(&task, &timeline, |fence, _section| fence.signal(Ok(())))
            .err();
        let irq_job = PreparedIrqJob::new(&task, &timeline, 1000, |_fence, _irq| Ok(())).err();
        let hw_timeline = FenceTimeline::with_hardware(c"refused_in_init", c"ring0", &IDLE)?;
        let hw_fence = hw_timeline.prepare(&task).err();
        pr_info!(
            "during init: fence {:?}, job {:?}, irq job {:?}, hardware fence {:?}\n",
            fence,
            job,
            irq_job,
            hw_fence
        );
        if fence.is_err() || job != Some(EBUSY) || irq_job != Some(EBUSY) || hw_fence != Some(EBUSY)
        {
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
