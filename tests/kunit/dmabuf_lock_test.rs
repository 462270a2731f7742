// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_lock_test.ko`: KUnit suites for the dmabuf-lock library. They run when the module is
//! loaded (after `dmabuf_lock.ko`) and print KTAP.

use kernel::prelude::*;

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

mod common;
mod drm_exec_port_test;
mod export_list_test;
mod exporter_test;
mod fence_test;
mod irq_test;
#[path = "../support/lazy_exporter.rs"]
mod lazy_exporter;
mod lockdep_test;
mod locker_test;
mod resv_test;
mod signalling_test;
mod soundness_test;
mod st_dma_resv_port_test;
#[cfg(CONFIG_MMU_NOTIFIER)]
mod userptr_test;
#[path = "../support/work.rs"]
mod work;
mod ww_mutex_port_test;

module! {
    type: DmabufLockTest,
    name: "dmabuf_lock_test",
    authors: ["dmabuf-lock developers"],
    description: "KUnit suites for the dmabuf-lock library",
    license: "GPL",
}

struct DmabufLockTest;

impl kernel::Module for DmabufLockTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}
