// SPDX-License-Identifier: GPL-2.0

//! `kmemleak_control.ko`: leaks `LEAKED_OBJECTS` allocations at init, as safe code may
//! (`KBox::leak`), and keeps no pointer to them. The case `control:kmemleak-finds-a-leak` loads
//! it in a boot with `kmemleak=on` and runs the kmemleak check of `boot:samples-faults`
//! (`scripts/test`), which must report every one of them: without it, a check that finds nothing
//! could be a check that cannot find anything.
//!
//! On Linux 7.3 kmemleak misses an object just allocated: something it scans still holds the
//! object's address (its reference count reads 1), until more objects of the same size are
//! allocated and freed. Measured with this module: 0 of 32 leaks reported without the churn
//! below, 32 of 32 with it. The module churns so that the control tests the check, not that.

use kernel::prelude::*;

module! {
    type: KmemleakControl,
    name: "kmemleak_control",
    authors: ["dmabuf-lock developers"],
    description: "Control: leaked allocations for kmemleak to find",
    license: "GPL",
}

/// The size of each leaked object.
const LEAKED_BYTES: usize = 200;

/// How many objects the module leaks; the boot reads the number from its message and expects as
/// many reports.
const LEAKED_OBJECTS: usize = 32;

/// How many objects of the same size are allocated and freed after the leaks.
const CHURN_OBJECTS: usize = 512;

struct KmemleakControl;

impl kernel::Module for KmemleakControl {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        for _ in 0..LEAKED_OBJECTS {
            KBox::leak(KBox::new([0x5a_u8; LEAKED_BYTES], GFP_KERNEL)?);
        }
        let mut churn = KVec::with_capacity(CHURN_OBJECTS, GFP_KERNEL)?;
        for _ in 0..CHURN_OBJECTS {
            churn.push(KBox::new([0_u8; LEAKED_BYTES], GFP_KERNEL)?, GFP_KERNEL)?;
        }
        drop(churn);
        pr_info!("leaked {LEAKED_OBJECTS} objects of {LEAKED_BYTES} bytes\n");
        Ok(Self)
    }
}
