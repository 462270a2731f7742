// SPDX-License-Identifier: GPL-2.0

//! What both sample drivers need: the C helpers they call (`rust/helpers.c`, exported by
//! `dmabuf_lock.ko`), and reading and writing ioctl arguments.

use super::uapi::DLS_UAPI_VERSION;
use core::mem::size_of;
use kernel::{
    bindings::{device, dma_data_direction, page, sg_table},
    error::Result,
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

// The pointee structs come from bindgen, which emits some kernel types empty; see the same
// allowance in `rust/dmabuf_lock/ffi.rs`.
#[allow(improper_ctypes)]
extern "C" {
    /// `vmap(pages, count, VM_MAP, PAGE_KERNEL)`.
    pub fn dl_vmap_pages(pages: *mut *mut page, count: u32) -> *mut c_void;
    /// `vunmap(addr)`.
    pub fn dl_vunmap(addr: *const c_void);
    /// `sg_alloc_table_from_pages()` over `count` whole pages, `GFP_KERNEL`.
    pub fn dl_sg_alloc_table_from_pages(
        sgt: *mut sg_table,
        pages: *mut *mut page,
        count: u32,
    ) -> i32;
    /// `dma_unmap_sgtable(dev, sgt, dir, 0)`.
    pub fn dl_dma_unmap_sgtable(dev: *mut device, sgt: *mut sg_table, dir: dma_data_direction);
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
