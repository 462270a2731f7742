// SPDX-License-Identifier: GPL-2.0

//! A read-only mapping of a dma-buf into the calling process, read back through the user-copy
//! API: how an importer reads a buffer whose pages it cannot see, without `dma_buf_vmap()`
//! (which warns whenever the exporter's vmap fails, as it does when memory is short).

use super::super::context::MayBlock;
use super::DmaBuf;
use kernel::{
    bindings,
    prelude::*,
    types::NotThreadSafe,
    uaccess::{UserPtr, UserSlice, UserSliceReader},
};

/// `PROT_READ` and `MAP_SHARED` of `<uapi/asm-generic/mman-common.h>` (bindgen does not see
/// them): the same on every architecture.
const PROT_READ: kernel::ffi::c_ulong = 0x1;
const MAP_SHARED: kernel::ffi::c_ulong = 0x1;

/// A read-only, shared mapping of a whole dma-buf in the calling process's address space
/// (`vm_mmap()`), as the process's own `mmap()` of the buffer's fd would make; unmapped on drop
/// (`vm_munmap()`).
///
/// The mapping is user memory: the kernel reads it only through [`UserMapping::reader`], which
/// copies and returns `EFAULT` for what the process has unmapped or replaced meanwhile.
///
/// # Invariants
///
/// `addr..addr + len` was mapped in the address space of the task that made the value, which is
/// the current task (the value is `!Send`), unless that process has changed its mappings since
/// (its own business: the kernel never dereferences the range directly).
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf};
/// # let task = MayBlock::new()?;
/// // A kthread (as this example runs in) has no address space to map into.
/// fn mapped_len(task: &MayBlock, fd: i32) -> Result<usize> {
///     Ok(DmaBuf::from_fd(fd)?.map_user_read(task)?.reader().len())
/// }
/// assert_eq!(mapped_len(&task, -1).err(), Some(EBADF));
/// # Ok::<(), Error>(())
/// ```
pub struct UserMapping<'a> {
    _buf: &'a DmaBuf,
    addr: usize,
    len: usize,
    _not_send: NotThreadSafe,
}

impl DmaBuf {
    /// Maps the whole buffer read-only into the calling process: `EINVAL` on a task without a
    /// user address space (a kthread), the errors of `mmap()` otherwise (the exporter's `mmap`
    /// included). It takes the process's `mmap_lock`, so hold no reservation (R1).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, dmabuf::DmaBuf};
    /// fn first_byte(task: &MayBlock, buf: &DmaBuf) -> Result<u8> {
    ///     let mapping = buf.map_user_read(task)?;
    ///     let mut byte = [0u8];
    ///     mapping.reader().read_slice(&mut byte)?;
    ///     Ok(byte[0])
    /// }
    /// ```
    pub fn map_user_read(&self, _task: &MayBlock) -> Result<UserMapping<'_>> {
        if kernel::current!().mm().is_none() {
            return Err(EINVAL);
        }
        let len = self.size();
        // SAFETY: The current task has an address space (checked above), which this changes
        // with a new mapping at an address of the kernel's choice (no `MAP_FIXED`, so no
        // existing mapping is replaced); the file is live, referenced by the dma-buf.
        let addr = unsafe {
            bindings::vm_mmap(
                self.file_ptr(),
                0,
                len as kernel::ffi::c_ulong,
                PROT_READ,
                MAP_SHARED,
                0,
            )
        };
        // `vm_mmap` returns an address or a negative errno.
        if let Ok(errno @ -4095..=-1) = i32::try_from(addr as isize) {
            return Err(Error::from_errno(errno));
        }
        // INVARIANT: Just mapped in the current task's address space.
        Ok(UserMapping {
            _buf: self,
            addr: addr as usize,
            len,
            _not_send: NotThreadSafe,
        })
    }
}

impl UserMapping<'_> {
    /// Returns a reader of the mapped buffer (user copies: a page the process has unmapped
    /// meanwhile is `EFAULT`).
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::UserMapping;
    /// fn len(mapping: &UserMapping<'_>) -> usize {
    ///     mapping.reader().len()
    /// }
    /// ```
    pub fn reader(&self) -> UserSliceReader {
        UserSlice::new(UserPtr::from_addr(self.addr), self.len).reader()
    }
}

impl Drop for UserMapping<'_> {
    fn drop(&mut self) {
        // Unmapping takes `mmap_lock`; where the task cannot sleep, the mapping stays in the
        // process (its memory, released when it exits).
        if MayBlock::new().is_err() {
            return;
        }
        // SAFETY: Unmaps the range mapped in `map_user_read`, in the same process (the value is
        // `!Send`); whatever the process mapped there since is its own.
        unsafe { bindings::vm_munmap(self.addr, self.len) };
    }
}
