// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_lock_bench.ko`: times the library's paths against their C equivalents
//! (`c_paths.c`) in one boot and prints one `result` line per operation, which `make bench`
//! turns into a table. Timings come from `ktime_get()` over enough iterations to be stable; each
//! figure is the best of several repetitions, C and Rust alternating.
//!
//! It also holds the probe functions that `scripts/zero-cost` disassembles to show that
//! signalling sections and priming compile to nothing without `CONFIG_LOCKDEP`.

use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Completion, Mutex,
    },
    workqueue,
};
use pin_init::stack_pin_init;

#[path = "../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

use dmabuf_lock::{
    context::MayBlock,
    lockdep::{Level, LockOrder},
    locker::{LockerFlags, ResvLocker},
    resv::{OwnedResv, Resv},
};

#[path = "../tests/support/work.rs"]
mod work;

module! {
    type: DmabufLockBench,
    name: "dmabuf_lock_bench",
    authors: ["dmabuf-lock developers"],
    description: "Benchmark: dmabuf-lock's Rust paths against the C paths",
    license: "GPL",
}

// The pointee structs come from bindgen, which emits some kernel types empty; see the same
// allowance in `rust/dmabuf_lock/ffi.rs`.
#[allow(improper_ctypes)]
extern "C" {
    fn dl_bench_c_lock_unlock(obj: *mut bindings::dma_resv, iters: u32) -> u64;
    fn dl_bench_c_lock_all(objs: *mut *mut bindings::dma_resv, n: u32, iters: u32) -> u64;
    fn dl_bench_c_signalling(iters: u32) -> u64;
    fn dl_bench_c_contend(
        objs: *mut *mut bindings::dma_resv,
        n: u32,
        duration_ns: u64,
        seed: u32,
        acquisitions: *mut u64,
        backoffs: *mut u64,
    );
}

/// Probe for `scripts/zero-cost`: entering and leaving a signalling section.
///
/// The unmangled name is only for finding it in the disassembly; nothing calls it across an ABI.
#[allow(clippy::no_mangle_with_rust_abi)]
#[no_mangle]
#[inline(never)]
pub fn dmabuf_lock_bench_probe_section(task: &mut MayBlock) {
    drop(task.signalling_section());
}

/// Probe for `scripts/zero-cost`: priming a driver lock inside signalling sections.
#[allow(clippy::no_mangle_with_rust_abi)]
#[no_mangle]
#[inline(never)]
pub fn dmabuf_lock_bench_probe_prime(task: &MayBlock, lock: &Mutex<u32>) -> Result {
    LockOrder::new(c"probe")
        .then(Level::Signalling)
        .then(Level::Driver(lock, c"probe"))
        .prime(task)
}

const REPS: u32 = 5;
const LOCKER_SIZES: [(u32, &str); 5] = [
    (1, "lock all, N=1"),
    (4, "lock all, N=4"),
    (16, "lock all, N=16"),
    (64, "lock all, N=64"),
    (256, "lock all, N=256"),
];
const CONTENTION_OBJECTS: usize = 64;
const CONTENTION_NS: u64 = 300_000_000;

fn now_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions.
    let t = unsafe { bindings::ktime_get() };
    u64::try_from(t).unwrap_or(0)
}

/// Runs `c` and `rust` alternately `REPS` times; each returns the nanoseconds its loop of `iters`
/// operations took. Returns the best ns/op of each, in hundredths of a nanosecond.
fn best_of(iters: u32, mut c: impl FnMut() -> u64, mut rust: impl FnMut() -> u64) -> (u64, u64) {
    let (mut best_c, mut best_rust) = (u64::MAX, u64::MAX);
    for _ in 0..REPS {
        best_c = best_c.min(c());
        best_rust = best_rust.min(rust());
    }
    // Divisors are kept visibly non-zero: Linux 7.3's objtool does not know that
    // `panic_const_div_by_zero` does not return (README, known issues).
    let per_op = |ns: u64| ns * 100 / u64::from(iters.max(1));
    (per_op(best_c), per_op(best_rust))
}

fn report(op: &str, (c, rust): (u64, u64)) {
    pr_info!(
        "result op=\"{op}\" c_ns={}.{:02} rust_ns={}.{:02}\n",
        c / 100,
        c % 100,
        rust / 100,
        rust % 100
    );
}

fn new_objects(n: usize) -> Result<KVec<Pin<KBox<OwnedResv>>>> {
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        v.push(KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?, GFP_KERNEL)?;
    }
    Ok(v)
}

fn raw_pointers(objs: &[Pin<KBox<OwnedResv>>]) -> Result<KVec<*mut bindings::dma_resv>> {
    let mut v = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
    for o in objs {
        v.push(o.as_raw(), GFP_KERNEL)?;
    }
    Ok(v)
}

fn refs(objs: &[Pin<KBox<OwnedResv>>]) -> Result<KVec<&Resv>> {
    let mut v = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
    for o in objs {
        v.push(&***o, GFP_KERNEL)?;
    }
    Ok(v)
}

fn bench_single(task: &MayBlock) -> Result {
    const ITERS: u32 = 200_000;
    let obj = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    let times = best_of(
        ITERS,
        // SAFETY: `obj` is an initialised reservation that nobody else uses.
        || unsafe { dl_bench_c_lock_unlock(obj.as_raw(), ITERS) },
        || {
            let start = now_ns();
            for _ in 0..ITERS {
                drop(obj.lock(task));
            }
            now_ns() - start
        },
    );
    report("lock+unlock, 1 object", times);
    Ok(())
}

fn bench_locker(task: &MayBlock) -> Result {
    let objs = new_objects(256)?;
    let mut raw = raw_pointers(&objs)?;
    let all = refs(&objs)?;
    for (n, op) in LOCKER_SIZES {
        let iters = (40_000 / n.max(1)).max(100);
        let count = n as usize;
        let times = best_of(
            iters,
            // SAFETY: `raw` holds `n` initialised reservations that nobody else uses.
            || unsafe { dl_bench_c_lock_all(raw.as_mut_ptr(), n, iters) },
            || {
                // One locker reused for every iteration, as a driver keeps one per queue: after
                // the first iteration it allocates nothing, like the C loop.
                stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
                let start = now_ns();
                for _ in 0..iters {
                    locker.as_mut().reset();
                    // Uncontended locking cannot fail; a failure would show as missing time.
                    let _ = locker.as_mut().lock_slice(task, &all[..count]);
                }
                locker.as_mut().unlock_all();
                now_ns() - start
            },
        );
        report(op, times);
    }
    Ok(())
}

fn bench_signalling(task: &mut MayBlock) {
    const ITERS: u32 = 200_000;
    let mut rust_loop = || {
        let start = now_ns();
        for _ in 0..ITERS {
            drop(task.signalling_section());
        }
        now_ns() - start
    };
    let times = best_of(
        ITERS,
        // SAFETY: Begins and ends sections on this task, as the C API requires.
        || unsafe { dl_bench_c_signalling(ITERS) },
        &mut rust_loop,
    );
    report("signalling section enter+exit", times);
}

#[pin_data]
struct Contention {
    objs: KVec<Pin<KBox<OwnedResv>>>,
    raw: KVec<usize>,
    rust: bool,
    acquisitions: Atomic<u64>,
    backoffs: Atomic<u64>,
    #[pin]
    first_done: Completion,
    #[pin]
    second_done: Completion,
}

fn next_subset(seed: &mut u32, n: usize) -> (usize, usize, usize) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    let s = *seed as usize;
    (1 + s % 8, (s >> 8) % n, ((s >> 16) % n) | 1)
}

fn contend_rust(shared: &Contention, mut seed: u32) -> (u64, u64) {
    let Ok(task) = MayBlock::new() else {
        return (0, 0);
    };
    let n = shared.objs.len().max(1);
    let end = now_ns() + CONTENTION_NS;
    let mut acquisitions = 0;
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    while now_ns() < end {
        let (k, start, stride) = next_subset(&mut seed, n);
        let mut subset: [Option<&Resv>; 8] = [None; 8];
        for (i, slot) in subset.iter_mut().take(k).enumerate() {
            *slot = Some(&*shared.objs[(start + i * stride) % n]);
        }
        locker.as_mut().reset();
        if locker
            .as_mut()
            .lock_iter(&task, subset.iter().flatten().copied())
            .is_ok()
        {
            acquisitions += 1;
        }
    }
    locker.as_mut().unlock_all();
    (acquisitions, u64::from(locker.stats().backoffs))
}

fn contend_c(shared: &Contention, seed: u32) -> (u64, u64) {
    let (mut acquisitions, mut backoffs) = (0u64, 0u64);
    let mut raw: KVec<*mut bindings::dma_resv> = KVec::new();
    for &p in shared.raw.iter() {
        if raw.push(p as *mut bindings::dma_resv, GFP_KERNEL).is_err() {
            return (0, 0);
        }
    }
    // SAFETY: `raw` holds initialised reservations that live as long as `shared`; the C loop
    // locks and unlocks them on this task.
    unsafe {
        dl_bench_c_contend(
            raw.as_mut_ptr(),
            raw.len() as u32,
            CONTENTION_NS,
            seed,
            &mut acquisitions,
            &mut backoffs,
        )
    };
    (acquisitions, backoffs)
}

/// Two work items lock random subsets of 64 objects for a fixed time; returns acquisitions per
/// second and backoffs, summed over both.
fn contention(rust: bool) -> Result<(u64, u64)> {
    let objs = new_objects(CONTENTION_OBJECTS)?;
    let mut raw = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
    for o in objs.iter() {
        raw.push(o.as_raw() as usize, GFP_KERNEL)?;
    }
    let shared = Arc::pin_init(
        pin_init!(Contention {
            objs,
            raw,
            rust,
            acquisitions: Atomic::new(0),
            backoffs: Atomic::new(0),
            first_done <- Completion::new(),
            second_done <- Completion::new(),
        }),
        GFP_KERNEL,
    )?;
    for (worker, seed) in [(0u32, 0x1234_5678u32), (1, 0x9abc_def1)] {
        let s = shared.clone();
        crate::work::spawn(workqueue::system_unbound(), move || {
            let (acq, back) = if s.rust {
                contend_rust(&s, seed)
            } else {
                contend_c(&s, seed)
            };
            s.acquisitions.add(acq, Relaxed);
            s.backoffs.add(back, Relaxed);
            if worker == 0 {
                s.first_done.complete_all();
            } else {
                s.second_done.complete_all();
            }
        })?;
    }
    shared.first_done.wait_for_completion();
    shared.second_done.wait_for_completion();
    let per_s = shared.acquisitions.load(Relaxed) * 1_000_000_000 / CONTENTION_NS;
    Ok((per_s, shared.backoffs.load(Relaxed)))
}

fn bench_contention() -> Result {
    let (c_rate, c_backoffs) = contention(false)?;
    let (rust_rate, rust_backoffs) = contention(true)?;
    pr_info!(
        "result op=\"contention, 2 workers, 64 objects\" c_per_s={c_rate} rust_per_s={rust_rate} c_backoffs={c_backoffs} rust_backoffs={rust_backoffs}\n"
    );
    Ok(())
}

struct DmabufLockBench;

impl kernel::Module for DmabufLockBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = MayBlock::new()?;
        pr_info!("config lockdep={}\n", cfg!(CONFIG_LOCKDEP));
        bench_single(&task)?;
        bench_locker(&task)?;
        bench_signalling(&mut task);
        bench_contention()?;
        pr_info!("done\n");
        Ok(Self)
    }
}
