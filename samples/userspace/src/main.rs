// SPDX-License-Identifier: GPL-2.0

//! Integration test of the dmabuf-lock sample drivers, run inside the test VM by `make test`
//! (and told as a story by `make run`): two drivers share a buffer under the locking rules
//! (R1, R3, R4, R6, R8, R10), and bad input gets an errno, never an oops.
//!
//! Each step prints one line; bad-input checks expect a specific errno. The last line is
//! `N passed, N failed`, and the exit status is non-zero if anything failed. `fuzz COUNT SEED`
//! and `stress SECONDS` run the bounded fuzz loop and the stress run instead, and `faults` the
//! fault-injection pass.

use std::{
    ffi::CStr,
    fs::{File, OpenOptions},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    time::Instant,
};

#[path = "../../uapi.rs"]
#[allow(dead_code)]
mod uapi;

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
    // SAFETY: `arg` is a live, exclusively borrowed struct of the size encoded in `cmd`.
    let ret = unsafe { libc::ioctl(fd, cmd as libc::c_ulong, std::ptr::from_mut(arg)) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
    // SAFETY: A fresh shared mapping of the dma-buf; unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `addr` maps `len` writable bytes until the munmap below.
    let bytes = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), len) };
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern(i);
    }
    let sum = checksum(bytes);
    // SAFETY: Unmaps the mapping made above.
    unsafe { libc::munmap(addr, len) };
    Ok(sum)
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
        "fuzz: every random ioctl returned",
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

/// Submits jobs on random subsets of `fds` until `deadline`; returns (jobs, errors).
fn submit_jobs(exporter: &File, fds: &[RawFd], deadline: Instant, seed: u64) -> (u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
    let n = fds.len();
    let (mut jobs, mut errors) = (0u64, 0u64);
    while Instant::now() < deadline {
        let k = 1 + rng.below(8) as usize;
        let start = rng.below(n as u64) as usize;
        let stride = (rng.below(n as u64) as usize) | 1;
        let subset: Vec<RawFd> = (0..k).map(|i| fds[(start + i * stride) % n]).collect();
        match job(exporter, &subset, rng.below(3) as u32) {
            Ok(_) => jobs += 1,
            Err(_) => errors += 1,
        }
    }
    (jobs, errors)
}

/// `stress-child SECONDS SEED FD...`: one of the stress run's other processes.
fn stress_child(args: &[String]) -> i32 {
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let fds: Vec<RawFd> = args.iter().skip(2).filter_map(|a| a.parse().ok()).collect();
    let Ok(exporter) = open(c"/dev/dmabuf_exporter") else {
        return 1;
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let (jobs, errors) = submit_jobs(&exporter, &fds, deadline, 100 + seed);
    i32::from(jobs == 0 || errors != 0)
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
        write_file("/proc/thread-self/fail-nth", "0").map_err(|e| e.to_string())?;
        if left.trim() != "0" {
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

/// `faults`: buffer creation, import and job submission fail at every allocation site in turn,
/// each with an errno. Needs the test kernel's fault injection (`config/test.config`).
fn faults() -> Report {
    let mut r = Report::default();
    let setup = [
        ("/sys/kernel/debug/failslab/ignore-gfp-wait", "N"),
        ("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N"),
        ("/sys/kernel/debug/failslab/verbose", "0"),
        ("/sys/kernel/debug/fail_page_alloc/verbose", "0"),
    ];
    for (path, value) in setup {
        if let Err(e) = write_file(path, value) {
            r.check(
                "faults: configure fault injection",
                false,
                format_args!("{path}: {e}"),
            );
            return r;
        }
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
    r
}

/// `stress SECONDS`: threads submit jobs on random subsets of 64 shared buffers for SECONDS,
/// then the importer waits for every buffer: every fence must have signalled.
fn stress(seconds: u64) -> Report {
    let mut r = Report::default();
    let Some((exporter, importer)) = open_devices(&mut r, "stress") else {
        return r;
    };
    let buffers: Vec<OwnedFd> = (0..64).filter_map(|_| create(&exporter, 1).ok()).collect();
    r.check(
        "stress: 64 shared buffers",
        buffers.len() == 64,
        buffers.len(),
    );
    let fds: Vec<RawFd> = buffers.iter().map(AsRawFd::as_raw_fd).collect();
    // Two more processes share the same buffers: the fds are inherited by number.
    for fd in &fds {
        // SAFETY: Clears close-on-exec on an fd this process owns.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) };
    }
    let list: Vec<String> = fds.iter().map(ToString::to_string).collect();
    let children: Vec<_> = (0..2)
        .filter_map(|i| {
            std::process::Command::new("/proc/self/exe")
                .args(["stress-child", &seconds.to_string(), &i.to_string()])
                .args(&list)
                .spawn()
                .ok()
        })
        .collect();
    r.check(
        "stress: 2 more processes on the same buffers",
        children.len() == 2,
        children.len(),
    );
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let counts: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let (fds, exporter) = (&fds, &exporter);
                scope.spawn(move || submit_jobs(exporter, fds, deadline, t + 1))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or((0, u64::MAX)))
            .collect()
    });
    let jobs: u64 = counts.iter().map(|c| c.0).sum();
    let errors: u64 = counts.iter().map(|c| c.1).sum();
    let children_ok = children
        .into_iter()
        .all(|mut c| c.wait().is_ok_and(|s| s.success()));
    r.check(
        "stress: the other processes finished cleanly",
        children_ok,
        children_ok,
    );
    r.check(
        "stress: 4 threads submit jobs on random subsets",
        jobs > 0 && errors == 0,
        format_args!("{jobs} jobs in {seconds} s, {errors} errors"),
    );
    let mut unsignalled = 0;
    for fd in &fds {
        let signalled = import(&importer, *fd).and_then(|h| {
            op(&importer, DLI_IOCTL_WAIT, h, 5000).and(op(&importer, DLI_IOCTL_RELEASE, h, 0))
        });
        if signalled.is_err() {
            unsignalled += 1;
        }
    }
    r.check(
        "stress: every fence signalled",
        unsignalled == 0,
        format_args!("{unsignalled} buffers still busy"),
    );
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let special = match args.get(1).map(String::as_str) {
        Some("fuzz") => Some(fuzz(arg(2, 100_000), arg(3, 1))),
        Some("stress") => Some(stress(arg(2, 30))),
        Some("stress-child") => std::process::exit(stress_child(&args[2..])),
        Some("faults") => Some(faults()),
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
        "importer waits until the job's fence signals",
        waited.is_ok(),
        format_args!("{waited:?} after {} ms", start.elapsed().as_millis()),
    );
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
