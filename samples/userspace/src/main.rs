// SPDX-License-Identifier: GPL-2.0

//! Integration test of the dmabuf-lock sample drivers, run inside the test VM by `make test`
//! (and told as a story by `make run`): two drivers share a buffer under the locking rules
//! (R1, R3, R4, R6, R8, R10), and bad input gets an errno, never an oops.
//!
//! Each step prints one line; bad-input checks expect a specific errno. The last line is
//! `N passed, N failed`, and the exit status is non-zero if anything failed. `fuzz COUNT SEED`
//! and `stress SECONDS` run the bounded fuzz loop and the stress run of every driver path at
//! once (`stress.rs`) instead, `faults` the fault-injection pass, `reliability` the races and
//! timing checks of an adversarial userspace, and `unload` unloads both sample modules with a
//! job's fence still pending.

use std::{
    ffi::CStr,
    fs::{File, OpenOptions},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

#[path = "../../uapi.rs"]
#[allow(dead_code)]
mod uapi;

mod fault;
mod shrink;
mod stress;
mod userptr;

use uapi::*;

#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("ok   {what} -- {detail}");
        } else {
            self.failed += 1;
            println!("FAIL {what} -- {detail}");
        }
    }

    /// Checks that `result` failed with `errno`.
    fn expect_errno<T>(&mut self, what: &str, result: io::Result<T>, errno: i32) {
        match result {
            Ok(_) => self.check(what, false, "succeeded"),
            Err(e) => self.check(
                what,
                e.raw_os_error() == Some(errno),
                format_args!("{e} (expected {})", io::Error::from_raw_os_error(errno)),
            ),
        }
    }
}

fn ioctl<T>(fd: RawFd, cmd: u32, arg: &mut T) -> io::Result<()> {
    ioctl_ptr(fd, cmd, std::ptr::from_mut(arg))
}

/// An ioctl whose argument is wherever `arg` points, readable or not.
fn ioctl_ptr<T>(fd: RawFd, cmd: u32, arg: *mut T) -> io::Result<()> {
    // SAFETY: The kernel checks the pointer: a bad one is an `EFAULT`, not undefined behaviour.
    let ret = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A value in a page of its own that is then made read-only: an ioctl can read its argument
/// there but not write its results back.
struct ReadOnly<T> {
    page: *mut libc::c_void,
    _value: std::marker::PhantomData<T>,
}

impl<T: Copy> ReadOnly<T> {
    fn new(value: T) -> io::Result<Self> {
        // SAFETY: A fresh anonymous mapping; unmapped on drop.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let this = Self {
            page,
            _value: std::marker::PhantomData,
        };
        // SAFETY: The page is writable and page-aligned, large enough for `T`.
        unsafe { this.page.cast::<T>().write(value) };
        // SAFETY: Changes the protection of the page mapped above.
        if unsafe { libc::mprotect(this.page, 4096, libc::PROT_READ) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(this)
    }

    fn ptr(&self) -> *mut T {
        self.page.cast()
    }
}

impl<T> Drop for ReadOnly<T> {
    fn drop(&mut self) {
        // SAFETY: Unmaps the page mapped in `new`.
        unsafe { libc::munmap(self.page, 4096) };
    }
}

/// The number of open fds of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn create(exporter: &File, pages: u64) -> io::Result<OwnedFd> {
    let mut a = DlsCreate {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsCreate>() as u32,
        pages,
        ..Default::default()
    };
    ioctl(exporter.as_raw_fd(), DLS_IOCTL_CREATE, &mut a)?;
    // SAFETY: The driver returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(a.fd) })
}

fn job(exporter: &File, fds: &[RawFd], delay_ms: u32) -> io::Result<u64> {
    let mut a = DlsJob {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsJob>() as u32,
        fds_ptr: fds.as_ptr() as u64,
        count: fds.len() as u32,
        delay_ms,
        ..Default::default()
    };
    ioctl(exporter.as_raw_fd(), DLS_IOCTL_JOB, &mut a)?;
    Ok(a.seqno)
}

fn evict(exporter: &File, fd: RawFd) -> io::Result<()> {
    let mut a = DlsCreate {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsCreate>() as u32,
        fd,
        ..Default::default()
    };
    ioctl(exporter.as_raw_fd(), DLS_IOCTL_EVICT, &mut a)
}

fn import(importer: &File, fd: RawFd) -> io::Result<u32> {
    let mut a = DliImport {
        version: DLS_UAPI_VERSION,
        size: size_of::<DliImport>() as u32,
        fd,
        ..Default::default()
    };
    ioctl(importer.as_raw_fd(), DLI_IOCTL_IMPORT, &mut a)?;
    Ok(a.handle)
}

fn op(importer: &File, cmd: u32, handle: u32, timeout_ms: u32) -> io::Result<u64> {
    let mut a = DliOp {
        version: DLS_UAPI_VERSION,
        size: size_of::<DliOp>() as u32,
        handle,
        timeout_ms,
        result: 0,
    };
    ioctl(importer.as_raw_fd(), cmd, &mut a)?;
    Ok(a.result)
}

/// Writes `pattern(i)` into every byte of the buffer through `mmap`, and returns its checksum.
fn fill(fd: RawFd, len: usize, pattern: impl Fn(usize) -> u8) -> io::Result<u64> {
    let map = fault::Mapping::shared(fd, len)?;
    let bytes = map.bytes();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern(i);
    }
    Ok(checksum(bytes))
}

/// Opens both sample devices, or records why not.
fn open_devices(r: &mut Report, what: &str) -> Option<(File, File)> {
    match (open(c"/dev/dmabuf_exporter"), open(c"/dev/dmabuf_importer")) {
        (Ok(exporter), Ok(importer)) => Some((exporter, importer)),
        (e, i) => {
            r.check(
                &format!("{what}: open the sample devices"),
                false,
                format_args!("{:?} {:?}", e.err(), i.err()),
            );
            None
        }
    }
}

fn open(path: &CStr) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.to_str().unwrap_or_default())
}

/// A small xorshift generator: the fuzz and stress runs are reproducible from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `fuzz COUNT SEED`: COUNT random ioctls on both devices, valid and not. Passes when every one
/// returns (success or an errno) and the console stays clean, which `scripts/vm-run` judges.
fn fuzz(count: u64, seed: u64) -> Report {
    let mut r = Report::default();
    let Some((exporter, importer)) = open_devices(&mut r, "fuzz") else {
        return r;
    };
    let mut rng = Rng(seed | 1);
    let mut buffers: Vec<OwnedFd> = Vec::new();
    let mut errnos = std::collections::BTreeMap::<i32, u64>::new();
    let mut ok = 0u64;
    let start = Instant::now();
    for _ in 0..count {
        // Some fds are real buffers, some are anything at all.
        let fd = |rng: &mut Rng, buffers: &[OwnedFd]| -> RawFd {
            match rng.below(4) {
                0 => rng.below(64) as RawFd - 8,
                _ if !buffers.is_empty() => {
                    buffers[rng.below(buffers.len() as u64) as usize].as_raw_fd()
                }
                _ => exporter.as_raw_fd(),
            }
        };
        let result: io::Result<()> = match rng.below(12) {
            0 | 1 => {
                let pages = [0, 1, 2, 17, DLS_MAX_PAGES, DLS_MAX_PAGES + 1, u64::MAX]
                    [rng.below(7) as usize];
                create(&exporter, pages).map(|b| {
                    if buffers.len() < 32 {
                        buffers.push(b);
                    }
                })
            }
            2 | 3 => {
                let n = rng.below(5) as usize;
                let fds: Vec<RawFd> = (0..n).map(|_| fd(&mut rng, &buffers)).collect();
                job(&exporter, &fds, rng.below(2) as u32).map(drop)
            }
            4 => {
                let target = fd(&mut rng, &buffers);
                evict(&exporter, target)
            }
            5 => {
                let target = fd(&mut rng, &buffers);
                import(&importer, target).map(drop)
            }
            6..=9 => {
                let cmd = [
                    DLI_IOCTL_MAP,
                    DLI_IOCTL_WAIT,
                    DLI_IOCTL_CHECKSUM,
                    DLI_IOCTL_RELEASE,
                ][rng.below(4) as usize];
                op(&importer, cmd, rng.below(12) as u32, rng.below(3) as u32).map(drop)
            }
            10 => {
                let mut junk = DliOp {
                    version: rng.below(3) as u32,
                    size: rng.below(40) as u32,
                    handle: 1,
                    ..Default::default()
                };
                let cmd = [
                    DLS_IOCTL_CREATE,
                    DLS_IOCTL_JOB,
                    DLI_IOCTL_MAP,
                    DLI_IOCTL_IMPORT ^ 0x10,
                ][rng.below(4) as usize];
                let dev = if rng.below(2) == 0 {
                    &exporter
                } else {
                    &importer
                };
                ioctl(dev.as_raw_fd(), cmd, &mut junk)
            }
            _ => {
                if !buffers.is_empty() {
                    let i = rng.below(buffers.len() as u64) as usize;
                    buffers.swap_remove(i);
                }
                Ok(())
            }
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) => *errnos.entry(e.raw_os_error().unwrap_or(-1)).or_default() += 1,
        }
    }
    let detail = format!(
        "{count} ioctls (seed {seed}) in {} ms: {ok} succeeded, errnos {errnos:?}",
        start.elapsed().as_millis()
    );
    r.check(
        &format!("fuzz: each of {count} random ioctls returned"),
        !errnos.contains_key(&-1),
        detail,
    );
    r
}

/// `struct sw_sync_create_fence_data` of the kernel's sw_sync debugfs interface.
#[repr(C)]
struct SwSyncCreateFence {
    value: u32,
    name: [u8; 32],
    fence: i32,
}

/// `struct dma_buf_import_sync_file` of `<linux/dma-buf.h>`.
#[repr(C)]
struct DmaBufImportSyncFile {
    flags: u32,
    fd: i32,
}

const SW_SYNC_IOC_CREATE_FENCE: u32 = ioc(3, b'W', 0, size_of::<SwSyncCreateFence>());
const SW_SYNC_IOC_INC: u32 = ioc(1, b'W', 1, size_of::<u32>());
const DMA_BUF_IOCTL_IMPORT_SYNC_FILE: u32 = ioc(1, b'b', 3, size_of::<DmaBufImportSyncFile>());
const DMA_BUF_SYNC_WRITE: u32 = 2;

/// `_IOC(dir, ty, nr, size)`.
const fn ioc(dir: u32, ty: u8, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr
}

/// A userspace-signalled fence (sw_sync, for tests only: R11) made a write fence of `buf`.
fn sw_sync_dependency(buf: RawFd) -> io::Result<File> {
    let timeline = open(c"/sys/kernel/debug/sync/sw_sync")?;
    let mut name = [0u8; 32];
    name[..15].copy_from_slice(b"itest-userfence");
    let mut create = SwSyncCreateFence {
        value: 1,
        name,
        fence: -1,
    };
    ioctl(timeline.as_raw_fd(), SW_SYNC_IOC_CREATE_FENCE, &mut create)?;
    // SAFETY: The ioctl returned a new sync_file fd that nothing else owns.
    let sync_file = unsafe { OwnedFd::from_raw_fd(create.fence) };
    let mut import = DmaBufImportSyncFile {
        flags: DMA_BUF_SYNC_WRITE,
        fd: sync_file.as_raw_fd(),
    };
    ioctl(buf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &mut import)?;
    Ok(timeline)
}

/// Signals the sw_sync timeline's next point.
fn sw_sync_signal(timeline: &File) -> io::Result<()> {
    let mut one = 1u32;
    ioctl(timeline.as_raw_fd(), SW_SYNC_IOC_INC, &mut one)
}

/// `struct dma_heap_allocation_data` of `<linux/dma-heap.h>`.
#[repr(C)]
#[derive(Default)]
struct DmaHeapAllocation {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

const DMA_HEAP_IOCTL_ALLOC: u32 = ioc(3, b'H', 0, size_of::<DmaHeapAllocation>());

/// A dma-buf of `len` bytes from another exporter: the kernel's system heap.
fn heap_buffer(len: u64) -> io::Result<OwnedFd> {
    let heap = open(c"/dev/dma_heap/system")?;
    let mut alloc = DmaHeapAllocation {
        len,
        fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
        ..Default::default()
    };
    ioctl(heap.as_raw_fd(), DMA_HEAP_IOCTL_ALLOC, &mut alloc)?;
    // SAFETY: The heap returned a new dma-buf fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(alloc.fd as RawFd) })
}

/// Writes `value` to a debugfs or procfs file.
fn write_file(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
}

/// Runs `step` with its `n`-th fault-injection point failing (`/proc/thread-self/fail-nth`),
/// for n = 1, 2, ... until a run no longer reaches the n-th point. Every run must end in success
/// or a clean errno. Returns the number of allocation sites failed, or the first run that
/// misbehaved.
fn fail_every_site(mut step: impl FnMut() -> io::Result<()>) -> Result<u32, String> {
    for n in 1..=500u32 {
        write_file("/proc/thread-self/fail-nth", &n.to_string()).map_err(|e| e.to_string())?;
        let result = step();
        let left = std::fs::read_to_string("/proc/thread-self/fail-nth").unwrap_or_default();
        // If the n-th point is still armed, it may fire in this very write (opening the file
        // allocates): then the step did not reach it, and the point is spent, so write again.
        let fired_here = write_file("/proc/thread-self/fail-nth", "0").is_err();
        if fired_here {
            write_file("/proc/thread-self/fail-nth", "0").map_err(|e| e.to_string())?;
        }
        if fired_here || left.trim() != "0" {
            // The n-th point was never reached: every site before it has failed once.
            return Ok(n - 1);
        }
        if let Err(e) = result {
            if e.raw_os_error().is_none() {
                return Err(format!("site {n}: {e}"));
            }
        }
    }
    Err("more than 500 fault sites".into())
}

/// Makes the test kernel's fault injection fail sleeping allocations too (`GFP_KERNEL`), and
/// quietly; records a failed check named after `what` and returns false if it cannot.
fn configure_fault_injection(r: &mut Report, what: &str) -> bool {
    let setup = [
        ("/sys/kernel/debug/failslab/ignore-gfp-wait", "N"),
        ("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N"),
        ("/sys/kernel/debug/failslab/verbose", "0"),
        ("/sys/kernel/debug/fail_page_alloc/verbose", "0"),
    ];
    for (path, value) in setup {
        if let Err(e) = write_file(path, value) {
            r.check(
                &format!("{what}: configure fault injection"),
                false,
                format_args!("{path}: {e}"),
            );
            return false;
        }
    }
    true
}

/// `faults`: every ioctl of both samples (create, job, evict; import, map, wait, checksum,
/// release) fails at every allocation site in turn, each with an errno; checksum on this
/// project's buffers and on the system heap's. Needs the test kernel's fault injection
/// (`config/test.config`).
fn faults() -> Report {
    let mut r = Report::default();
    if !configure_fault_injection(&mut r, "faults") {
        return r;
    }
    let Some((exporter, importer)) = open_devices(&mut r, "faults") else {
        return r;
    };
    let create_sites = fail_every_site(|| create(&exporter, 3).map(drop));
    r.check(
        "faults: buffer creation fails cleanly at every site",
        create_sites.is_ok(),
        format_args!("{create_sites:?} sites"),
    );
    let Ok(buf) = create(&exporter, 2) else {
        r.check("faults: a buffer to import", false, "create failed");
        return r;
    };
    let import_sites = fail_every_site(|| {
        let h = import(&importer, buf.as_raw_fd())?;
        op(&importer, DLI_IOCTL_MAP, h, 0)?;
        op(&importer, DLI_IOCTL_RELEASE, h, 0).map(drop)
    });
    r.check(
        "faults: import and map fail cleanly at every site",
        import_sites.is_ok(),
        format_args!("{import_sites:?} sites"),
    );
    let others: Vec<OwnedFd> = (0..3).filter_map(|_| create(&exporter, 1).ok()).collect();
    let mut fds: Vec<RawFd> = others.iter().map(AsRawFd::as_raw_fd).collect();
    fds.push(buf.as_raw_fd());
    let job_sites = fail_every_site(|| job(&exporter, &fds, 0).map(drop));
    r.check(
        "faults: job submission fails cleanly at every site",
        job_sites.is_ok(),
        format_args!("{job_sites:?} sites"),
    );
    let Ok(handle) = import(&importer, buf.as_raw_fd()) else {
        r.check("faults: an import", false, "import failed");
        return r;
    };
    let evict_sites = fail_every_site(|| {
        op(&importer, DLI_IOCTL_MAP, handle, 0)?;
        evict(&exporter, buf.as_raw_fd())
    });
    r.check(
        "faults: map and evict fail cleanly at every site",
        evict_sites.is_ok(),
        format_args!("{evict_sites:?} sites"),
    );
    for (cmd, name) in [(DLI_IOCTL_WAIT, "wait"), (DLI_IOCTL_CHECKSUM, "checksum")] {
        let sites = fail_every_site(|| op(&importer, cmd, handle, 100).map(drop));
        r.check(
            &format!("faults: {name} fails cleanly at every site"),
            sites.is_ok(),
            format_args!("{sites:?} sites"),
        );
    }
    let heap_sites = heap_buffer(8192).and_then(|heap| {
        let h = import(&importer, heap.as_raw_fd())?;
        let sites = fail_every_site(|| op(&importer, DLI_IOCTL_CHECKSUM, h, 0).map(drop));
        op(&importer, DLI_IOCTL_RELEASE, h, 0)?;
        Ok(sites)
    });
    r.check(
        "faults: checksum of a system-heap buffer fails cleanly at every site",
        matches!(heap_sites, Ok(Ok(_))),
        format_args!("{heap_sites:?} sites"),
    );
    let release_sites = fail_every_site(|| op(&importer, DLI_IOCTL_RELEASE, handle, 0).map(drop));
    r.check(
        "faults: release fails cleanly at every site",
        release_sites.is_ok(),
        format_args!("{release_sites:?} sites"),
    );
    r
}

/// What happens when an ioctl cannot write its results back, and other argument checks: the
/// failed ioctl must have done nothing.
fn output_checks(r: &mut Report, exporter: &File, importer: &File) {
    let mut padded = DlsCreate {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsCreate>() as u32,
        pages: 1,
        pad: 1,
        ..Default::default()
    };
    r.expect_errno(
        "create with nonzero padding",
        ioctl(exporter.as_raw_fd(), DLS_IOCTL_CREATE, &mut padded),
        libc::EINVAL,
    );

    // CREATE with its argument in a read-only page: EFAULT, and no fd appears.
    let create_arg = ReadOnly::new(DlsCreate {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsCreate>() as u32,
        pages: 1,
        ..Default::default()
    });
    let before = open_fds();
    let result =
        create_arg.and_then(|a| ioctl_ptr(exporter.as_raw_fd(), DLS_IOCTL_CREATE, a.ptr()));
    let after = open_fds();
    r.check(
        "create that cannot write the fd back leaves no fd",
        matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EFAULT)) && after == before,
        format_args!("{result:?}, {before} fds before, {after} after"),
    );

    // JOB with its argument in a read-only page: EFAULT, and no fence on the buffer.
    let published = (|| -> io::Result<(io::Result<()>, io::Result<u64>)> {
        let buf = create(exporter, 1)?;
        let handle = import(importer, buf.as_raw_fd())?;
        let fds = [buf.as_raw_fd()];
        let arg = ReadOnly::new(DlsJob {
            version: DLS_UAPI_VERSION,
            size: size_of::<DlsJob>() as u32,
            fds_ptr: fds.as_ptr() as u64,
            count: 1,
            delay_ms: 2000,
            ..Default::default()
        })?;
        let submitted = ioctl_ptr(exporter.as_raw_fd(), DLS_IOCTL_JOB, arg.ptr());
        let idle = op(importer, DLI_IOCTL_WAIT, handle, 0);
        // Leaves nothing pending if the job was submitted after all.
        op(importer, DLI_IOCTL_WAIT, handle, 5000).ok();
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok((submitted, idle))
    })();
    r.check(
        "job that cannot write the seqno back publishes no fence",
        matches!(&published, Ok((Err(e), Ok(_))) if e.raw_os_error() == Some(libc::EFAULT)),
        format_args!("{published:?} (job, then a zero-timeout wait on its buffer)"),
    );
}

/// The pages one exporter file's buffers may hold are bounded ([`DLS_MAX_FILE_PAGES`]).
fn budget_checks(r: &mut Report) {
    let Ok(exporter) = open(c"/dev/dmabuf_exporter") else {
        r.check("page bound: open the exporter", false, "open failed");
        return;
    };
    let fit = (DLS_MAX_FILE_PAGES / DLS_MAX_PAGES) as usize;
    let mut buffers: Vec<OwnedFd> = (0..fit)
        .map_while(|_| create(&exporter, DLS_MAX_PAGES).ok())
        .collect();
    let over = create(&exporter, 1);
    let made = buffers.len();
    buffers.pop();
    let again = create(&exporter, DLS_MAX_PAGES);
    r.check(
        "one file's buffers hold at most DLS_MAX_FILE_PAGES pages",
        made == fit
            && matches!(&over, Err(e) if e.raw_os_error() == Some(libc::ENOSPC))
            && again.is_ok(),
        format_args!(
            "{made} buffers of {DLS_MAX_PAGES} pages, then {:?}; after closing one: {:?}",
            over.map(drop),
            again.map(drop)
        ),
    );
}

/// `reliability`: what an adversarial userspace tries with threads and time.
fn reliability() -> Report {
    let mut r = Report::default();
    let Some((exporter, importer)) = open_devices(&mut r, "reliability") else {
        return r;
    };
    for (cmd, name) in [(DLI_IOCTL_WAIT, "wait"), (DLI_IOCTL_CHECKSUM, "checksum")] {
        wait_does_not_block_map(&mut r, &exporter, &importer, cmd, name);
    }
    import_undo_race(&mut r, &exporter, &importer, Duration::from_secs(3));
    signalling_not_queued(&mut r, &exporter, &importer);
    r
}

/// While one thread waits (`cmd`: WAIT or CHECKSUM) for a job's fence on one handle, a MAP of
/// another handle of the same importer file completes at once (within 1 s, where it used to
/// wait for the fence: 3 s).
fn wait_does_not_block_map(r: &mut Report, exporter: &File, importer: &File, cmd: u32, name: &str) {
    let setup = (|| -> io::Result<(OwnedFd, OwnedFd, u32, u32)> {
        let busy = create(exporter, 1)?;
        let other = create(exporter, 1)?;
        let hb = import(importer, busy.as_raw_fd())?;
        let ho = import(importer, other.as_raw_fd())?;
        job(exporter, &[busy.as_raw_fd()], 3000)?;
        Ok((busy, other, hb, ho))
    })();
    let Ok((_busy, _other, hb, ho)) = setup else {
        r.check(
            &format!("map during a {name}: set-up"),
            false,
            format_args!("{setup:?}"),
        );
        return;
    };
    let done = AtomicBool::new(false);
    let (mapped, elapsed, waiting, waited) = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let result = op(importer, cmd, hb, 5000);
            done.store(true, Ordering::SeqCst);
            result
        });
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let mapped = op(importer, DLI_IOCTL_MAP, ho, 0);
        let elapsed = start.elapsed();
        let waiting = !done.load(Ordering::SeqCst);
        (mapped, elapsed, waiting, waiter.join())
    });
    r.check(
        &format!("a map is not blocked by another thread's {name} on the same file"),
        mapped.is_ok() && waiting && elapsed < Duration::from_millis(1000),
        format_args!(
            "map {mapped:?} in {} ms, {name} still blocked: {waiting}; {name} {waited:?}",
            elapsed.as_millis()
        ),
    );
    for h in [hb, ho] {
        op(importer, DLI_IOCTL_RELEASE, h, 0).ok();
    }
}

/// One thread imports with its argument in a read-only page (each import fails after taking a
/// slot), another releases handle 1 and imports, maps and releases its own: a failed import must
/// never drop the other thread's import.
fn import_undo_race(r: &mut Report, exporter: &File, importer: &File, time: Duration) {
    let Ok(buf) = create(exporter, 1) else {
        r.check("import race: a buffer", false, "create failed");
        return;
    };
    let arg = ReadOnly::new(DliImport {
        version: DLS_UAPI_VERSION,
        size: size_of::<DliImport>() as u32,
        fd: buf.as_raw_fd(),
        handle: 0,
    });
    let Ok(arg) = arg else {
        r.check("import race: a read-only page", false, "mmap failed");
        return;
    };
    let (stop, lost, rounds, efaults) = (
        AtomicBool::new(false),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let arg_ptr = arg.ptr() as usize;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let failed = ioctl_ptr(
                    importer.as_raw_fd(),
                    DLI_IOCTL_IMPORT,
                    arg_ptr as *mut DliImport,
                );
                if matches!(failed, Err(e) if e.raw_os_error() == Some(libc::EFAULT)) {
                    efaults.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        scope.spawn(|| {
            let gone = |result: io::Result<u64>| {
                matches!(result, Err(e) if e.raw_os_error() == Some(libc::ENOENT))
            };
            while !stop.load(Ordering::Relaxed) {
                op(importer, DLI_IOCTL_RELEASE, 1, 0).ok();
                if let Ok(h) = import(importer, buf.as_raw_fd()) {
                    if gone(op(importer, DLI_IOCTL_MAP, h, 0))
                        || gone(op(importer, DLI_IOCTL_RELEASE, h, 0))
                    {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
    });
    let (lost, rounds, efaults) = (lost.into_inner(), rounds.into_inner(), efaults.into_inner());
    r.check(
        "a failed import never drops another thread's import",
        lost == 0 && rounds > 0 && efaults > 0,
        format_args!(
            "2 threads for {} s: {rounds} imports, {efaults} failed imports, {lost} lost",
            time.as_secs()
        ),
    );
}

/// Jobs pending for seconds do not delay another job's completion (R8): each job has its own
/// timer, and none sleeps in a shared worker. 2,200 is more than a shared unbound workqueue runs
/// at once (2,048); the 0 ms job must signal within 1.5 s.
fn signalling_not_queued(r: &mut Report, exporter: &File, importer: &File) {
    const SLOW_JOBS: u32 = 2200;
    let result = (|| -> io::Result<(u32, Duration, Duration)> {
        let slow = create(exporter, 1)?;
        let fast = create(exporter, 1)?;
        let hs = import(importer, slow.as_raw_fd())?;
        let hf = import(importer, fast.as_raw_fd())?;
        let submitted = (0..SLOW_JOBS)
            .filter(|_| job(exporter, &[slow.as_raw_fd()], 5000).is_ok())
            .count() as u32;
        let start = Instant::now();
        job(exporter, &[fast.as_raw_fd()], 0)?;
        op(importer, DLI_IOCTL_WAIT, hf, 10_000)?;
        let fast_done = start.elapsed();
        op(importer, DLI_IOCTL_WAIT, hs, 10_000)?;
        let slow_done = start.elapsed();
        op(importer, DLI_IOCTL_RELEASE, hs, 0)?;
        op(importer, DLI_IOCTL_RELEASE, hf, 0)?;
        Ok((submitted, fast_done, slow_done))
    })();
    r.check(
        "a 0 ms job signals promptly behind thousands of pending 5 s jobs",
        matches!(result, Ok((n, fast, _)) if n == SLOW_JOBS && fast < Duration::from_millis(1500)),
        match &result {
            Ok((n, fast, slow)) => format!(
                "{n} jobs of 5 s pending; the 0 ms job signalled after {} ms, the last 5 s job after {} ms",
                fast.as_millis(),
                slow.as_millis()
            ),
            Err(e) => e.to_string(),
        },
    );
}

/// A job whose "hardware" never completes (R8): its fence, exported as a sync_file, is pending
/// until the job's watchdog signals it with `-ETIMEDOUT`, `DLS_JOB_GRACE_MS` after submission.
fn hung_job_times_out(r: &mut Report, exporter: &File) {
    let result = (|| -> io::Result<(i32, i32, Duration)> {
        let buf = create(exporter, 1)?;
        let start = Instant::now();
        job(exporter, &[buf.as_raw_fd()], DLS_JOB_HANG)?;
        let sync_file = export_sync_file(buf.as_raw_fd())?;
        let pending = sync_file_status(sync_file.as_raw_fd())?;
        let mut poll = libc::pollfd {
            fd: sync_file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: One live pollfd.
        unsafe { libc::poll(&mut poll, 1, 10_000) };
        let elapsed = start.elapsed();
        Ok((pending, sync_file_status(sync_file.as_raw_fd())?, elapsed))
    })();
    r.check(
        "a job the hardware never completes: its watchdog signals the fence with ETIMEDOUT",
        matches!(result, Ok((0, status, elapsed)) if status == -libc::ETIMEDOUT
            && elapsed >= Duration::from_millis(DLS_JOB_GRACE_MS.into())),
        match &result {
            Ok((pending, status, elapsed)) => format!(
                "status {pending} after submission, {status} after {} ms (grace {DLS_JOB_GRACE_MS} ms)",
                elapsed.as_millis()
            ),
            Err(e) => e.to_string(),
        },
    );
}

/// The fences of a dma-buf's reservation as a new sync_file.
fn export_sync_file(buf: RawFd) -> io::Result<OwnedFd> {
    let mut export = DmaBufExportSyncFile {
        flags: DMA_BUF_SYNC_RW,
        fd: -1,
    };
    ioctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &mut export)?;
    // SAFETY: The ioctl returned a new sync_file fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(export.fd) })
}

/// `struct sync_file_info` of `<linux/sync_file.h>`.
#[repr(C)]
#[derive(Default, Debug)]
struct SyncFileInfo {
    name: [u8; 32],
    status: i32,
    flags: u32,
    num_fences: u32,
    pad: u32,
    sync_fence_info: u64,
}

/// `struct dma_buf_export_sync_file` of `<linux/dma-buf.h>`.
#[repr(C)]
#[derive(Default)]
struct DmaBufExportSyncFile {
    flags: u32,
    fd: i32,
}

const SYNC_IOC_FILE_INFO: u32 = ioc(3, b'>', 4, size_of::<SyncFileInfo>());
const DMA_BUF_IOCTL_EXPORT_SYNC_FILE: u32 = ioc(3, b'b', 2, size_of::<DmaBufExportSyncFile>());
const DMA_BUF_SYNC_RW: u32 = 3;

/// The status of a sync_file's fence: 0 pending, 1 signalled, negative an error.
fn sync_file_status(fd: RawFd) -> io::Result<i32> {
    let mut info = SyncFileInfo::default();
    ioctl(fd, SYNC_IOC_FILE_INFO, &mut info)?;
    Ok(info.status)
}

/// The name of a sync_file: unless userspace named it, the kernel builds it from its fence's
/// driver and timeline names (`sync_file_get_name()`), truncated to 31 bytes.
fn sync_file_name(fd: RawFd) -> io::Result<String> {
    let mut info = SyncFileInfo::default();
    ioctl(fd, SYNC_IOC_FILE_INFO, &mut info)?;
    let len = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.name.len());
    Ok(String::from_utf8_lossy(&info.name[..len]).into_owned())
}

/// `delete_module(name, O_NONBLOCK)`, as `rmmod` does.
fn unload_module(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a C string; the call only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `unload`: a job with a 4 s delay, its fence exported as a sync_file, every buffer and device
/// closed: the exporter must stay loaded until the fence has signalled, and the sync_file must
/// work before and after. Unloads both sample modules.
fn unload() -> Report {
    let mut r = Report::default();
    let sync_file = (|| -> io::Result<OwnedFd> {
        let exporter = open(c"/dev/dmabuf_exporter")?;
        let buf = create(&exporter, 1)?;
        job(&exporter, &[buf.as_raw_fd()], 4000)?;
        export_sync_file(buf.as_raw_fd())
    })();
    let sync_file = match sync_file {
        Ok(fd) => fd,
        Err(e) => {
            r.check("unload: a pending job's fence as a sync_file", false, e);
            return r;
        }
    };
    let pending = sync_file_status(sync_file.as_raw_fd());
    r.check(
        "unload: the job's fence is pending with its buffer and device closed",
        matches!(pending, Ok(0)),
        format_args!("status {pending:?}"),
    );
    let name = sync_file_name(sync_file.as_raw_fd());
    r.check(
        "unload: the job's fence reports the exporter's driver and timeline names",
        matches!(&name, Ok(n) if n.starts_with("dmabuf_exporter-dmabuf_exporter")),
        format_args!("{name:?}"),
    );
    let refused = unload_module(c"dmabuf_exporter");
    r.check(
        "unload: the exporter stays loaded while its fence is pending",
        matches!(&refused, Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY))),
        format_args!("{refused:?}"),
    );
    let still = sync_file_status(sync_file.as_raw_fd());
    r.check(
        "unload: the sync_file reports the pending fence",
        matches!(still, Ok(0)),
        format_args!("status {still:?}"),
    );
    let mut poll = libc::pollfd {
        fd: sync_file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let start = Instant::now();
    // SAFETY: One live pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, 6000) };
    r.check(
        "unload: the fence signals after its delay",
        ready == 1,
        format_args!("poll {ready} after {} ms", start.elapsed().as_millis()),
    );
    // The job drops its module reference just after signalling.
    let deadline = Instant::now() + Duration::from_secs(2);
    let unloaded = loop {
        let result = unload_module(c"dmabuf_exporter");
        if result.is_ok() || Instant::now() > deadline {
            break result;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    r.check(
        "unload: the exporter unloads once the fence has signalled",
        unloaded.is_ok(),
        format_args!("{unloaded:?}"),
    );
    let after = sync_file_status(sync_file.as_raw_fd());
    r.check(
        "unload: the sync_file still works after the unload",
        matches!(after, Ok(1)),
        format_args!("status {after:?}"),
    );
    let importer = unload_module(c"dmabuf_importer");
    r.check(
        "unload: the importer unloads",
        importer.is_ok(),
        format_args!("{importer:?}"),
    );
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let special = match args.get(1).map(String::as_str) {
        Some("fuzz") => Some(fuzz(arg(2, 100_000), arg(3, 1))),
        Some("stress") => Some(stress::run(arg(2, 30))),
        Some("stress-child") => std::process::exit(stress::child(&args[2..])),
        Some("faults") => Some(faults()),
        Some("reliability") => Some(reliability()),
        Some("unload") => Some(unload()),
        Some("shrink") => Some(shrink::shrink()),
        Some("shrink-hog") => std::process::exit(shrink::hog(&args[2..])),
        Some("userptr") => Some(userptr::run()),
        _ => None,
    };
    if let Some(r) = special {
        println!("{} passed, {} failed", r.passed, r.failed);
        std::process::exit(if r.failed == 0 { 0 } else { 1 });
    }
    let mut r = Report::default();
    let Some((exporter, importer)) = open_devices(&mut r, "story") else {
        println!("0 passed, 1 failed");
        std::process::exit(1);
    };

    // The story: the exporter makes a buffer, userspace fills it, the importer attaches,
    // a job fences it, the importer waits, checks the contents, and survives a move.
    const PAGES: u64 = 4;
    let len = PAGES as usize * 4096;
    let buf = match create(&exporter, PAGES) {
        Ok(fd) => fd,
        Err(e) => {
            r.check("exporter creates a 4-page buffer", false, e);
            println!("{} passed, {} failed", r.passed, r.failed + 1);
            std::process::exit(1);
        }
    };
    r.check(
        "exporter creates a 4-page buffer",
        true,
        format_args!("dma-buf fd {}", buf.as_raw_fd()),
    );
    let expected = fill(buf.as_raw_fd(), len, |i| (i * 7 + 3) as u8);
    r.check(
        "userspace writes a pattern through mmap",
        expected.is_ok(),
        format_args!("{expected:?}"),
    );
    let expected = expected.unwrap_or_default();

    let handle = import(&importer, buf.as_raw_fd());
    r.check(
        "importer attaches dynamically",
        handle.is_ok(),
        format_args!("{handle:?}"),
    );
    let handle = handle.unwrap_or_default();
    let nents = op(&importer, DLI_IOCTL_MAP, handle, 0);
    r.check(
        "importer maps under the reservation",
        matches!(nents, Ok(n) if n >= 1),
        format_args!("{nents:?} segments"),
    );

    let seqno = job(&exporter, &[buf.as_raw_fd()], 300);
    r.check(
        "exporter submits a job: write fence published",
        seqno.is_ok(),
        format_args!("fence seqno {seqno:?}"),
    );
    let early = op(&importer, DLI_IOCTL_WAIT, handle, 20);
    r.check(
        "importer's wait times out while the fence is pending",
        matches!(&early, Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT)),
        format_args!("{early:?}"),
    );
    let start = Instant::now();
    let waited = op(&importer, DLI_IOCTL_WAIT, handle, 5000);
    r.check(
        "importer waits until the completion interrupt signals the job's fence",
        waited.is_ok(),
        format_args!("{waited:?} after {} ms", start.elapsed().as_millis()),
    );
    hung_job_times_out(&mut r, &exporter);
    let sum = op(&importer, DLI_IOCTL_CHECKSUM, handle, 0);
    r.check(
        "importer's checksum through CPU access matches",
        matches!(sum, Ok(s) if s == expected),
        format_args!("{sum:x?}, expected {expected:x}"),
    );
    let moved = evict(&exporter, buf.as_raw_fd());
    r.check(
        "exporter moves the buffer: importer invalidated",
        moved.is_ok(),
        format_args!("{moved:?}"),
    );
    let remapped = op(&importer, DLI_IOCTL_MAP, handle, 0);
    r.check(
        "importer maps again after the move",
        matches!(remapped, Ok(n) if n >= 1),
        format_args!("{remapped:?}"),
    );

    // A userspace fence as an extra dependency: the importer's wait must block until userspace
    // signals it.
    let dependency = sw_sync_dependency(buf.as_raw_fd());
    r.check(
        "userspace adds a sw_sync fence to the buffer",
        dependency.is_ok(),
        format_args!(
            "{:?}",
            dependency.as_ref().map(|_| "write fence from a sync_file")
        ),
    );
    let blocked = op(&importer, DLI_IOCTL_WAIT, handle, 50);
    r.check(
        "importer's wait blocks on the userspace fence",
        matches!(&blocked, Err(e) if e.raw_os_error() == Some(libc::ETIMEDOUT)),
        format_args!("{blocked:?}"),
    );
    let signalled = dependency.and_then(|timeline| sw_sync_signal(&timeline));
    let released = op(&importer, DLI_IOCTL_WAIT, handle, 5000);
    r.check(
        "userspace signals it and the wait returns",
        signalled.is_ok() && released.is_ok(),
        format_args!("{signalled:?} {released:?}"),
    );

    // Close in every order: the dma-buf fd before the import, the import before the fd, and
    // the importer's file with imports still open.
    let orders: io::Result<()> = (|| {
        let a = create(&exporter, 1)?;
        let h = import(&importer, a.as_raw_fd())?;
        drop(a);
        op(&importer, DLI_IOCTL_MAP, h, 0)?;
        op(&importer, DLI_IOCTL_RELEASE, h, 0)?;
        let b = create(&exporter, 1)?;
        let h = import(&importer, b.as_raw_fd())?;
        op(&importer, DLI_IOCTL_RELEASE, h, 0)?;
        drop(b);
        let extra = open(c"/dev/dmabuf_importer")?;
        let c = create(&exporter, 1)?;
        let h = import(&extra, c.as_raw_fd())?;
        op(&extra, DLI_IOCTL_MAP, h, 0)?;
        drop(extra);
        drop(c);
        Ok(())
    })();
    r.check(
        "fds and imports close in every order",
        orders.is_ok(),
        format_args!("{orders:?}"),
    );

    // Another exporter's dma-buf: the importer works with it, the exporter's jobs refuse it.
    let foreign = heap_buffer(4096).and_then(|heap| {
        let h = import(&importer, heap.as_raw_fd())?;
        op(&importer, DLI_IOCTL_MAP, h, 0)?;
        let sum = op(&importer, DLI_IOCTL_CHECKSUM, h, 0)?;
        op(&importer, DLI_IOCTL_RELEASE, h, 0)?;
        Ok((heap, sum))
    });
    let zeroes = checksum(&[0u8; 4096]);
    r.check(
        "importer maps and reads a system-heap dma-buf",
        matches!(&foreign, Ok((_, sum)) if *sum == zeroes),
        format_args!(
            "{:?}",
            foreign.as_ref().map(|(_, sum)| format!("checksum {sum:x}"))
        ),
    );
    if let Ok((heap, _)) = &foreign {
        r.expect_errno(
            "job on a dma-buf from another exporter",
            job(&exporter, &[heap.as_raw_fd()], 0),
            libc::EINVAL,
        );
    }

    // Several buffers in one job, in the multi-object locker.
    let more: Vec<OwnedFd> = (0..8).filter_map(|_| create(&exporter, 1).ok()).collect();
    let fds: Vec<RawFd> = more.iter().map(AsRawFd::as_raw_fd).collect();
    let multi = job(&exporter, &fds, 10);
    r.check(
        "a job locks 8 buffers at once",
        more.len() == 8 && multi.is_ok(),
        format_args!("{multi:?}"),
    );

    // Bad input: an errno, no oops.
    r.expect_errno("zero pages", create(&exporter, 0), libc::EINVAL);
    r.expect_errno(
        "too many pages",
        create(&exporter, DLS_MAX_PAGES + 1),
        libc::EINVAL,
    );
    r.expect_errno(
        "overflowing page count",
        create(&exporter, u64::MAX),
        libc::EINVAL,
    );
    r.expect_errno("job on zero buffers", job(&exporter, &[], 0), libc::EINVAL);
    r.expect_errno(
        "job on the same buffer twice",
        job(&exporter, &[buf.as_raw_fd(), buf.as_raw_fd()], 0),
        libc::EALREADY,
    );
    r.expect_errno(
        "job on a file that is not a dma-buf",
        job(&exporter, &[exporter.as_raw_fd()], 0),
        libc::EINVAL,
    );
    r.expect_errno(
        "job on a closed fd",
        job(&exporter, &[1000], 0),
        libc::EBADF,
    );
    r.expect_errno(
        "import of a closed fd",
        import(&importer, 1000),
        libc::EBADF,
    );
    let mut unmapped = DlsJob {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsJob>() as u32,
        fds_ptr: 0x1000,
        count: 1,
        ..Default::default()
    };
    r.expect_errno(
        "job with an unmapped fd array",
        ioctl(exporter.as_raw_fd(), DLS_IOCTL_JOB, &mut unmapped),
        libc::EFAULT,
    );
    r.expect_errno(
        "unknown handle",
        op(&importer, DLI_IOCTL_MAP, 999, 0),
        libc::ENOENT,
    );
    r.expect_errno(
        "unknown ioctl",
        ioctl(
            exporter.as_raw_fd(),
            DLS_IOCTL_CREATE + 0x10,
            &mut DlsCreate::default(),
        ),
        libc::ENOTTY,
    );
    let mut wrong = DlsCreate {
        version: DLS_UAPI_VERSION + 1,
        size: size_of::<DlsCreate>() as u32,
        pages: 1,
        ..Default::default()
    };
    r.expect_errno(
        "wrong interface version",
        ioctl(exporter.as_raw_fd(), DLS_IOCTL_CREATE, &mut wrong),
        libc::EINVAL,
    );
    // SAFETY: A null argument pointer: the driver must fail the copy, not crash.
    let null = unsafe {
        libc::ioctl(
            exporter.as_raw_fd(),
            DLS_IOCTL_CREATE as libc::c_ulong,
            0usize,
        )
    };
    r.check(
        "NULL argument pointer",
        null < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT),
        format_args!("{}", io::Error::last_os_error()),
    );

    output_checks(&mut r, &exporter, &importer);
    fault::checks(&mut r, &exporter, &importer);
    budget_checks(&mut r);
    shrink::story(&mut r, &exporter, &importer);

    // While buffers are alive, each holds a reference on the exporter's module.
    let busy = std::process::Command::new("rmmod")
        .arg("dmabuf_exporter")
        .output();
    r.check(
        "unloading the exporter with buffers alive is refused",
        matches!(&busy, Ok(out) if !out.status.success()),
        format_args!("{:?}", busy.map(|o| o.status)),
    );

    let released = op(&importer, DLI_IOCTL_RELEASE, handle, 0);
    r.check(
        "importer releases its handle",
        released.is_ok(),
        format_args!("{released:?}"),
    );
    r.expect_errno(
        "double release",
        op(&importer, DLI_IOCTL_RELEASE, handle, 0),
        libc::ENOENT,
    );

    println!("{} passed, {} failed", r.passed, r.failed);
    std::process::exit(if r.failed == 0 { 0 } else { 1 });
}
