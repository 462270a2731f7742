// SPDX-License-Identifier: GPL-2.0

//! Correct twin of `sound_may_block_refused_bad.rs` (R4): the proof is asked for outside any
//! section and outside atomic context, where it is given without a report, as often as needed.

pub mod common;
#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::context::MayBlock;
use kernel::prelude::*;

module! {
    type: SoundMayBlockRefusedGood,
    name: "sound_may_block_refused_good",
    authors: ["dmabuf-lock developers"],
    description: "Soundness test: the may-block proof given where the task may block",
    license: "GPL",
}

struct SoundMayBlockRefusedGood;

impl kernel::Module for SoundMayBlockRefusedGood {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = MayBlock::new()?;
        drop(task.signalling_section());
        let _again = MayBlock::new()?;
        pr_info!("proof given twice, around a section\n");
        Ok(Self)
    }
}
