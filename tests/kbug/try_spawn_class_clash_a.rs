// SPDX-License-Identifier: GPL-2.0

//! Linux 7.3 bug reproducer, module a of two: loaded together with
//! `try_spawn_class_clash_b.ko`, the second of the two makes lockdep warn that
//! `Queue::try_spawn`'s work class has two names.
//! See `tests/support/work.rs` for why and for the project's way around it.

use kernel::prelude::*;

#[path = "try_spawn_once.rs"]
mod try_spawn_once;

module! {
    type: TrySpawnClassClash,
    name: "try_spawn_class_clash_a",
    authors: ["dmabuf-lock developers"],
    description: "Queue::try_spawn lock class clash reproducer (a)",
    license: "GPL",
}

struct TrySpawnClassClash;

impl kernel::Module for TrySpawnClassClash {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        try_spawn_once::spawn_and_wait()?;
        Ok(Self)
    }
}
