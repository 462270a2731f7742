// SPDX-License-Identifier: GPL-2.0

//! What both sample drivers need: the C helpers they call (`rust/helpers.c`, exported by
//! `dmabuf_lock.ko`), and reading and writing ioctl arguments.

use super::uapi::{
    DliImport, DliOp, DliUserptr, DliUserptrJob, DlsCreate, DlsJob, DlsState, DLS_UAPI_VERSION,
};
use core::mem::size_of;
use kernel::{
    bindings::device,
    error::Result,
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

// The pointee structs come from bindgen, which emits some kernel types empty; see the same
// allowance in `rust/dmabuf_lock/ffi.rs`.
#[allow(improper_ctypes)]
extern "C" {
    /// `dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64))`.
    pub fn dl_dma_coerce_mask_64(dev: *mut device) -> i32;
}

/// Reads an ioctl argument from `arg` and checks its version and size (`EINVAL` otherwise);
/// `header` returns the argument's `(version, size)`.
pub fn read_arg<T: FromBytes + Copy>(arg: usize, header: impl Fn(&T) -> (u32, u32)) -> Result<T> {
    let value: T = UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read()?;
    let (version, size) = header(&value);
    if version != DLS_UAPI_VERSION || size as usize != size_of::<T>() {
        return Err(EINVAL);
    }
    Ok(value)
}

/// Writes an ioctl argument back to `arg`.
pub fn write_arg<T: AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .writer()
        .write(value)
}

/// The size of the field that `field` projects to, which must be plain bytes (an integer or an
/// array of them).
const fn field_size<S, F: FromBytes + AsBytes>(_field: for<'a> fn(&'a S) -> &'a F) -> usize {
    size_of::<F>()
}

/// Lets [`read_arg`] and [`write_arg`] copy the uapi structs as bytes, checked at compile time:
/// the list names every field exactly once (an exhaustive pattern), each field is plain bytes,
/// and their sizes add up to the struct's, so there is no padding.
macro_rules! uapi_bytes {
    ($($ty:ident { $($field:ident),+ $(,)? }),+ $(,)?) => {$(
        const _: () = {
            let _every_field_once = |arg: &$ty| {
                let $ty { $($field: _),+ } = arg;
            };
            assert!(size_of::<$ty>() == 0 $(+ field_size(|arg: &$ty| &arg.$field))+);
        };
        // SAFETY: Every byte of the struct belongs to a field (no padding, checked above), and
        // every field is plain bytes: all bit patterns are valid.
        unsafe impl FromBytes for $ty {}
        // SAFETY: As above: no padding, so every byte is initialised.
        unsafe impl AsBytes for $ty {}
    )+};
}

uapi_bytes! {
    DlsCreate { version, size, pages, fd, pad },
    DlsJob { version, size, fds_ptr, count, delay_ms, seqno },
    DlsState { version, size, fd, flags, pages_in_memory, evictions, freed_pages, restores },
    DliImport { version, size, fd, handle },
    DliOp { version, size, handle, timeout_ms, result },
    DliUserptr { version, size, addr, len, handle, flags },
    DliUserptrJob { version, size, handle, delay_ms, seqno },
}
