// SPDX-License-Identifier: GPL-2.0

//! `userptr`: the importer's userptrs, ranges of this process's memory that the importer's jobs
//! use, watched by an mmu notifier (R3). While a job runs, `munmap`, `mprotect` and `fork` of
//! the range must wait for its fence: each is timed, and the fence must have signalled when it
//! returns. Bad input gets an errno, and nothing stays behind (the importer's module count
//! returns to what it was).

use super::{configure_fault_injection, fail_every_site, ioctl, op, open, Report, Rng};
use crate::uapi::*;
use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

const PAGE: usize = 4096;
/// The delay of a job that an address-space change must wait for.
const JOB_MS: u32 = 600;
/// How much of it the change must have waited at least (the ioctl's return is part of it).
const MIN_WAIT: Duration = Duration::from_millis(400);

/// An anonymous private mapping of `pages` pages, read-write and touched; unmapped on drop
/// unless the test unmapped it itself.
struct Anon {
    addr: usize,
    len: usize,
    mapped: bool,
}

impl Anon {
    fn new(pages: usize) -> io::Result<Self> {
        let len = pages * PAGE;
        // SAFETY: A new anonymous mapping at an address of the kernel's choice.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `addr` maps `len` writable bytes.
        unsafe { std::ptr::write_bytes(addr.cast::<u8>(), 0x5a, len) };
        Ok(Self {
            addr: addr as usize,
            len,
            mapped: true,
        })
    }

    fn ptr(&self) -> *mut libc::c_void {
        self.addr as *mut libc::c_void
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: Unmaps this value's own mapping.
            unsafe { libc::munmap(self.ptr(), self.len) };
        }
    }
}

fn userptr(importer: &File, addr: u64, len: u64, flags: u32) -> io::Result<u32> {
    let mut a = DliUserptr {
        version: DLS_UAPI_VERSION,
        size: size_of::<DliUserptr>() as u32,
        addr,
        len,
        flags,
        ..Default::default()
    };
    ioctl(importer.as_raw_fd(), DLI_IOCTL_USERPTR, &mut a)?;
    Ok(a.handle)
}

fn userptr_job(importer: &File, handle: u32, delay_ms: u32) -> io::Result<u64> {
    let mut a = DliUserptrJob {
        version: DLS_UAPI_VERSION,
        size: size_of::<DliUserptrJob>() as u32,
        handle,
        delay_ms,
        ..Default::default()
    };
    ioctl(importer.as_raw_fd(), DLI_IOCTL_USERPTR_JOB, &mut a)?;
    Ok(a.seqno)
}

fn os(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The importer module's reference count.
fn importer_refs() -> Option<u64> {
    std::fs::read_to_string("/sys/module/dmabuf_importer/refcnt")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A job of [`JOB_MS`] uses a fresh 4-page userptr, then `change` changes the range: it must
/// return only after the job's fence has signalled, and the invalidation must have waited.
fn change_waits(
    r: &mut Report,
    importer: &File,
    what: &str,
    change: impl FnOnce(&mut Anon) -> io::Result<()>,
) {
    let result = (|| -> io::Result<(Duration, io::Result<u64>, u64)> {
        let mut anon = Anon::new(4)?;
        let handle = userptr(importer, anon.addr as u64, anon.len as u64, 0)?;
        let before = op(importer, DLI_IOCTL_USERPTR_WAITED, handle, 0)?;
        userptr_job(importer, handle, JOB_MS)?;
        let start = Instant::now();
        change(&mut anon)?;
        let took = start.elapsed();
        // Pending, a zero-timeout wait would be `ETIMEDOUT`.
        let signalled = op(importer, DLI_IOCTL_WAIT, handle, 0);
        let waited = op(importer, DLI_IOCTL_USERPTR_WAITED, handle, 0)? - before;
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok((took, signalled, waited))
    })();
    r.check(
        &format!("userptr: {what} of the range waits for the job's fence"),
        matches!(&result, Ok((took, Ok(1), waited)) if *took >= MIN_WAIT && *waited >= 1),
        match &result {
            Ok((took, signalled, waited)) => format!(
                "returned after {} ms of a {JOB_MS} ms job, fence {}, {waited} invalidations waited",
                took.as_millis(),
                if matches!(signalled, Ok(1)) { "signalled" } else { "PENDING" }
            ),
            Err(e) => e.to_string(),
        },
    );
}

/// `fork()`: the child exits at once; the parent's copy-on-write protection of the range is the
/// change.
fn fork_and_reap() -> io::Result<()> {
    // SAFETY: The child only calls `_exit`, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: Ends the child without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: Waits for the child just made.
    os(unsafe { libc::waitpid(pid, &mut status, 0) })
}

pub fn run() -> Report {
    let mut r = Report::default();
    let refs_before = importer_refs();
    let importer = match open(c"/dev/dmabuf_importer") {
        Ok(f) => f,
        Err(e) => {
            r.check("userptr: open the importer", false, e);
            return r;
        }
    };

    change_waits(&mut r, &importer, "munmap", |anon| {
        anon.mapped = false;
        // SAFETY: Unmaps the test's own mapping, which nothing else uses.
        os(unsafe { libc::munmap(anon.ptr(), anon.len) })
    });
    change_waits(&mut r, &importer, "munmap of one page", |anon| {
        // SAFETY: As above, its second page only.
        os(unsafe { libc::munmap((anon.addr + PAGE) as *mut libc::c_void, PAGE) })
    });
    change_waits(&mut r, &importer, "mprotect", |anon| {
        // SAFETY: Makes the test's own mapping read-only.
        os(unsafe { libc::mprotect(anon.ptr(), anon.len, libc::PROT_READ) })
    });
    change_waits(&mut r, &importer, "fork", |_| fork_and_reap());
    change_waits(&mut r, &importer, "madvise(DONTNEED)", |anon| {
        // SAFETY: Drops the pages of the test's own mapping.
        os(unsafe { libc::madvise(anon.ptr(), anon.len, libc::MADV_DONTNEED) })
    });

    exit_waits_for_the_job(&mut r);
    hung_job_bounds_the_wait(&mut r, &importer);
    idle_change_does_not_wait(&mut r, &importer);
    other_process_may_not_use_the_range(&mut r, &importer);
    after_the_change(&mut r, &importer);
    bad_input(&mut r, &importer);
    range_changing_under_the_import(&mut r, &importer);
    allocation_faults(&mut r, &importer);
    fuzz(&mut r, &importer, 3000);

    drop(importer);
    // Jobs give their module references back just after their fences signal.
    let deadline = Instant::now() + Duration::from_secs(3);
    let refs_after = loop {
        let refs = importer_refs();
        if refs == refs_before || Instant::now() > deadline {
            break refs;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    r.check(
        "userptr: nothing left behind: the importer's module count is back",
        refs_before.is_some() && refs_after == refs_before,
        format_args!("{refs_before:?} before, {refs_after:?} after"),
    );
    r
}

/// A child process wraps its own memory, submits a job of [`JOB_MS`] and exits at once: tearing
/// down its address space is the change, and its exit waits for the job.
fn exit_waits_for_the_job(r: &mut Report) {
    let start = Instant::now();
    // SAFETY: The test is single-threaded here; the child runs only this function's code and
    // leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let submitted = (|| -> io::Result<()> {
            let importer = open(c"/dev/dmabuf_importer")?;
            let anon = Anon::new(2)?;
            let handle = userptr(&importer, anon.addr as u64, anon.len as u64, 0)?;
            userptr_job(&importer, handle, JOB_MS)?;
            // Neither the mapping nor the file is given back by hand: the exit does it.
            std::mem::forget(anon);
            std::mem::forget(importer);
            Ok(())
        })();
        // SAFETY: Ends the child.
        unsafe { libc::_exit(i32::from(submitted.is_err())) };
    }
    let mut status = -1;
    let reaped = if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: Waits for the child just made.
        os(unsafe { libc::waitpid(pid, &mut status, 0) })
    };
    let took = start.elapsed();
    r.check(
        "userptr: the exit of a process whose job uses its memory waits for the job",
        reaped.is_ok() && status == 0 && took >= MIN_WAIT,
        format_args!(
            "{reaped:?}, status {status:#x}, reaped after {} ms",
            took.as_millis()
        ),
    );
}

/// A job whose "hardware" hangs: the change waits until the job's watchdog signals its fence
/// with an error, and no longer (R8).
fn hung_job_bounds_the_wait(r: &mut Report, importer: &File) {
    let result = (|| -> io::Result<Duration> {
        let anon = Anon::new(1)?;
        let handle = userptr(importer, anon.addr as u64, anon.len as u64, 0)?;
        userptr_job(importer, handle, 100 | DLS_JOB_HANG)?;
        let start = Instant::now();
        drop(anon);
        let took = start.elapsed();
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok(took)
    })();
    let bound = Duration::from_millis(u64::from(100 + DLS_JOB_GRACE_MS));
    r.check(
        "userptr: munmap under a hung job waits for its watchdog, not longer",
        matches!(result, Ok(took) if took >= bound - Duration::from_millis(200)
            && took < bound + Duration::from_secs(3)),
        format_args!(
            "{:?} (watchdog at {} ms)",
            result.map(|t| t.as_millis()),
            bound.as_millis()
        ),
    );
}

/// With every job done, a change does not wait.
fn idle_change_does_not_wait(r: &mut Report, importer: &File) {
    let result = (|| -> io::Result<(Duration, u64)> {
        let anon = Anon::new(2)?;
        let handle = userptr(importer, anon.addr as u64, anon.len as u64, 0)?;
        userptr_job(importer, handle, 0)?;
        op(importer, DLI_IOCTL_WAIT, handle, 2000)?;
        let start = Instant::now();
        drop(anon);
        let took = start.elapsed();
        let waited = op(importer, DLI_IOCTL_USERPTR_WAITED, handle, 0)?;
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok((took, waited))
    })();
    r.check(
        "userptr: munmap with no job running does not wait",
        matches!(result, Ok((took, 0)) if took < Duration::from_millis(200)),
        format_args!("{result:?}"),
    );
}

/// The importer's file passed to another process (here by `fork()`) does not let that process
/// use the first one's memory: its job on the range is `EPERM`, the owner's still runs.
fn other_process_may_not_use_the_range(r: &mut Report, importer: &File) {
    let result = (|| -> io::Result<(i32, io::Result<u64>)> {
        let anon = Anon::new(2)?;
        let handle = userptr(importer, anon.addr as u64, anon.len as u64, 0)?;
        // SAFETY: The child only makes one ioctl and calls `_exit`, both async-signal-safe; no
        // other thread of this process runs at this point of the test.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let errno = match userptr_job(importer, handle, 0) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(255),
            };
            // SAFETY: Ends the child with the job's errno as its status.
            unsafe { libc::_exit(errno) };
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: Waits for the child just made.
        os(unsafe { libc::waitpid(pid, &mut status, 0) })?;
        let owner = userptr_job(importer, handle, 0);
        op(importer, DLI_IOCTL_WAIT, handle, 2000)?;
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok((libc::WEXITSTATUS(status), owner))
    })();
    r.check(
        "userptr: a process the importer's file is passed to cannot use another's range: EPERM",
        matches!(&result, Ok((libc::EPERM, Ok(_)))),
        match &result {
            Ok((child, owner)) => format!("child's job: errno {child}, owner's job: {owner:?}"),
            Err(e) => e.to_string(),
        },
    );
}

/// Jobs after the range changed: unmapped or read-only is `EFAULT`; mapped again (new pages at
/// the same address), a job runs.
fn after_the_change(r: &mut Report, importer: &File) {
    let Ok(anon) = Anon::new(2) else {
        r.check("userptr: map 2 pages", false, io::Error::last_os_error());
        return;
    };
    let Ok(handle) = userptr(importer, anon.addr as u64, anon.len as u64, 0) else {
        r.check("userptr: wrap 2 pages", false, io::Error::last_os_error());
        return;
    };
    // SAFETY: Makes the test's own mapping read-only, then read-write again.
    let ro = unsafe { libc::mprotect(anon.ptr(), anon.len, libc::PROT_READ) };
    r.expect_errno(
        "userptr: a job on a range made read-only",
        os(ro).and_then(|()| userptr_job(importer, handle, 0)),
        libc::EFAULT,
    );
    // SAFETY: As above.
    let rw = unsafe { libc::mprotect(anon.ptr(), anon.len, libc::PROT_READ | libc::PROT_WRITE) };
    let again = os(rw).and_then(|()| userptr_job(importer, handle, 0));
    r.check(
        "userptr: a job once the range is writable again",
        again.is_ok(),
        format_args!("{again:?}"),
    );
    // SAFETY: Unmaps the test's own mapping; `anon` does not unmap it again... until remapped.
    let unmapped = unsafe { libc::munmap(anon.ptr(), anon.len) };
    r.expect_errno(
        "userptr: a job on an unmapped range",
        os(unmapped).and_then(|()| userptr_job(importer, handle, 0)),
        libc::EFAULT,
    );
    // SAFETY: Maps new pages at the same address, where nothing is mapped now (unmapped above).
    let remapped = unsafe {
        libc::mmap(
            anon.ptr(),
            anon.len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    let again = if remapped == anon.ptr() {
        userptr_job(importer, handle, 0).map(|_| ())
    } else {
        Err(io::Error::last_os_error())
    };
    r.check(
        "userptr: a job once new memory is mapped at the range",
        again.is_ok(),
        format_args!("{again:?}"),
    );
    let released = op(importer, DLI_IOCTL_RELEASE, handle, 0);
    r.check(
        "userptr: release",
        released.is_ok(),
        format_args!("{released:?}"),
    );
    drop(anon);
}

fn bad_input(r: &mut Report, importer: &File) {
    // Four pages and a hole after them.
    let Ok(anon) = Anon::new(5) else {
        r.check("userptr: map 5 pages", false, io::Error::last_os_error());
        return;
    };
    // SAFETY: Unmaps the last page of the test's own mapping.
    let hole = unsafe { libc::munmap((anon.addr + 4 * PAGE) as *mut libc::c_void, PAGE) };
    if let Err(e) = os(hole) {
        r.check("userptr: unmap a page", false, e);
        return;
    }
    let (addr, len, p) = (anon.addr as u64, 4 * PAGE as u64, PAGE as u64);
    let (einval, efault) = (libc::EINVAL, libc::EFAULT);
    let cases: [(&str, u64, u64, u32, i32); 9] = [
        ("an address not page-aligned", addr + 8, p, 0, einval),
        ("a length not page-aligned", addr, 100, 0, einval),
        ("an empty range", addr, 0, 0, einval),
        ("a huge range", addr, (DLS_MAX_PAGES + 1) * p, 0, einval),
        (
            "a range wrapping around",
            u64::MAX - p + 1,
            2 * p,
            0,
            einval,
        ),
        ("nonzero flags", addr, len, 1, einval),
        ("a range running past the mapping", addr, len + p, 0, efault),
        ("a kernel address", 0xffff_8880_0000_0000, p, 0, efault),
        ("an unmapped range", 0x1000, p, 0, efault),
    ];
    for (what, addr, len, flags, errno) in cases {
        r.expect_errno(
            &format!("userptr: {what}"),
            userptr(importer, addr, len, flags),
            errno,
        );
    }
    // SAFETY: Makes the test's own mapping read-only.
    let ro = unsafe { libc::mprotect(anon.ptr(), 4 * PAGE, libc::PROT_READ) };
    r.expect_errno(
        "userptr: a read-only range",
        os(ro).and_then(|()| userptr(importer, addr, len, 0)),
        libc::EFAULT,
    );
    // SAFETY: As above, read-write again.
    unsafe { libc::mprotect(anon.ptr(), 4 * PAGE, libc::PROT_READ | libc::PROT_WRITE) };
    let handle = userptr(importer, addr, len, 0);
    let Ok(handle) = handle else {
        r.check("userptr: wrap 4 pages", false, format_args!("{handle:?}"));
        return;
    };
    r.expect_errno(
        "userptr: map a userptr handle as a dma-buf",
        op(importer, DLI_IOCTL_MAP, handle, 0),
        libc::EINVAL,
    );
    r.expect_errno(
        "userptr: checksum a userptr handle",
        op(importer, DLI_IOCTL_CHECKSUM, handle, 0),
        libc::EINVAL,
    );
    r.expect_errno(
        "userptr: a job longer than 10 s",
        userptr_job(importer, handle, 10_001),
        libc::EINVAL,
    );
    r.expect_errno(
        "userptr: a job on no handle",
        userptr_job(importer, 0, 0),
        libc::ENOENT,
    );
    r.expect_errno(
        "userptr: a job on a released handle",
        op(importer, DLI_IOCTL_RELEASE, handle, 0).and_then(|_| userptr_job(importer, handle, 0)),
        libc::ENOENT,
    );
    drop(anon);
    shared_memfd(r, importer);
}

/// The pins are long-term ones: the kernel refuses a writable one on a shared mapping of a file
/// that is written back (`EFAULT`), which this guest has none of (only tmpfs, ramfs and the
/// like). A shared memfd (tmpfs: nothing is written back) is accepted, and a job runs on it.
fn shared_memfd(r: &mut Report, importer: &File) {
    let what = "userptr: a shared memfd range (tmpfs), and a job on it";
    // SAFETY: A new memfd, with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"userptr".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        r.check(what, false, io::Error::last_os_error());
        return;
    }
    // SAFETY: `fd` was just opened and is owned here.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if let Err(e) = file.set_len(2 * PAGE as u64) {
        r.check(what, false, e);
        return;
    }
    // SAFETY: A new shared mapping of the memfd, at an address of the kernel's choice.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        r.check(what, false, io::Error::last_os_error());
        return;
    }
    let result = userptr(importer, addr as u64, 2 * PAGE as u64, 0).and_then(|handle| {
        let seqno = userptr_job(importer, handle, 10)?;
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok(seqno)
    });
    r.check(what, result.is_ok(), format_args!("{result:?}"));
    // SAFETY: Unmaps the mapping made above.
    unsafe { libc::munmap(addr, 2 * PAGE) };
}

/// What [`churn`] saw: calls that succeeded or failed with an errno the change explains
/// (`EFAULT`: unmapped or read-only at that moment; `EAGAIN`: invalidated while being wrapped),
/// other errors, handles whose jobs had not signalled 5 s after submission, and the
/// invalidations that waited for a job.
#[derive(Default)]
pub(crate) struct Churn {
    pub(crate) ok: u32,
    pub(crate) efault: u32,
    pub(crate) eagain: u32,
    pub(crate) other: Vec<String>,
    pub(crate) unsignalled: u32,
    pub(crate) waited: u64,
}

impl Churn {
    fn count(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(e) if e.raw_os_error() == Some(libc::EFAULT) => self.efault += 1,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => self.eagain += 1,
            Err(e) => self.other.push(e.to_string()),
        }
    }
}

impl std::fmt::Display for Churn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} succeeded, {} EFAULT, {} EAGAIN, {} invalidations waited for a job, \
             {} handles with a pending job after 5 s, others {:?}",
            self.ok, self.efault, self.eagain, self.waited, self.unsignalled, self.other
        )
    }
}

/// Until `deadline`, wraps an 8-page range again and again, runs four jobs of `job_ms` on each
/// wrap, waits for them and releases it, while another thread replaces the range (`MAP_FIXED`),
/// write-protects it and drops its pages (`MADV_DONTNEED`) in a loop: the mmu notifier sees
/// every kind of change under imports and jobs.
pub(crate) fn churn(importer: &File, deadline: Instant, job_ms: u32) -> io::Result<Churn> {
    const PAGES: usize = 8;
    let anon = Anon::new(PAGES)?;
    let stop = AtomicBool::new(false);
    let (addr, len) = (anon.addr, anon.len);
    let mut c = Churn::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let p = addr as *mut libc::c_void;
                // SAFETY: Each call changes only the test's own mapping, which no Rust
                // reference points into; MAP_FIXED replaces it in place, leaving no hole.
                unsafe {
                    match i % 3 {
                        0 => {
                            libc::mmap(
                                p,
                                len,
                                libc::PROT_READ | libc::PROT_WRITE,
                                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                                -1,
                                0,
                            );
                        }
                        1 => {
                            libc::mprotect(p, len, libc::PROT_READ);
                            libc::mprotect(p, len, libc::PROT_READ | libc::PROT_WRITE);
                        }
                        _ => {
                            libc::madvise(p, len, libc::MADV_DONTNEED);
                        }
                    }
                }
                i += 1;
            }
        });
        while Instant::now() < deadline {
            match userptr(importer, addr as u64, len as u64, 0) {
                Ok(handle) => {
                    c.count(Ok(()));
                    for _ in 0..4 {
                        c.count(userptr_job(importer, handle, job_ms).map(|_| ()));
                    }
                    if op(importer, DLI_IOCTL_WAIT, handle, 5000).is_err() {
                        c.unsignalled += 1;
                    }
                    match op(importer, DLI_IOCTL_USERPTR_WAITED, handle, 0) {
                        Ok(n) => c.waited += n,
                        Err(e) => c.count(Err(e)),
                    }
                    c.count(op(importer, DLI_IOCTL_RELEASE, handle, 0).map(|_| ()));
                }
                Err(e) => c.count(Err(e)),
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(c)
}

fn range_changing_under_the_import(r: &mut Report, importer: &File) {
    let churned = churn(importer, Instant::now() + Duration::from_secs(2), 1);
    r.check(
        "userptr: a range changing under imports and jobs: each an errno or success",
        churned
            .as_ref()
            .is_ok_and(|c| c.other.is_empty() && c.ok > 0 && c.unsignalled == 0),
        match &churned {
            Ok(c) => c.to_string(),
            Err(e) => format!("map 8 pages: {e}"),
        },
    );
}

/// Wrapping a range, a job on it and its release fail at every allocation site in turn (the
/// test kernel's fault injection, as in `faults`), each with an errno.
fn allocation_faults(r: &mut Report, importer: &File) {
    if !configure_fault_injection(r, "userptr") {
        return;
    }
    let Ok(anon) = Anon::new(2) else {
        r.check("userptr: map 2 pages", false, io::Error::last_os_error());
        return;
    };
    let sites = fail_every_site(|| {
        let handle = userptr(importer, anon.addr as u64, anon.len as u64, 0)?;
        let job = userptr_job(importer, handle, 0);
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        job.map(drop)
    });
    r.check(
        "userptr: wrapping a range and a job on it fail cleanly at every allocation site",
        sites.is_ok(),
        format_args!("{sites:?} sites"),
    );
    drop(anon);
}

/// `count` random userptr ioctls, valid and not, while the memory they name is mapped, unmapped
/// and reprotected at random: each returns success or an errno of the expected few.
fn fuzz(r: &mut Report, importer: &File, count: u32) {
    const PAGES: usize = 8;
    let Ok(anon) = Anon::new(PAGES) else {
        r.check("userptr: map 8 pages", false, io::Error::last_os_error());
        return;
    };
    let mut rng = Rng(0x5eed_u64 | 1);
    let (mut ok, mut unexpected) = (0u32, Vec::new());
    let p = PAGE as u64;
    let expected = [
        libc::EINVAL,
        libc::EFAULT,
        libc::EAGAIN,
        libc::ENOENT,
        libc::ENOSPC,
        libc::ETIMEDOUT,
    ];
    for _ in 0..count {
        let handle = rng.below(10) as u32;
        let result = match rng.below(10) {
            0..=2 => {
                let addr = [
                    anon.addr as u64,
                    anon.addr as u64 + p,
                    anon.addr as u64 + 12,
                    0,
                    rng.next(),
                ][rng.below(5) as usize];
                let len = [
                    p,
                    2 * p,
                    PAGES as u64 * p,
                    0,
                    100,
                    (DLS_MAX_PAGES + 1) * p,
                    rng.next(),
                ][rng.below(7) as usize];
                userptr(importer, addr, len, (rng.below(8) == 0) as u32).map(drop)
            }
            3 | 4 => userptr_job(importer, handle, rng.below(5) as u32).map(drop),
            5 => op(importer, DLI_IOCTL_RELEASE, handle, 0).map(drop),
            6 => op(importer, DLI_IOCTL_WAIT, handle, rng.below(3) as u32).map(drop),
            7 => op(importer, DLI_IOCTL_USERPTR_WAITED, handle, 0).map(drop),
            8 => op(importer, DLI_IOCTL_MAP, handle, 0).map(drop),
            _ => {
                let page = anon.addr + rng.below(PAGES as u64) as usize * PAGE;
                let ptr = page as *mut libc::c_void;
                // SAFETY: Each call changes one page of the test's own mapping, which no Rust
                // reference points into; MAP_FIXED replaces it in place.
                let ret = unsafe {
                    match rng.below(3) {
                        0 => libc::mprotect(ptr, PAGE, libc::PROT_READ),
                        1 => libc::mprotect(ptr, PAGE, libc::PROT_READ | libc::PROT_WRITE),
                        _ => {
                            let fixed = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
                            let rw = libc::PROT_READ | libc::PROT_WRITE;
                            if libc::mmap(ptr, PAGE, rw, fixed, -1, 0) == ptr {
                                0
                            } else {
                                -1
                            }
                        }
                    }
                };
                os(ret)
            }
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) if e.raw_os_error().is_some_and(|n| expected.contains(&n)) => {}
            Err(e) => unexpected.push(e.to_string()),
        }
    }
    r.check(
        &format!("userptr: {count} random ioctls and address-space changes: success or an expected errno"),
        unexpected.is_empty() && ok > 0,
        format_args!("{ok} succeeded, unexpected {unexpected:?}"),
    );
    drop(anon);
}
