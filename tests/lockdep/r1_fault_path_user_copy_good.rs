// SPDX-License-Identifier: GPL-2.0

//! after-insmod: : </dev/r1_fault_path_user_copy_good
//!
//! The correct twin of `r1_fault_path_user_copy_bad.rs` (R1): the same buffer, mapped and
//! faulted in through the library's fault handler (the reservation inside `mmap_lock`), and a
//! job path that copies its arguments from user memory before it locks the reservation.
//! Loading it and opening its device must leave lockdep silent: the fault path itself is the
//! allowed direction.

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod faulting;

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

module! {
    type: R1FaultPathUserCopyGood,
    name: "r1_fault_path_user_copy_good",
    authors: ["dmabuf-lock developers"],
    description: "Lockdep positive test: user copy before the reservation that faults take (R1)",
    license: "GPL",
}

#[pin_data]
struct R1FaultPathUserCopyGood {
    #[pin]
    misc: MiscDeviceRegistration<Job>,
}

impl kernel::InPlaceModule for R1FaultPathUserCopyGood {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"r1_fault_path_user_copy_good",
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
            let copied = mapping.reader().read_slice(&mut relocs);
            let guard = buf.resv().lock(task);
            drop(guard);
            pr_info!("user copy before the reservation: {:?}\n", copied);
            Ok(())
        })?;
        Ok(KBox::new(Job, GFP_KERNEL)?)
    }
}
