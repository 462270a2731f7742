// SPDX-License-Identifier: GPL-2.0

//! What the twins `r1_fault_path_user_copy_{bad,good}` share: a buffer exported with the
//! library's fault path (`Exporter::fault`, `tests/support/lazy_exporter.rs`), mapped into the
//! calling process and faulted in for real, which takes the buffer's reservation inside the
//! process's `mmap_lock` (R1's allowed direction). Run from a misc device's `open` (a process
//! with an address space, once the module is live: a module may export buffers only then); the
//! test opens the device after loading the module (the `after-insmod:` line of each twin).

use crate::dmabuf_lock::{
    context::MayBlock,
    dmabuf::{DmaBuf, UserMapping},
};
use kernel::prelude::*;

#[path = "../support/lazy_exporter.rs"]
mod lazy_exporter;
use lazy_exporter::LazyPages;

/// Exports a page, maps it into the calling process, reads a byte through the mapping (a real
/// fault: `mmap_lock`, then the reservation, in the library's handler), and hands the buffer
/// and its mapping, its page now present, to `job`.
pub fn with_faulted_mapping(
    job: impl FnOnce(&MayBlock, &DmaBuf, &UserMapping<'_>) -> Result,
) -> Result {
    let task = MayBlock::new()?;
    let buf = LazyPages::export(&task, 1)?;
    let mapping = buf.dmabuf().map_user_read(&task)?;
    let mut byte = [0u8];
    mapping.reader().read_slice(&mut byte)?;
    pr_info!(
        "faulted in the exported page ({} fault)\n",
        buf.data().faults()
    );
    job(&task, buf.dmabuf(), &mapping)
}
