// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_exporter.ko`: a sample dma-buf exporter written against dmabuf-lock.
//!
//! `/dev/dmabuf_exporter` creates buffers of system pages and hands them out as dma-buf fds. The
//! buffer type implements the library's `Exporter` (pin and unpin, map and unmap with an
//! `sg_table`, CPU page faults on a mapped buffer, `vmap` and `vunmap`; dropping it is the
//! release), from which the library makes the `dma_buf_ops` and the mappings' fault handler. Its job ioctl is the dma-buf submission
//! pattern: copy the arguments in (before any lock, R1), lock every buffer with the multi-object
//! locker (R6), publish one write fence on each, unlock, and signal the fence from the
//! "hardware"'s completion interrupt, an hrtimer (R4, R8). The job's fence and timers are
//! allocated before any lock, and the submission tail, from publishing the fence to handing the
//! job to the hardware, is a signalling section in which nothing allocates (R4). A watchdog
//! signals the fence of a job whose hardware never completes with `-ETIMEDOUT` (R8). Its evict
//! ioctl moves a buffer under its reservation, so dynamic importers see `invalidate_mappings`
//! (R10) and processes that map it fault again on their next access, unless an importer has pinned it (`EBUSY`). The callbacks that the core calls with the
//! reservation held get the library's proof that it is held, which reaches the pin count guarded
//! by it and cannot lock it again (R10).
//!
//! Under memory pressure, each open file's shrinker evicts the buffers it created that are idle
//! (R2): it reaches them through the library's `ExportList`, which does not keep them alive,
//! locks their reservations only with `try_lock` (reclaim may not wait for a reservation), and
//! skips a buffer with an unsignalled fence (a job still uses it), a pin, an importer's mapping
//! or a process's mapping. The guest has no swap, so an evicted buffer keeps the pages that hold
//! data and frees the ones that are all zero, as zram does for same-filled pages; using it again
//! (an importer's map, a vmap, an `mmap`, a job) brings it back, with zeroed pages for those.
//! The pages are shared with the mappings made of them (`SharedPages`), so a buffer's pages can
//! be replaced under its reservation while an old mapping still holds the old ones.
//! `DLS_IOCTL_STATE` tells userspace where a buffer is and what the shrinker did.
//!
//! The ioctls are in `samples/uapi/dmabuf_lock_sample.h`. Each exported buffer holds a module
//! reference, so the module cannot be unloaded while buffers are alive; so does each job until
//! its timers are done, since they run this module's code. The jobs' fences report the driver
//! name `dmabuf_exporter`.
//!
//! Buffer pages are charged to the caller's memory cgroup, and the buffers one open file has
//! created and that are still alive hold at most [`DLS_MAX_FILE_PAGES`] pages.

use core::mem::size_of;
use kernel::{
    bindings,
    dma::DataDirection,
    fs::{file::FileDescriptorReservation, File},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, UniqueArc,
    },
    uaccess::{UserPtr, UserSlice},
};
use pin_init::stack_pin_init;

#[path = "../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;
pub mod sys;
pub mod uapi;

use core::ops::ControlFlow;
use dmabuf_lock::{
    context::MayBlock,
    dmabuf::{
        page_is_zero, DmaBuf, ExportList, ExportOps, ExportedAttachment, ExportedBuf, Exporter,
        Listed, PageMapping, PageVmap, SharedPages,
    },
    fence::FenceTimeline,
    lockdep::ReclaimScope,
    locker::{LockerFlags, ResvLocker},
    resv::{FenceUsage, HoldsResv, ResvCell, ResvHeld},
    shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
    signalling::{HwCompletion, PreparedIrqJob},
};
use uapi::{
    DlsCreate, DlsJob, DlsState, DLS_JOB_GRACE_MS, DLS_JOB_HANG, DLS_MAX_FILE_PAGES,
    DLS_MAX_JOB_BUFFERS, DLS_MAX_PAGES, DLS_STATE_EVICTED,
};

module! {
    type: ExporterModule,
    name: "dmabuf_exporter",
    authors: ["dmabuf-lock developers"],
    description: "dmabuf-lock sample: a dma-buf exporter with fenced jobs",
    license: "GPL",
}

#[pin_data]
struct ExporterModule {
    #[pin]
    misc: MiscDeviceRegistration<ExporterFile>,
}

impl kernel::InPlaceModule for ExporterModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"dmabuf_exporter",
            }),
        })
    }
}

/// Pages held by the live buffers one file has created, at most [`DLS_MAX_FILE_PAGES`].
struct PageBudget(Atomic<u64>);

/// A charge of `pages` against a [`PageBudget`], given back on drop.
struct Charge {
    budget: Arc<PageBudget>,
    pages: u64,
}

impl Charge {
    /// Charges `pages` to `budget`: `ENOSPC` if it would go over.
    fn new(budget: &Arc<PageBudget>, pages: u64) -> Result<Self> {
        let charge = Self {
            budget: budget.clone(),
            pages,
        };
        if budget.0.fetch_add(pages, Relaxed) + pages > DLS_MAX_FILE_PAGES {
            // Dropping the charge gives the pages back.
            return Err(ENOSPC);
        }
        Ok(charge)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.fetch_sub(self.pages, Relaxed);
    }
}

/// An open `/dev/dmabuf_exporter`: the timeline of its jobs' fences, what its buffers hold, and
/// the shrinker that evicts them.
struct ExporterFile {
    timeline: FenceTimeline,
    budget: Arc<PageBudget>,
    pool: Shrinker<Pool>,
}

/// What one file's shrinker knows: the buffers the file created (without keeping them alive),
/// and counters that its buffers share.
struct Pool {
    buffers: ExportList<Buffer>,
    stats: Arc<PoolStats>,
}

/// Counters of one file's buffers, for its shrinker's `count` and for `DLS_IOCTL_STATE`.
struct PoolStats {
    /// Pages of the buffers that are resident: what the shrinker could free at most.
    resident: Atomic<usize>,
    /// Buffers evicted, all-zero pages freed doing so, and evicted buffers brought back.
    evictions: Atomic<u64>,
    freed_pages: Atomic<u64>,
    restores: Atomic<u64>,
}

impl Shrink for Pool {
    fn count(&self) -> usize {
        self.stats.resident.load(Relaxed)
    }

    /// Evicts idle buffers, oldest first, until `nr_to_scan` pages are freed. Only all-zero
    /// pages are freed, so a pass over buffers full of data evicts every idle one and frees
    /// nothing (the next fault or map brings each back): stopping at the kernel's scan budget
    /// instead needs the scan to start where the last one ended (busy and evicted buffers at
    /// the head of the list used up the budget, measured). The buffers are visited under the
    /// list's lock, which their release waits for; nothing here allocates, and reservations are
    /// only try-locked (R2).
    fn scan(&self, reclaim: &ReclaimScope<'_>, control: &mut ShrinkControl) -> ScanResult {
        let (mut scanned, mut freed, mut evicted) = (0, 0, 0);
        self.buffers.visit(usize::MAX, |buf| {
            if freed >= control.nr_to_scan() {
                return ControlFlow::Break(());
            }
            scanned += buf.data().pages;
            // A buffer whose reservation is held elsewhere is busy: skip it (R2).
            if let Some(mut guard) = reclaim.try_lock(buf.resv()) {
                if let Some(n) = buf.data().evict(buf, &mut guard) {
                    freed += n;
                    evicted += 1;
                }
            }
            ControlFlow::Continue(())
        });
        if evicted > 0 {
            pr_info!("shrinker evicted {evicted} idle buffer(s), freeing {freed} zero page(s)\n");
        }
        control.set_nr_scanned(scanned);
        ScanResult::Freed(freed)
    }
}

#[vtable]
impl MiscDevice for ExporterFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        let task = MayBlock::new()?;
        let pool = Pool {
            buffers: ExportList::new()?,
            stats: Arc::new(
                PoolStats {
                    resident: Atomic::new(0),
                    evictions: Atomic::new(0),
                    freed_pages: Atomic::new(0),
                    restores: Atomic::new(0),
                },
                GFP_KERNEL,
            )?,
        };
        Ok(KBox::new(
            Self {
                timeline: FenceTimeline::with_names(c"dmabuf_exporter", c"dmabuf_exporter-jobs")?,
                budget: Arc::new(PageBudget(Atomic::new(0)), GFP_KERNEL)?,
                pool: Shrinker::register(&task, c"dmabuf_exporter", pool)?,
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(me: &ExporterFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let mut task = MayBlock::new()?;
        match cmd {
            uapi::DLS_IOCTL_CREATE => me.create(&task, arg),
            uapi::DLS_IOCTL_JOB => me.job(&mut task, arg),
            uapi::DLS_IOCTL_EVICT => evict(&task, arg),
            uapi::DLS_IOCTL_STATE => me.state(&task, arg),
            _ => Err(ENOTTY),
        }
    }
}

/// One exported buffer: the dma-buf owns it, and drops it when the last reference to the
/// buffer is gone.
struct Buffer {
    /// Its size in pages.
    pages: usize,
    /// Where its contents are, and who uses them: under the buffer's reservation.
    state: ResvCell<State>,
    stats: Arc<PoolStats>,
    _charge: Charge,
}

/// A buffer's state, under its reservation.
struct State {
    storage: Storage,
    /// Which pages were all zero when the buffer was evicted (`pages` entries, allocated at
    /// creation so that evicting, in reclaim, allocates nothing).
    zero: KVec<bool>,
    /// Pins of importers: a pinned buffer may not move.
    pins: u32,
    /// Importers' mappings alive (tables and the kernel mapping), which share its pages.
    mapped: u32,
}

/// Where a buffer's contents are.
enum Storage {
    /// In its pages, shared with the mappings made of them.
    Resident(SharedPages),
    /// Evicted by the shrinker: the pages that held data, in order (the all-zero ones, marked
    /// in `State::zero`, were freed).
    Evicted(KVec<Page>),
}

impl ExporterFile {
    fn create(&self, task: &MayBlock, arg: usize) -> Result<isize> {
        let mut a: DlsCreate = sys::read_arg(arg, |a: &DlsCreate| (a.version, a.size))?;
        if a.pad != 0 || a.pages == 0 || a.pages > DLS_MAX_PAGES {
            return Err(EINVAL);
        }
        let charge = Charge::new(&self.budget, a.pages)?;
        // The fd is reserved and written back first, and installed last: once installed it
        // cannot be taken back, so nothing may fail after that.
        let fd = FileDescriptorReservation::get_unused_fd_flags(bindings::O_CLOEXEC)?;
        a.fd = fd.reserved_fd() as i32;
        sys::write_arg(arg, &a)?;
        export(task, &self.pool, a.pages as usize, charge)?.install(fd);
        Ok(0)
    }
}

/// Allocates `count` zeroed pages, charged to the caller's memory cgroup, and exports them as a
/// new dma-buf on the pool's list, where its shrinker finds it.
fn export(
    task: &MayBlock,
    pool: &Pool,
    count: usize,
    charge: Charge,
) -> Result<ExportedBuf<Buffer>> {
    let mut pages = KVec::with_capacity(count, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..count {
        pages.push(
            Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?,
            GFP_KERNEL_ACCOUNT,
        )?;
    }
    let state = State {
        storage: Storage::Resident(Arc::new(pages, GFP_KERNEL_ACCOUNT)?),
        zero: KVec::from_elem(false, count, GFP_KERNEL_ACCOUNT)?,
        pins: 0,
        mapped: 0,
    };
    let buf = ExportedBuf::new_listed(task, count * PAGE_SIZE, &pool.buffers, |resv| {
        Ok(Buffer {
            pages: count,
            state: ResvCell::new(resv, state),
            stats: pool.stats.clone(),
            _charge: charge,
        })
    })?;
    pool.stats.resident.add(count, Relaxed);
    Ok(buf)
}

impl Buffer {
    /// Returns the buffer's pages, bringing it back first if it was evicted: zeroed pages are
    /// allocated for the ones that were all zero, and the kept ones go back in their places. On
    /// an allocation failure the buffer stays evicted, its contents intact.
    fn resident(&self, held: &mut impl HoldsResv) -> Result<SharedPages> {
        let state = self.state.get_mut(held)?;
        let kept = match &mut state.storage {
            Storage::Resident(pages) => return Ok(pages.clone()),
            Storage::Evicted(kept) => kept,
        };
        // Everything that can fail first, before the kept pages are touched.
        let zeroes = state.zero.iter().filter(|zero| **zero).count();
        let mut fresh = KVec::with_capacity(zeroes, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..zeroes {
            fresh.push(
                Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?,
                GFP_KERNEL_ACCOUNT,
            )?;
        }
        let mut pages = KVec::with_capacity(self.pages, GFP_KERNEL_ACCOUNT)?;
        let shared = UniqueArc::new_uninit(GFP_KERNEL_ACCOUNT)?;
        let mut kept = core::mem::take(kept).into_iter();
        let mut fresh = fresh.into_iter();
        for zero in &state.zero {
            let page = if *zero { fresh.next() } else { kept.next() };
            // Within the capacity reserved above: cannot fail.
            if let Some(page) = page {
                let _ = pages.push_within_capacity(page);
            }
        }
        let pages: SharedPages = shared.write(pages).into();
        state.storage = Storage::Resident(pages.clone());
        self.stats.resident.add(self.pages, Relaxed);
        self.stats.restores.add(1, Relaxed);
        Ok(pages)
    }

    /// Evicts the buffer if it is idle, from the shrinker's scan with its reservation try-locked
    /// (R2): no unsignalled fence, no pin, no importer's mapping; processes' mappings are
    /// zapped. Keeps
    /// the pages that hold data and frees the all-zero ones; returns how many were freed.
    fn evict(&self, listed: &Listed<'_, Buffer>, guard: &mut impl HoldsResv) -> Option<usize> {
        // A job (or another driver) still uses it: busy.
        if !listed.resv().test_signaled(FenceUsage::Bookkeep) {
            return None;
        }
        // Processes map the pages on demand (`Buffer::fault`): zapped now, under the
        // reservation, their next access faults and brings the buffer back.
        listed.zap_user_mappings(guard).ok()?;
        let state = self.state.get_mut(guard).ok()?;
        if state.pins > 0 || state.mapped > 0 {
            return None;
        }
        if !matches!(state.storage, Storage::Resident(_)) {
            return None;
        }
        // Taking the pages out allocates nothing: an empty vector in their place, then the
        // `Arc` unwrapped. No mapping shares them (none is counted), so it is their only owner.
        let Storage::Resident(shared) =
            core::mem::replace(&mut state.storage, Storage::Evicted(KVec::new()))
        else {
            return None;
        };
        let Some(unique) = Arc::into_unique_or_drop(shared) else {
            // Cannot happen: every other owner is a counted mapping.
            pr_warn!("evicted a buffer whose pages a mapping still shares; contents lost\n");
            state.zero.iter_mut().for_each(|zero| *zero = true);
            self.stats.resident.fetch_sub(self.pages, Relaxed);
            return None;
        };
        let mut pages = core::mem::take(&mut *Pin::into_inner(unique));
        let mut i = 0;
        let zero = &mut state.zero;
        pages.retain(|page| {
            let is_zero = page_is_zero(page);
            if let Some(flag) = zero.get_mut(i) {
                *flag = is_zero;
            }
            i += 1;
            !is_zero
        });
        let freed = self.pages - pages.len();
        state.storage = Storage::Evicted(pages);
        self.stats.resident.fetch_sub(self.pages, Relaxed);
        self.stats.evictions.add(1, Relaxed);
        self.stats.freed_pages.add(freed as u64, Relaxed);
        Some(freed)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Storage::Resident(_) = self.state.get_mut_unlocked().storage {
            self.stats.resident.fetch_sub(self.pages, Relaxed);
        }
    }
}

static BUFFER_OPS: ExportOps<Buffer> = ExportOps::new();

#[vtable]
impl Exporter for Buffer {
    const OPS: &'static ExportOps<Self> = &BUFFER_OPS;

    /// Pinning makes the exporter dynamic, so the core maps with the reservation held (R10).
    /// A pin keeps `DLS_IOCTL_EVICT` from moving the buffer and the shrinker from evicting it.
    fn pin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) -> Result {
        self.state.get_mut(held)?.pins += 1;
        Ok(())
    }

    fn unpin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) {
        if let Ok(state) = self.state.get_mut(held) {
            state.pins -= 1;
        }
    }

    /// Called with the reservation held: `held` proves it, and nothing here can lock it again.
    /// An evicted buffer comes back first; the mapping shares the pages, so they stay while it
    /// lives even if the buffer's pages are replaced meanwhile.
    fn map<'a>(
        &'a self,
        held: &mut ResvHeld<'_>,
        attachment: &ExportedAttachment,
        dir: DataDirection,
    ) -> Result<PageMapping<'a>> {
        let pages = self.resident(held)?;
        let mapping = PageMapping::new_shared(attachment.device(), pages, dir)?;
        self.state.get_mut(held)?.mapped += 1;
        Ok(mapping)
    }

    fn unmap<'a>(
        &'a self,
        held: &mut ResvHeld<'_>,
        _attachment: &ExportedAttachment,
        mapping: PageMapping<'a>,
    ) {
        drop(mapping);
        if let Ok(state) = self.state.get_mut(held) {
            state.mapped -= 1;
        }
    }

    /// A CPU access to a page of a mapped buffer that is not mapped yet: `mmap()` maps nothing,
    /// and each page comes here the first time it is touched, and again after an eviction
    /// zapped it. The library has locked the reservation under the process's `mmap_lock` (the
    /// direction R1 allows) and waited for the buffer's moves; it checked `pgoff` against the
    /// buffer's size too. An evicted buffer is brought back first (R2).
    fn fault<'a>(&'a self, held: &'a mut ResvHeld<'_>, pgoff: usize) -> Result<&'a Page> {
        self.resident(held)?;
        match &self.state.get(held)?.storage {
            Storage::Resident(pages) => pages.get(pgoff).ok_or(EINVAL),
            Storage::Evicted(_) => Err(EINVAL),
        }
    }

    fn vmap<'a>(&'a self, held: &mut ResvHeld<'_>) -> Result<PageVmap<'a>> {
        let vmap = PageVmap::new_shared(self.resident(held)?)?;
        self.state.get_mut(held)?.mapped += 1;
        Ok(vmap)
    }

    fn vunmap<'a>(&'a self, held: &mut ResvHeld<'_>, vmap: PageVmap<'a>) {
        drop(vmap);
        if let Ok(state) = self.state.get_mut(held) {
            state.mapped -= 1;
        }
    }
}

/// Takes a reference on the dma-buf behind `fd` if this exporter made it: `EINVAL` for another
/// exporter's dma-buf or a file that is not one, `EBADF` for no file.
fn own_buffer(fd: i32) -> Result<ARef<DmaBuf>> {
    Ok(ExportedBuf::<Buffer>::from_dmabuf(DmaBuf::from_fd(fd)?)?.into_dmabuf())
}

impl ExporterFile {
    fn job(&self, task: &mut MayBlock, arg: usize) -> Result<isize> {
        let mut a: DlsJob = sys::read_arg(arg, |a: &DlsJob| (a.version, a.size))?;
        let delay_ms = a.delay_ms & !DLS_JOB_HANG;
        if a.count == 0 || a.count > DLS_MAX_JOB_BUFFERS || delay_ms > 10_000 {
            return Err(EINVAL);
        }
        // What the "hardware" will do: raise its completion interrupt after the delay, or hang.
        let completion = if a.delay_ms & DLS_JOB_HANG != 0 {
            HwCompletion::Never
        } else {
            HwCompletion::After(delay_ms)
        };
        // User memory is read before any reservation is taken (R1).
        let count = a.count as usize;
        let mut raw = KVec::<u8>::with_capacity(count * size_of::<i32>(), GFP_KERNEL)?;
        UserSlice::new(
            UserPtr::from_addr(a.fds_ptr as usize),
            count * size_of::<i32>(),
        )
        .reader()
        .read_all(&mut raw, GFP_KERNEL)?;
        let mut buffers = KVec::with_capacity(count, GFP_KERNEL)?;
        for fd in raw.chunks_exact(size_of::<i32>()) {
            let fd = i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]]);
            buffers.push(own_buffer(fd)?, GFP_KERNEL)?;
        }
        // The seqno is written back once the fence is published, when the job can no longer be
        // taken back: check now, before any lock (R1), that the argument can be written.
        sys::write_arg(arg, &a)?;
        // The "hardware" needs its buffers in memory: bring evicted ones back, one reservation
        // at a time, before the job's fence exists (restoring allocates: R4). The shrinker may
        // evict one again before the locker below takes it; once the fence is published it is
        // busy, and stays. (The simulated hardware touches no memory; a real driver validates
        // under the locks of the submission.)
        for buf in &buffers {
            let mut guard = buf.resv().lock_interruptible(task)?;
            buf.exported_data::<Buffer>()?.resident(&mut guard)?;
        }
        // Everything the job needs is allocated now, before its fence exists (R4): the fence's
        // storage, the hrtimer that stands in for the hardware's completion interrupt, whose
        // handler returns the job's outcome (the library signals the fence with it), and the
        // watchdog that times the job out (R8).
        let timeout_ms = delay_ms + DLS_JOB_GRACE_MS;
        let job = PreparedIrqJob::new(task, &self.timeline, timeout_ms, |_fence, _irq| Ok(()))?;
        // The locker lives in this block only: its acquire context counts as a reservation lock
        // for lockdep until it is finalised, so it must be gone before user memory is touched
        // again below (R1).
        a.seqno = {
            let flags = LockerFlags {
                interruptible: true,
                fence_slots: 1,
                ..Default::default()
            };
            stack_pin_init!(let locker = ResvLocker::new(flags));
            locker
                .as_mut()
                .lock_iter(task, buffers.iter().map(|buf| buf.resv()))?;
            // The submission tail: from publishing the fence until the job is handed to the
            // hardware, this is a fence-signalling critical section (R4, R5). Nothing in it
            // allocates or blocks, and lockdep would report it if something did. Arming starts
            // the watchdog.
            let section = task.signalling_section();
            let job = job.arm(&section);
            for mut held in locker.as_mut().locked_mut() {
                // On an error the job is dropped unsubmitted, which cancels its fence (R8).
                held.add_fence(job.fence(), FenceUsage::Write)?;
            }
            let seqno = job.fence().seqno();
            // Timers per job: no job's completion waits behind another's delay (R8).
            job.submit(completion);
            drop(section);
            seqno
        };
        // The job is submitted and cannot fail any more; the argument was writable above, so
        // this write fails only if another thread unmapped it since, which does not undo the job.
        let _ = sys::write_arg(arg, &a);
        Ok(0)
    }
}

fn evict(task: &MayBlock, arg: usize) -> Result<isize> {
    let a: DlsCreate = sys::read_arg(arg, |a: &DlsCreate| (a.version, a.size))?;
    let buffer = ExportedBuf::<Buffer>::from_dmabuf(DmaBuf::from_fd(a.fd)?)?;
    let mut guard = buffer.dmabuf().resv().lock_interruptible(task)?;
    // A pinned buffer must stay where it is.
    if buffer.data().state.get(&guard)?.pins > 0 {
        return Err(EBUSY);
    }
    // Importers' `invalidate_mappings` run now, with the reservation held (R10), and the
    // mappings of processes are zapped, so their next access faults (see `Buffer::fault`).
    buffer.dmabuf().invalidate_mappings(&mut guard)?;
    buffer.dmabuf().zap_user_mappings(&mut guard)?;
    Ok(0)
}

impl ExporterFile {
    /// Where the buffer behind the argument's `fd` is (resident or evicted, and how many of its
    /// pages are in memory), and what this file's shrinker has done. The buffer must be one of
    /// this file's: `EINVAL` otherwise.
    fn state(&self, task: &MayBlock, arg: usize) -> Result<isize> {
        let mut a: DlsState = sys::read_arg(arg, |a: &DlsState| (a.version, a.size))?;
        if a.flags != 0 {
            return Err(EINVAL);
        }
        let buffer = ExportedBuf::<Buffer>::from_dmabuf(DmaBuf::from_fd(a.fd)?)?;
        if !Arc::ptr_eq(&buffer.data().stats, &self.pool.stats) {
            return Err(EINVAL);
        }
        {
            let guard = buffer.dmabuf().resv().lock_interruptible(task)?;
            let (flags, in_memory) = match &buffer.data().state.get(&guard)?.storage {
                Storage::Resident(pages) => (0, pages.len()),
                Storage::Evicted(kept) => (DLS_STATE_EVICTED, kept.len()),
            };
            a.flags = flags;
            a.pages_in_memory = in_memory as u64;
        }
        let stats = &self.pool.stats;
        a.evictions = stats.evictions.load(Relaxed);
        a.freed_pages = stats.freed_pages.load(Relaxed);
        a.restores = stats.restores.load(Relaxed);
        sys::write_arg(arg, &a)?;
        Ok(0)
    }
}
