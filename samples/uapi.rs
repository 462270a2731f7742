// SPDX-License-Identifier: GPL-2.0

//! The Rust mirror of `samples/uapi/dmabuf_lock_sample.h`, shared by the sample drivers and the
//! userspace test. It depends on nothing, so both sides include the same file. The structs have
//! no implicit padding, and their sizes are checked below at compile time.

/// The interface version every argument carries.
pub const DLS_UAPI_VERSION: u32 = 1;
/// Largest buffer, in pages.
pub const DLS_MAX_PAGES: u64 = 1024;
/// Most buffers in one job.
pub const DLS_MAX_JOB_BUFFERS: u32 = 64;
/// Most pages the live buffers created through one open exporter file may hold.
pub const DLS_MAX_FILE_PAGES: u64 = 16384;
/// A job's `delay_ms` flag: the job never completes, its watchdog times it out.
pub const DLS_JOB_HANG: u32 = 1 << 31;
/// How long after its delay a job's watchdog signals its fence with `-ETIMEDOUT`.
pub const DLS_JOB_GRACE_MS: u32 = 1000;

/// `struct dls_create`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DlsCreate {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DlsCreate>()`.
    pub size: u32,
    /// Pages to allocate.
    pub pages: u64,
    /// Out: the dma-buf fd.
    pub fd: i32,
    /// Zero (`EINVAL` otherwise).
    pub pad: u32,
}

/// `struct dls_job`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DlsJob {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DlsJob>()`.
    pub size: u32,
    /// User pointer to `count` dma-buf fds.
    pub fds_ptr: u64,
    /// Number of buffers.
    pub count: u32,
    /// Milliseconds until the job's fence signals, or'ed with [`DLS_JOB_HANG`] for a job that
    /// never completes.
    pub delay_ms: u32,
    /// Out: the fence's sequence number.
    pub seqno: u64,
}

/// `struct dls_state`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DlsState {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DlsState>()`.
    pub size: u32,
    /// A dma-buf fd of a buffer created through this exporter file.
    pub fd: i32,
    /// In: zero. Out: [`DLS_STATE_EVICTED`] if the shrinker evicted the buffer.
    pub flags: u32,
    /// Out: the buffer's pages in memory (all of them while resident).
    pub pages_in_memory: u64,
    /// Out: buffers of this file the shrinker evicted so far.
    pub evictions: u64,
    /// Out: all-zero pages those evictions freed.
    pub freed_pages: u64,
    /// Out: evicted buffers of this file brought back by a map, vmap or mmap.
    pub restores: u64,
}

/// `dls_state.flags`: the buffer is evicted.
pub const DLS_STATE_EVICTED: u32 = 1;

/// `struct dli_import`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DliImport {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DliImport>()`.
    pub size: u32,
    /// The dma-buf fd to import.
    pub fd: i32,
    /// Out: the handle.
    pub handle: u32,
}

/// `struct dli_op`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DliOp {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DliOp>()`.
    pub size: u32,
    /// The imported handle.
    pub handle: u32,
    /// Timeout of a wait, in milliseconds.
    pub timeout_ms: u32,
    /// Out: the operation's result.
    pub result: u64,
}

/// `struct dli_userptr`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DliUserptr {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DliUserptr>()`.
    pub size: u32,
    /// Start of the range: page-aligned.
    pub addr: u64,
    /// Length of the range in bytes: whole pages, at most [`DLS_MAX_PAGES`] of them.
    pub len: u64,
    /// Out: the handle.
    pub handle: u32,
    /// Zero (`EINVAL` otherwise).
    pub flags: u32,
}

/// `struct dli_userptr_job`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct DliUserptrJob {
    /// [`DLS_UAPI_VERSION`].
    pub version: u32,
    /// `size_of::<DliUserptrJob>()`.
    pub size: u32,
    /// The userptr handle.
    pub handle: u32,
    /// As [`DlsJob::delay_ms`].
    pub delay_ms: u32,
    /// Out: the fence's sequence number.
    pub seqno: u64,
}

const _: () = assert!(core::mem::size_of::<DlsCreate>() == 24);
const _: () = assert!(core::mem::size_of::<DlsJob>() == 32);
const _: () = assert!(core::mem::size_of::<DlsState>() == 48);
const _: () = assert!(core::mem::size_of::<DliImport>() == 16);
const _: () = assert!(core::mem::size_of::<DliOp>() == 24);
const _: () = assert!(core::mem::size_of::<DliUserptr>() == 32);
const _: () = assert!(core::mem::size_of::<DliUserptrJob>() == 24);

/// `_IOWR('D', nr, size)`.
const fn iowr(nr: u32, size: usize) -> u32 {
    (3 << 30) | ((size as u32) << 16) | (('D' as u32) << 8) | nr
}

/// Create a buffer.
pub const DLS_IOCTL_CREATE: u32 = iowr(0x40, core::mem::size_of::<DlsCreate>());
/// Submit a job.
pub const DLS_IOCTL_JOB: u32 = iowr(0x41, core::mem::size_of::<DlsJob>());
/// Move a buffer: importers' mappings are invalidated.
pub const DLS_IOCTL_EVICT: u32 = iowr(0x42, core::mem::size_of::<DlsCreate>());
/// Where a buffer is, and what the file's shrinker did.
pub const DLS_IOCTL_STATE: u32 = iowr(0x43, core::mem::size_of::<DlsState>());
/// Import a dma-buf.
pub const DLI_IOCTL_IMPORT: u32 = iowr(0x50, core::mem::size_of::<DliImport>());
/// Map the attachment under the reservation.
pub const DLI_IOCTL_MAP: u32 = iowr(0x51, core::mem::size_of::<DliOp>());
/// Wait for the buffer's implicit write fences.
pub const DLI_IOCTL_WAIT: u32 = iowr(0x52, core::mem::size_of::<DliOp>());
/// Checksum the buffer through CPU access.
pub const DLI_IOCTL_CHECKSUM: u32 = iowr(0x53, core::mem::size_of::<DliOp>());
/// Release the handle.
pub const DLI_IOCTL_RELEASE: u32 = iowr(0x54, core::mem::size_of::<DliOp>());
/// Wrap a range of the caller's memory (an mmu notifier watches it).
pub const DLI_IOCTL_USERPTR: u32 = iowr(0x55, core::mem::size_of::<DliUserptr>());
/// A job that uses a userptr.
pub const DLI_IOCTL_USERPTR_JOB: u32 = iowr(0x56, core::mem::size_of::<DliUserptrJob>());
/// How many invalidations of a userptr waited for a job.
pub const DLI_IOCTL_USERPTR_WAITED: u32 = iowr(0x57, core::mem::size_of::<DliOp>());

/// FNV-1a, 64 bits: the checksum both sides compute.
pub fn checksum(bytes: &[u8]) -> u64 {
    checksum_more(CHECKSUM_START, bytes)
}

/// The FNV-1a state before any byte.
pub const CHECKSUM_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues a checksum with more bytes: `checksum_more(checksum(a), b)` is the checksum of `a`
/// followed by `b`.
pub fn checksum_more(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
