// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_lock.ko`: the library core.
//!
//! It exports the C helpers (`rust/helpers.c`) that every other module of the project calls, so
//! it is loaded first. The library itself is source shared by all modules: see
//! `rust/dmabuf_lock/mod.rs`.

use kernel::prelude::*;

module! {
    type: DmabufLock,
    name: "dmabuf_lock",
    authors: ["dmabuf-lock developers"],
    description: "Safe dma-buf locking for Rust drivers: library core",
    license: "GPL",
}

struct DmabufLock;

impl kernel::Module for DmabufLock {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("library core loaded\n");
        Ok(Self)
    }
}
