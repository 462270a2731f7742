// SPDX-License-Identifier: GPL-2.0

//! expect-splat: MayBlock refused: atomic context or fence-signalling section
//!
//! Deliberately wrong (R4): asks for a second proof that the task may block where it may not.
//! The borrow checker keeps the first proof out of a section, but cannot see a second one made
//! inside it; the proof's constructor is safe, so it checks: inside a fence-signalling critical
//! section and under a spinlock it warns once and returns `EDEADLK`. The module fails to load
//! if either is accepted.
//!
//! Its correct twin is `sound_may_block_refused_good.rs`.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use common::init_task;
use dmabuf_lock::context::MayBlock;
use kernel::{new_spinlock, prelude::*};

module! {
    type: SoundMayBlockRefusedBad,
    name: "sound_may_block_refused_bad",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: the may-block proof refused in a section and under a spinlock",
    license: "GPL",
}

struct SoundMayBlockRefusedBad;

impl kernel::Module for SoundMayBlockRefusedBad {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = init_task()?;
        let section = task.signalling_section();
        let in_section = MayBlock::new().err();
        drop(section);
        let lock = KBox::pin_init(new_spinlock!(()), GFP_KERNEL)?;
        let under_spinlock = {
            let _held = lock.lock();
            MayBlock::new().err()
        };
        pr_info!("refused in a section: {in_section:?}, under a spinlock: {under_spinlock:?}\n");
        if in_section != Some(EDEADLK) || under_spinlock != Some(EDEADLK) {
            return Err(EINVAL);
        }
        Ok(Self)
    }
}
