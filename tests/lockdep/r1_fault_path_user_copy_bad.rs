// SPDX-License-Identifier: GPL-2.0

//! expect-splat: possible circular locking dependency detected[\s\S]*mmap_lock[\s\S]*reservation_ww_class_mutex
//! after-insmod: : </dev/r1_fault_path_user_copy_bad
//!
//! Deliberately wrong (R1), the nouveau pushbuf pattern of the 2019 thread next to a real fault
//! path: a buffer exported with the library's `Exporter::fault` is mapped and faulted in (the
//! handler locks the reservation inside `mmap_lock`), then the "job path" locks the same
//! reservation and copies its arguments from user memory (that very mapping) with it held. The
//! page is present, so the copy does not fault this time; `might_fault()` annotates the
//! `mmap_lock` anyway, and lockdep reports the inversion.
//!
//! Its correct twin is `r1_fault_path_user_copy_good.rs`.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod faulting;

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

module! {
    type: R1FaultPathUserCopyBad,
    name: "r1_fault_path_user_copy_bad",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep negative test: user copy under a reservation that faults take (R1)",
    license: "GPL",
}

#[pin_data]
struct R1FaultPathUserCopyBad {
    #[pin]
    misc: MiscDeviceRegistration<Job>,
}

impl kernel::InPlaceModule for R1FaultPathUserCopyBad {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"r1_fault_path_user_copy_bad",
            }),
        })
    }
}

/// Opening the device runs the job.
struct Job;

#[vtable]
impl MiscDevice for Job {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        faulting::with_faulted_mapping(|task, buf, mapping| {
            let mut relocs = [0u8; 64];
            let guard = buf.resv().lock(task);
            let copied = mapping.reader().read_slice(&mut relocs);
            drop(guard);
            pr_info!("user copy under the reservation: {:?}\n", copied);
            Ok(())
        })?;
        Ok(KBox::new(Job, GFP_KERNEL)?)
    }
}
