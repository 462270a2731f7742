// SPDX-License-Identifier: GPL-2.0

//! The exporter's shrinker under real memory pressure (R2): `shrink` creates buffers (a few
//! filled with patterns, a few with one page of data, most left zero), keeps some busy with
//! jobs, and drives reclaim with a memory hog (a child that allocates past the free memory) and
//! then `drop_caches`. It checks that idle buffers were evicted and their all-zero pages freed,
//! that the busy ones were kept while their jobs ran, and that every buffer's contents survive,
//! read back through the importer and through `mmap`. `shrink-hog BYTES` is the hog. The story
//! of `make run` has one step of it ([`story`]).

use super::{create, export_sync_file, import, job, op, sync_file_status, write_file, Report};
use crate::{fault::Mapping, uapi::*};
use std::{
    fs::File,
    io::{self, BufRead, Write},
    os::fd::{AsRawFd, OwnedFd, RawFd},
    process::Stdio,
    time::Instant,
};

/// Pages per buffer.
const PAGES: u64 = 256;
const LEN: usize = PAGES as usize * 4096;

/// `DLS_IOCTL_STATE` of the buffer `fd`, created through `exporter`.
pub(crate) fn state(exporter: &File, fd: RawFd) -> io::Result<DlsState> {
    let mut a = DlsState {
        version: DLS_UAPI_VERSION,
        size: size_of::<DlsState>() as u32,
        fd,
        ..Default::default()
    };
    super::ioctl(exporter.as_raw_fd(), DLS_IOCTL_STATE, &mut a)?;
    Ok(a)
}

fn evicted(exporter: &File, fd: RawFd) -> bool {
    state(exporter, fd).is_ok_and(|s| s.flags & DLS_STATE_EVICTED != 0)
}

/// Maps the buffer `fd` of `len` bytes shared, lets `f` read or write it, unmaps it.
fn with_mapping<T>(fd: RawFd, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> io::Result<T> {
    Mapping::shared(fd, len).map(|map| f(map.bytes()))
}

/// What a buffer holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A pattern in every byte.
    Full,
    /// A pattern in its page 3 only, zeroes elsewhere.
    OnePage,
    /// Zeroes: never written.
    Zero,
}

/// Fills buffer `i` of `kind` through `mmap`; returns its checksum.
fn fill(fd: RawFd, i: usize, kind: Kind) -> io::Result<u64> {
    with_mapping(fd, LEN, |bytes| {
        match kind {
            Kind::Full => bytes
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (j * 13 + i * 7 + 1) as u8),
            Kind::OnePage => bytes[3 * 4096..4 * 4096]
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (j + i) as u8 | 1),
            Kind::Zero => {}
        }
        checksum(bytes)
    })
}

/// The buffer's checksum through the importer (CPU access of an import), and through `mmap`.
fn sums(importer: &File, fd: RawFd) -> io::Result<(u64, u64)> {
    let handle = import(importer, fd)?;
    let through_importer = op(importer, DLI_IOCTL_CHECKSUM, handle, 0);
    op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
    let through_mmap = with_mapping(fd, LEN, |bytes| checksum(bytes))?;
    Ok((through_importer?, through_mmap))
}

/// `MemFree` of `/proc/meminfo`, in bytes.
fn mem_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemFree:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Free memory in bytes: `MemFree`, and the pages on the per-CPU free lists (`count:` of
/// `/proc/zoneinfo`'s pagesets), which `MemFree` does not count: a burst of frees, as an
/// eviction is, lands there first.
fn free_pages() -> u64 {
    let pcp: u64 = std::fs::read_to_string("/proc/zoneinfo").map_or(0, |z| {
        z.lines()
            .filter_map(|l| l.trim().strip_prefix("count:"))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum()
    });
    mem_free() + pcp * 4096
}

/// Whether every fence on `fd` is still pending.
fn busy(fd: RawFd) -> bool {
    export_sync_file(fd)
        .and_then(|sync| sync_file_status(sync.as_raw_fd()))
        .is_ok_and(|status| status == 0)
}

/// Waits (through the importer) until the fences on every buffer of `fds` are signalled.
fn wait_all(importer: &File, fds: &[RawFd]) -> io::Result<()> {
    for &fd in fds {
        let handle = import(importer, fd)?;
        let waited = op(importer, DLI_IOCTL_WAIT, handle, 15_000);
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        waited?;
    }
    Ok(())
}

/// `shrink-hog FIRST REST`: maps FIRST bytes of anonymous memory, populated at once, says
/// `ready` on stdout and waits for a line on stdin, then touches REST more bytes a page at a
/// time and exits. The first part brings free memory near its end without reclaim; the rest is
/// where reclaim runs (and the shrinkers with it), at a moment the parent chooses.
pub(crate) fn hog(args: &[String]) -> i32 {
    let arg = |i: usize| {
        args.get(i)
            .and_then(|a| a.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let map = |len: usize, flags: i32| {
        // SAFETY: A fresh private anonymous mapping; the process exits with it.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
                -1,
                0,
            )
        };
        (addr != libc::MAP_FAILED).then_some(addr)
    };
    if map(arg(0), libc::MAP_POPULATE).is_none() {
        return 1;
    }
    println!("ready");
    let mut line = String::new();
    if io::stdin().read_line(&mut line).is_err() {
        return 1;
    }
    let Some(rest) = map(arg(1), 0) else {
        return 1;
    };
    for offset in (0..arg(1)).step_by(4096) {
        // SAFETY: Inside the mapping made above, writable.
        unsafe { rest.cast::<u8>().add(offset).write_volatile(1) };
    }
    0
}

/// Runs the hog in a child: `first` bytes at once, then `before_rest` (the parent's move), then
/// `rest` bytes. Returns whether the hog completed.
fn run_hog(first: u64, rest: u64, before_rest: impl FnOnce()) -> io::Result<bool> {
    let mut child = std::process::Command::new("/proc/self/exe")
        .args(["shrink-hog", &first.to_string(), &rest.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    if let Some(out) = child.stdout.take() {
        io::BufReader::new(out).read_line(&mut ready)?;
    }
    before_rest();
    if let Some(mut input) = child.stdin.take() {
        input.write_all(b"go\n")?;
    }
    Ok(child.wait()?.success() && ready.trim() == "ready")
}

/// Checks every buffer's contents through the importer and through `mmap` (which brings an
/// evicted buffer back); returns the buffers that differ.
fn check_contents(importer: &File, made: &[(OwnedFd, u64)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (i, (buf, expected)) in made.iter().enumerate() {
        match sums(importer, buf.as_raw_fd()) {
            Ok((a, b)) if a == *expected && b == *expected => {}
            other => wrong.push(format!("buffer {i}: {other:x?}, expected {expected:x}")),
        }
    }
    wrong
}

/// `shrink`: the shrinker under a memory hog and `drop_caches` while jobs run.
pub(crate) fn shrink() -> Report {
    let mut r = Report::default();
    let Some((exporter, importer)) = super::open_devices(&mut r, "shrink") else {
        return r;
    };
    // Pages that the shrinker frees go to the free lists of the CPU it runs on, which the
    // kernel lets grow up to an eighth of memory (its auto-tuning): the hog below, faulting on
    // the other CPU, met the OOM killer with 32 MiB there (seen once). A fraction set by hand
    // turns the auto-tuning off and keeps those lists near 1 MiB.
    if let Err(e) = write_file("/proc/sys/vm/percpu_pagelist_high_fraction", "100000") {
        r.check("shrink: small per-CPU free lists", false, e);
        return r;
    }
    // 32 buffers of 1 MiB: 4 full, 4 with one page of data, 24 zero.
    let kinds: Vec<Kind> = (0..32)
        .map(|i| match i {
            0..4 => Kind::Full,
            4..8 => Kind::OnePage,
            _ => Kind::Zero,
        })
        .collect();
    let made: io::Result<Vec<(OwnedFd, u64)>> = kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let buf = create(&exporter, PAGES)?;
            let sum = fill(buf.as_raw_fd(), i, kind)?;
            Ok((buf, sum))
        })
        .collect();
    let made = match made {
        Ok(made) => made,
        Err(e) => {
            r.check("shrink: 32 buffers created and filled", false, e);
            return r;
        }
    };
    let fd = |i: usize| made[i].0.as_raw_fd();
    let all_resident = (0..made.len()).all(|i| !evicted(&exporter, fd(i)));
    r.check(
        "shrink: 32 buffers of 1 MiB, 4 full, 4 with one page of data, 24 zero",
        all_resident,
        "all resident",
    );
    // Busy: a full one, a one-page one and a zero one, each time under a job that runs 10 s.
    let busy_set = [0, 4, 8];
    let busy_fds: Vec<RawFd> = busy_set.iter().map(|&i| fd(i)).collect();
    let idle = || (0..made.len()).filter(|i| !busy_set.contains(i));

    // Pressure 1: a hog that wants more than the free memory, so reclaim must find pages, and
    // the only reclaimable ones in this guest (no swap) are the page cache and the shrinkers'.
    // It takes all but 48 MiB of the free memory first; the job starts then, and the hog goes
    // on past the end of the free memory.
    let free = free_pages();
    let first = free.saturating_sub(48 << 20);
    // All of the free memory and 12 MiB more: reclaim must find those and the kernel's reserves
    // (its watermarks, 4 MiB here), which only the exporter's shrinker has (24 MiB of zero
    // pages, 4 MiB more in the one-page buffers). With exactly the free memory, the pressure
    // depended on what the per-CPU lists held when it was measured: once the OOM killer (too
    // little), once no eviction at all (enough without).
    let mut hang = Err(io::Error::from_raw_os_error(libc::ENOEXEC));
    let mut start = Instant::now();
    let hogged = run_hog(first, 60 << 20, || {
        hang = job(&exporter, &busy_fds, 10_000);
        start = Instant::now();
    });
    let elapsed = start.elapsed().as_millis();
    let after_hog = state(&exporter, fd(31));
    let still_busy = busy_set.iter().all(|&i| busy(fd(i)));
    let kept = busy_set.iter().all(|&i| !evicted(&exporter, fd(i)));
    let evicted_by_hog = idle().filter(|&i| evicted(&exporter, fd(i))).count();
    r.check(
        "shrink: a memory hog's reclaim evicts idle buffers",
        hang.is_ok() && matches!(hogged, Ok(true)) && evicted_by_hog > 0,
        format_args!(
            "hog of {} MiB (free {} MiB): {hogged:?}, its last 60 MiB in {elapsed} ms; \
             {evicted_by_hog} of 29 idle buffers evicted ({:?} evictions in all); job {hang:?}",
            (first >> 20) + 60,
            free >> 20,
            after_hog.map(|s| s.evictions),
        ),
    );
    r.check(
        "shrink: buffers busy with a job are kept under the hog",
        kept && still_busy,
        format_args!("kept {kept}, job still running {still_busy}"),
    );
    let wrong = check_contents(&importer, &made);
    let back = (0..made.len()).all(|i| !evicted(&exporter, fd(i)));
    r.check(
        "shrink: contents survive the hog's evictions, through the importer and through mmap",
        wrong.is_empty() && back,
        format_args!(
            "{} buffers checked, all resident again {back}, {wrong:?}",
            made.len()
        ),
    );

    // Pressure 2: drop_caches runs every shrinker until it frees nothing more, while a new job
    // keeps the busy buffers busy.
    let hang = job(&exporter, &busy_fds, 10_000);
    let before = state(&exporter, fd(31)).map(|s| (s.evictions, s.freed_pages));
    let free_before = free_pages();
    let dropped = write_file("/proc/sys/vm/drop_caches", "3").and(hang.map(drop));
    let free_after = free_pages();
    let still_busy = busy_set.iter().all(|&i| busy(fd(i)));
    let states: Vec<io::Result<DlsState>> =
        (0..made.len()).map(|i| state(&exporter, fd(i))).collect();
    let is_evicted = |i: usize| matches!(&states[i], Ok(s) if s.flags & DLS_STATE_EVICTED != 0);
    let idle_evicted = idle().all(is_evicted);
    let kept = !busy_set.iter().any(|&i| is_evicted(i));
    r.check(
        "shrink: drop_caches evicts every idle buffer, keeps the busy ones",
        dropped.is_ok() && idle_evicted && kept && still_busy,
        format_args!(
            "{dropped:?}, idle evicted {idle_evicted}, busy kept {kept} (job running {still_busy})"
        ),
    );
    // What stays in memory: the pages with data; the zero ones are freed.
    let in_memory = |i: usize| states[i].as_ref().map_or(u64::MAX, |s| s.pages_in_memory);
    let expected_in_memory = |i: usize| match kinds[i] {
        _ if busy_set.contains(&i) => PAGES,
        Kind::Full => PAGES,
        Kind::OnePage => 1,
        Kind::Zero => 0,
    };
    let pages_right = (0..made.len()).all(|i| in_memory(i) == expected_in_memory(i));
    let last = states
        .last()
        .and_then(|s| s.as_ref().ok())
        .copied()
        .unwrap_or_default();
    let (evictions_before, freed_before) = before.unwrap_or_default();
    let freed_now = last.freed_pages - freed_before.min(last.freed_pages);
    r.check(
        "shrink: evicted buffers keep their data pages and free the zero ones",
        pages_right && last.evictions > evictions_before,
        format_args!(
            "{} evictions ({} by drop_caches), {freed_now} zero pages freed by drop_caches; \
             pages in memory: full {} / one-page {} / zero {}",
            last.evictions,
            last.evictions - evictions_before.min(last.evictions),
            in_memory(1),
            in_memory(5),
            in_memory(9)
        ),
    );
    r.check(
        "shrink: the freed pages are free memory again (MemFree and the per-CPU lists)",
        free_after >= free_before + freed_now * 4096 / 2,
        format_args!(
            "free {} KiB before drop_caches, {} KiB after; {} KiB freed by the shrinker",
            free_before >> 10,
            free_after >> 10,
            freed_now * 4,
        ),
    );
    let wrong = check_contents(&importer, &made);
    let restored = state(&exporter, fd(31)).map_or(0, |s| s.restores);
    r.check(
        "shrink: contents survive eviction by drop_caches, through the importer and through mmap",
        wrong.is_empty() && restored > 0,
        format_args!(
            "{} buffers checked, {restored} brought back in all, {wrong:?}",
            made.len()
        ),
    );

    // Once the job is done, the busy buffers are idle too.
    let waited = wait_all(&importer, &busy_fds);
    let dropped = write_file("/proc/sys/vm/drop_caches", "3");
    let now_evicted = busy_set.iter().all(|&i| evicted(&exporter, fd(i)));
    r.check(
        "shrink: the busy buffers are evicted once their job is done",
        waited.is_ok() && dropped.is_ok() && now_evicted,
        format_args!("{waited:?} {dropped:?}"),
    );
    r
}

/// `make run`'s step: a few buffers, `drop_caches`, and what the shrinker did with them.
pub(crate) fn story(r: &mut Report, exporter: &File, importer: &File) {
    let result: io::Result<(usize, u64, bool)> = (|| {
        let bufs: Vec<OwnedFd> = (0..8)
            .map(|_| create(exporter, 64))
            .collect::<Result<_, _>>()?;
        let expected = super::fill(bufs[0].as_raw_fd(), 64 * 4096, |i| (i % 251) as u8)?;
        write_file("/proc/sys/vm/drop_caches", "3")?;
        let gone = bufs
            .iter()
            .filter(|b| evicted(exporter, b.as_raw_fd()))
            .count();
        let freed = state(exporter, bufs[7].as_raw_fd())?.freed_pages;
        let handle = import(importer, bufs[0].as_raw_fd())?;
        let sum = op(importer, DLI_IOCTL_CHECKSUM, handle, 0);
        op(importer, DLI_IOCTL_RELEASE, handle, 0)?;
        Ok((gone, freed, sum? == expected))
    })();
    r.check(
        "the exporter's shrinker evicts idle buffers under memory pressure (drop_caches)",
        matches!(result, Ok((8, _, true))),
        match &result {
            Ok((gone, freed, same)) => format!(
                "{gone} of 8 new buffers evicted, {freed} zero pages freed by this file's \
                 shrinker, the written one reads back intact: {same}"
            ),
            Err(e) => e.to_string(),
        },
    );
}
