// SPDX-License-Identifier: GPL-2.0

//! Soundness: objects that point at a module's code are refused while its `init` runs.
//!
//! A module whose `init` fails is freed by `do_init_module()` whatever references are held on
//! it, so a signalling job made during `init` and still alive after a failing `init` returns
//! (forgotten, or queued with a delay) would run freed code. The library refuses such objects
//! with `EBUSY` until the module is live, as the module loader refuses its own users
//! (`strong_try_module_get()`). A fence is not one of them: its code is the library core's,
//! which is live. This module's `init` fails unless the job is refused and the fence is made;
//! before the check, the job was made and the module did not load.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::{fence::FenceTimeline, signalling::SignallingQueue};
use kernel::prelude::*;

module! {
    type: SoundModuleRefsRefusedInInitGood,
    name: "sound_module_refs_refused_in_init_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: no fence or job pins a module that is still loading",
    license: "GPL",
}

struct SoundModuleRefsRefusedInInitGood;

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
        pr_info!("during init: fence {:?}, job {:?}\n", fence, job);
        if fence.is_err() || job != Some(EBUSY) {
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
