// SPDX-License-Identifier: GPL-2.0

//! `stress SECONDS`: every path of the sample drivers at the same time (issue 13). For SECONDS,
//! on 64 shared one-page buffers:
//!
//! - four threads of this process and two more processes submit jobs on random subsets (the
//!   locker, R6; fences signalled from the timer standing in for the interrupt, R4, R5);
//! - a thread maps buffers, writes a stamp through the mapping, moves the buffer (its mappings
//!   are zapped) and reads the stamp back: every access after a move or an eviction is a fault
//!   that takes the reservation under `mmap_lock` (R1);
//! - a thread writes `drop_caches` every 200 ms: the exporter's shrinker evicts the idle
//!   buffers from reclaim, only trylocking reservations (R2);
//! - a thread wraps userptr ranges and runs jobs on them while another changes the ranges:
//!   the mmu notifier waits for those jobs' fences (R3).
//!
//! Then every fence must have signalled, every stamp read back must be the one written, and
//! nothing may have failed with an errno its cause does not explain; `scripts/vm-run` judges
//! the console (lockdep, KASAN, UBSAN).

use super::{create, evict, import, job, op, open, open_devices, write_file, Report, Rng};
use crate::{
    fault::Mapping,
    shrink::state,
    uapi::{DLI_IOCTL_RELEASE, DLI_IOCTL_WAIT},
    userptr,
};
use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    time::{Duration, Instant},
};

const BUFFERS: usize = 64;
const PAGE: usize = 4096;

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
pub(crate) fn child(args: &[String]) -> i32 {
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let fds: Vec<RawFd> = args.iter().skip(2).filter_map(|a| a.parse().ok()).collect();
    let Ok(exporter) = open(c"/dev/dmabuf_exporter") else {
        return 1;
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (jobs, errors) = submit_jobs(&exporter, &fds, deadline, 100 + seed);
    i32::from(jobs == 0 || errors != 0)
}

/// What the faulting thread did: rounds, moves, moves refused because an importer pinned the
/// buffer (`EBUSY`), and what went wrong.
#[derive(Default)]
struct Faults {
    rounds: u64,
    moves: u64,
    pinned: u64,
    wrong: Vec<String>,
}

/// The first eight bytes of a mapped page (a read that may fault).
fn stamp(map: &Mapping) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&map.bytes()[..8]);
    u64::from_ne_bytes(word)
}

/// Until `deadline`: maps a random buffer, checks that it holds the stamp last written to it,
/// writes a new one, moves the buffer and reads the new stamp back through the same mapping.
fn fault_while_moving(exporter: &File, fds: &[RawFd], deadline: Instant) -> Faults {
    let mut rng = Rng(0xfa17_0000_0000_0001);
    let mut written = vec![0u64; fds.len()];
    let mut f = Faults::default();
    while Instant::now() < deadline && f.wrong.len() < 8 {
        let i = rng.below(fds.len() as u64) as usize;
        let map = match Mapping::shared(fds[i], PAGE) {
            Ok(map) => map,
            Err(e) => {
                f.wrong.push(format!("mmap of buffer {i}: {e}"));
                continue;
            }
        };
        let before = stamp(&map);
        if before != written[i] {
            f.wrong.push(format!(
                "buffer {i}: read {before:#x}, last wrote {:#x}",
                written[i]
            ));
        }
        f.rounds += 1;
        written[i] = (f.rounds << 8) | i as u64;
        map.bytes()[..8].copy_from_slice(&written[i].to_ne_bytes());
        match evict(exporter, fds[i]) {
            Ok(()) => f.moves += 1,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => f.pinned += 1,
            Err(e) => f.wrong.push(format!("move of buffer {i}: {e}")),
        }
        let after = stamp(&map);
        if after != written[i] {
            f.wrong.push(format!(
                "buffer {i} after its move: read {after:#x}, wrote {:#x}",
                written[i]
            ));
        }
    }
    f
}

/// Until `deadline`, every 200 ms: `drop_caches`, which runs every shrinker. Returns the
/// rounds, or the first error.
fn reclaim_loop(deadline: Instant) -> io::Result<u32> {
    let mut rounds = 0;
    while Instant::now() < deadline {
        write_file("/proc/sys/vm/drop_caches", "3")?;
        rounds += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(rounds)
}

/// The shrinker's counters of the exporter file that made `fd`: (evictions, restores).
fn shrinker_counts(exporter: &File, fd: RawFd) -> io::Result<(u64, u64)> {
    state(exporter, fd).map(|s| (s.evictions, s.restores))
}

/// `stress SECONDS`: the run described at the top of this file.
pub(crate) fn run(seconds: u64) -> Report {
    let mut r = Report::default();
    // The checks are named by the run's length (make test has a short run and a full-length one),
    // after the module's name: scripts/rules-table finds a check's rules in the module it names.
    let what = format!("stress: {seconds} s");
    let Some((exporter, importer)) = open_devices(&mut r, &what) else {
        return r;
    };
    let buffers: Vec<OwnedFd> = (0..BUFFERS)
        .filter_map(|_| create(&exporter, 1).ok())
        .collect();
    r.check(
        &format!("{what}: 64 shared buffers"),
        buffers.len() == BUFFERS,
        buffers.len(),
    );
    if buffers.is_empty() {
        return r;
    }
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
        &format!("{what}: 2 more processes on the same buffers"),
        children.len() == 2,
        children.len(),
    );
    let shrunk_before = shrinker_counts(&exporter, fds[0]);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (counts, faults, reclaim, churn) = std::thread::scope(|scope| {
        let (fds, exporter, importer) = (&fds, &exporter, &importer);
        let workers: Vec<_> = (0..4u64)
            .map(|t| scope.spawn(move || submit_jobs(exporter, fds, deadline, t + 1)))
            .collect();
        let faults = scope.spawn(move || fault_while_moving(exporter, fds, deadline));
        let reclaim = scope.spawn(move || reclaim_loop(deadline));
        let churn = scope.spawn(move || userptr::churn(importer, deadline, 2));
        let counts: Vec<(u64, u64)> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or((0, u64::MAX)))
            .collect();
        (counts, faults.join(), reclaim.join(), churn.join())
    });
    let shrunk_after = shrinker_counts(&exporter, fds[0]);

    let jobs: u64 = counts.iter().map(|c| c.0).sum();
    let errors: u64 = counts.iter().map(|c| c.1).sum();
    let children_ok = children
        .into_iter()
        .all(|mut c| c.wait().is_ok_and(|s| s.success()));
    r.check(
        &format!("{what}: the other processes finished cleanly"),
        children_ok,
        children_ok,
    );
    r.check(
        &format!("{what}: 4 threads submit jobs on random subsets"),
        jobs > 0 && errors == 0,
        format_args!("{jobs} jobs in {seconds} s, {errors} errors"),
    );
    match faults {
        Ok(f) => r.check(
            &format!("{what}: faults on buffers that move meanwhile read back what was written"),
            f.rounds > 0 && f.moves > 0 && f.wrong.is_empty(),
            format_args!(
                "{} rounds, {} moves, {} refused (pinned by an importer), wrong: {:?}",
                f.rounds, f.moves, f.pinned, f.wrong
            ),
        ),
        Err(_) => r.check(
            &format!("{what}: faults on buffers that move"),
            false,
            "panicked",
        ),
    }
    let evicted = match (&shrunk_before, &shrunk_after) {
        (Ok(before), Ok(after)) => Some((after.0 - before.0, after.1 - before.1)),
        _ => None,
    };
    let rounds = match reclaim {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("panicked".into()),
    };
    r.check(
        &format!("{what}: drop_caches every 200 ms: the shrinker evicts idle buffers, use brings them back"),
        matches!(rounds, Ok(n) if n > 0)
            && matches!(evicted, Some((evictions, restores)) if evictions > 0 && restores > 0),
        format_args!("drop_caches rounds {rounds:?}, (evictions, restores) {evicted:?}"),
    );
    match churn {
        Ok(Ok(c)) => r.check(
            &format!("{what}: userptr jobs while their range changes: invalidations wait for them"),
            c.ok > 0 && c.waited > 0 && c.other.is_empty() && c.unsignalled == 0,
            c,
        ),
        Ok(Err(e)) => r.check(&format!("{what}: userptr: map 8 pages"), false, e),
        Err(_) => r.check(&format!("{what}: userptr jobs"), false, "panicked"),
    }
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
        &format!("{what}: every fence signalled"),
        unsignalled == 0,
        format_args!("{unsignalled} buffers still busy"),
    );
    r
}
