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
    str::CString,
    sync::{
        atomic::{Atomic, Full, Relaxed},
        Arc, Completion, Mutex,
    },
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
    params: {
        check_only: bool {
            default: false,
            description: "Only check the acquire context against C's, then load without measuring",
        },
        smoke: bool {
            default: false,
            description: "Time each loop once with a twentieth of its iterations (contention runs in full): the code runs, the figures mean nothing",
        },
    },
}

// The pointee structs come from bindgen, which emits some kernel types empty; see the same
// allowance in `rust/dmabuf_lock/ffi.rs`.
#[allow(improper_ctypes)]
extern "C" {
    fn dl_bench_c_lock_unlock(obj: *mut bindings::dma_resv, iters: u32) -> u64;
    fn dl_bench_c_lock_all(objs: *mut *mut bindings::dma_resv, n: u32, iters: u32) -> u64;
    fn dl_bench_c_lock_all_via_helpers(
        objs: *mut *mut bindings::dma_resv,
        n: u32,
        iters: u32,
    ) -> u64;
    fn dl_bench_c_signalling(iters: u32) -> u64;
    fn dl_bench_c_contend(
        objs: *mut *mut bindings::dma_resv,
        n: u32,
        rounds: u32,
        seed: u32,
        backoffs: *mut u64,
    );
    fn dl_bench_c_check_ctx(
        obj: *mut bindings::dma_resv,
        held: u32,
        stamp: *mut kernel::ffi::c_ulong,
    ) -> i32;
    fn dl_bench_online_cpus() -> u32;
}

/// The opaque set of GEM objects that `c_drm_exec.c` builds over the benchmark's reservations.
#[cfg(CONFIG_DRM_EXEC)]
#[repr(C)]
struct RawGemSet {
    _opaque: [u8; 0],
}

#[cfg(CONFIG_DRM_EXEC)]
#[allow(improper_ctypes)]
extern "C" {
    fn dl_bench_gem_set_new(resvs: *mut *mut bindings::dma_resv, count: u32) -> *mut RawGemSet;
    fn dl_bench_gem_set_free(set: *mut RawGemSet);
    fn dl_bench_exec_lock_all(set: *mut RawGemSet, n: u32, iters: u32) -> u64;
    fn dl_bench_exec_contend(set: *mut RawGemSet, rounds: u32, seed: u32, backoffs: *mut u64);
}

/// GEM objects sharing the reservations of a set of [`OwnedResv`], for the `drm_exec` baseline;
/// freed on drop. Without `CONFIG_DRM_EXEC` there is none.
struct GemSet {
    #[cfg(CONFIG_DRM_EXEC)]
    raw: core::ptr::NonNull<RawGemSet>,
}

// SAFETY: The set is only read after creation (its objects are locked through their
// reservations, which are themselves shareable); `c_drm_exec.c` keeps no per-thread state.
unsafe impl Send for GemSet {}
// SAFETY: As above: shared use only locks the objects' reservations.
unsafe impl Sync for GemSet {}

impl GemSet {
    /// Returns GEM objects for `raw`, in its order, or `None` where the kernel has no drm_exec
    /// (or the allocation failed, which the table then shows as a missing column).
    #[allow(unused_variables)]
    fn new(raw: &mut [*mut bindings::dma_resv]) -> Option<Self> {
        #[cfg(CONFIG_DRM_EXEC)]
        {
            // SAFETY: `raw` holds initialised reservations, which outlive the set: every caller
            // drops the set before the objects it was made from.
            let p = unsafe { dl_bench_gem_set_new(raw.as_mut_ptr(), raw.len() as u32) };
            core::ptr::NonNull::new(p).map(|raw| Self { raw })
        }
        #[cfg(not(CONFIG_DRM_EXEC))]
        None
    }

    #[cfg(CONFIG_DRM_EXEC)]
    fn lock_all(&self, n: u32, iters: u32) -> u64 {
        // SAFETY: The set is valid until dropped; its first `n` objects are locked by this task.
        unsafe { dl_bench_exec_lock_all(self.raw.as_ptr(), n, iters) }
    }

    #[cfg(not(CONFIG_DRM_EXEC))]
    fn lock_all(&self, _n: u32, _iters: u32) -> u64 {
        0
    }

    #[cfg(CONFIG_DRM_EXEC)]
    fn contend(&self, rounds: u32, seed: u32) -> u64 {
        let mut backoffs = 0;
        // SAFETY: The set is valid until dropped; drm_exec serialises the workers.
        unsafe { dl_bench_exec_contend(self.raw.as_ptr(), rounds, seed, &mut backoffs) };
        backoffs
    }

    #[cfg(not(CONFIG_DRM_EXEC))]
    fn contend(&self, _rounds: u32, _seed: u32) -> u64 {
        0
    }
}

impl Drop for GemSet {
    fn drop(&mut self) {
        #[cfg(CONFIG_DRM_EXEC)]
        {
            // SAFETY: The set came from `dl_bench_gem_set_new` and nothing holds its objects.
            unsafe { dl_bench_gem_set_free(self.raw.as_ptr()) };
        }
    }
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

/// Probe for `scripts/zero-cost helpers`: one reservation locked and unlocked, which must reach
/// no C helper of the project.
#[allow(clippy::no_mangle_with_rust_abi)]
#[no_mangle]
#[inline(never)]
pub fn dmabuf_lock_bench_probe_lock(task: &MayBlock, resv: &Resv) {
    drop(resv.lock(task));
}

/// Probe for `scripts/zero-cost helpers`: an acquire context begun and ended (a locker made and
/// dropped, which initialises and finalises its context), which must reach no C helper of the
/// project.
#[allow(clippy::no_mangle_with_rust_abi)]
#[no_mangle]
#[inline(never)]
pub fn dmabuf_lock_bench_probe_acquire() {
    // Dropped at the end of the scope.
    stack_pin_init!(let _locker = ResvLocker::new(LockerFlags::default()));
}

/// Probe for `scripts/zero-cost helpers`: one round of the locker (a new acquire context, every
/// object locked, the context marked done).
#[allow(clippy::no_mangle_with_rust_abi)]
#[no_mangle]
#[inline(never)]
pub fn dmabuf_lock_bench_probe_locker<'o>(
    mut locker: Pin<&mut ResvLocker<'o>>,
    task: &MayBlock,
    objs: &[&'o Resv],
) -> Result {
    locker.as_mut().reset();
    locker.as_mut().lock_slice(task, objs)
}

/// Repetitions of each timed loop; the table shows the best and the spread. The lockdep kernel,
/// whose figures carry no goal, runs fewer.
const REPS: usize = if cfg!(CONFIG_LOCKDEP) { 3 } else { 7 };
/// The locker's rounds, by object count. A round with no objects measures what a round costs
/// beyond its locks: for C a context begun, marked done and finalised; for the locker a reset and
/// a pass (Documentation/benchmarks.md reads the N=1 gap against it).
const LOCKER_SIZES: [(u32, &str); 6] = [
    (0, "a round, no objects"),
    (1, "lock all, N=1"),
    (4, "lock all, N=4"),
    (16, "lock all, N=16"),
    (64, "lock all, N=64"),
    (256, "lock all, N=256"),
];
const CONTENTION_OBJECTS: usize = 64;
/// Rounds (one subset locked and unlocked) per worker in each contention run: fixed work. Under
/// QEMU TCG a round takes about a microsecond, natively (User-Mode Linux) a tenth of that, with
/// lockdep a hundred times more.
const CONTENTION_ROUNDS: u32 = if cfg!(CONFIG_LOCKDEP) {
    2_000
} else if cfg!(CONFIG_UML) {
    100_000
} else {
    10_000
};
/// Contention runs per contender and worker count; the table shows the median and the spread.
const CONTENTION_REPS: usize = 5;
const CONTENTION_WORKERS: [u32; 3] = [2, 4, 8];
const SEEDS: [u32; 8] = [
    0x1234_5678,
    0x9abc_def1,
    0x0f1e_2d3c,
    0x4b5a_6978,
    0x8796_a5b4,
    0xc3d2_e1f0,
    0x1357_9bdf,
    0x2468_ace1,
];

/// `work` iterations of a timed loop, or a twentieth of them (at least one) when loaded with
/// `smoke=1`: `make test` loads the benchmark so on the lockdep kernel, where it checks the
/// benchmark's code (its locking under lockdep, its workers beside the other modules), not its
/// figures. The contention runs keep their rounds, so that their backoffs happen under lockdep.
fn scaled(work: u32) -> u32 {
    if module_parameters::smoke.value() {
        (work / 20).max(1)
    } else {
        work
    }
}

/// Repetitions of each timed loop: `REPS`, or one when loaded with `smoke=1`.
fn reps() -> usize {
    if module_parameters::smoke.value() {
        1
    } else {
        REPS
    }
}

fn now_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions.
    let t = unsafe { bindings::ktime_get() };
    u64::try_from(t).unwrap_or(0)
}

/// The best and the worst of a contender's repetitions, in hundredths of a nanosecond per op.
#[derive(Clone, Copy)]
struct Spread {
    best: u64,
    worst: u64,
}

/// Runs each contender in turn, [`reps()`] rounds of them (C loop, drm_exec, Rust, C loop, ...);
/// each returns the nanoseconds its loop of `iters` operations took. A `None` contender (no
/// drm_exec in this kernel) is skipped.
fn measure<const K: usize>(
    iters: u32,
    contenders: &mut [Option<&mut dyn FnMut() -> u64>; K],
) -> [Option<Spread>; K] {
    let mut out = [None; K];
    for _ in 0..reps() {
        for (slot, f) in out.iter_mut().zip(contenders.iter_mut()) {
            if let Some(f) = f {
                let ns = f();
                let s = slot.get_or_insert(Spread {
                    best: u64::MAX,
                    worst: 0,
                });
                s.best = s.best.min(ns);
                s.worst = s.worst.max(ns);
            }
        }
    }
    // Divisors are kept visibly non-zero: Linux 7.3's objtool does not know that
    // `panic_const_div_by_zero` does not return (README, known issues).
    let per_op = |ns: u64| ns * 100 / u64::from(iters.max(1));
    out.map(|s| {
        s.map(|s| Spread {
            best: per_op(s.best),
            worst: per_op(s.worst),
        })
    })
}

/// One `name=best name_max=worst` pair per contender, in ns with two decimals.
fn report(op: &str, names: &[&str], spreads: &[Option<Spread>]) {
    let mut line = KVec::<u8>::new();
    for (name, s) in names.iter().zip(spreads) {
        if let Some(s) = s {
            let field = CString::try_from_fmt(fmt!(
                " {name}_ns={}.{:02} {name}_max={}.{:02}",
                s.best / 100,
                s.best % 100,
                s.worst / 100,
                s.worst % 100
            ));
            if let Ok(field) = field {
                let _ = line.extend_from_slice(field.to_bytes(), GFP_KERNEL);
            }
        }
    }
    let fields = core::str::from_utf8(&line).unwrap_or("");
    pr_info!("result op=\"{op}\"{fields} reps={}\n", reps());
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
    let iters = scaled(200_000);
    let obj = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    // SAFETY: `obj` is an initialised reservation that nobody else uses.
    let mut c = || unsafe { dl_bench_c_lock_unlock(obj.as_raw(), iters) };
    let mut rust = || {
        let start = now_ns();
        for _ in 0..iters {
            drop(obj.lock(task));
        }
        now_ns() - start
    };
    let spreads = measure(iters, &mut [Some(&mut c), Some(&mut rust)]);
    report("lock+unlock, 1 object", &["c", "rust"], &spreads);
    Ok(())
}

fn bench_locker(task: &MayBlock) -> Result {
    let objs = new_objects(256)?;
    let mut raw = raw_pointers(&objs)?;
    let all = refs(&objs)?;
    // The same objects, in the same order, for all three: drm_exec's GEM objects share the
    // reservations the C loop and the locker lock.
    let gem = GemSet::new(&mut raw);
    let raw = raw.as_mut_ptr();
    for (n, op) in LOCKER_SIZES {
        let iters = scaled((40_000 / n.max(1)).max(100));
        let count = n as usize;
        // SAFETY: `raw` holds `n` initialised reservations that nobody else uses.
        let mut c = || unsafe { dl_bench_c_lock_all(raw, n, iters) };
        // SAFETY: As above.
        let mut via_helpers = || unsafe { dl_bench_c_lock_all_via_helpers(raw, n, iters) };
        let mut exec = || gem.as_ref().map_or(0, |g| g.lock_all(n, iters));
        let mut rust = || {
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
        };
        let exec: Option<&mut dyn FnMut() -> u64> = match gem {
            Some(_) => Some(&mut exec),
            None => None,
        };
        let spreads = measure(
            iters,
            &mut [Some(&mut c), exec, Some(&mut rust), Some(&mut via_helpers)],
        );
        report(op, &["c", "exec", "rust", "chelp"], &spreads);
    }
    drop(gem);
    Ok(())
}

fn bench_signalling(task: &mut MayBlock) {
    let iters = scaled(200_000);
    let mut rust = || {
        let start = now_ns();
        for _ in 0..iters {
            drop(task.signalling_section());
        }
        now_ns() - start
    };
    // SAFETY: Begins and ends sections on this task, as the C API requires.
    let mut c = || unsafe { dl_bench_c_signalling(iters) };
    let spreads = measure(iters, &mut [Some(&mut c), Some(&mut rust)]);
    report("signalling section enter+exit", &["c", "rust"], &spreads);
}

/// The contention workload's objects, shared by every run so that each contender locks the
/// same reservations.
struct Objects {
    objs: KVec<Pin<KBox<OwnedResv>>>,
    raw: KVec<usize>,
    gem: Option<GemSet>,
}

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    CLoop,
    DrmExec,
    Rust,
}

/// One contention run: `workers` work items each lock and unlock `CONTENTION_ROUNDS` subsets.
#[pin_data]
struct Run {
    objects: Arc<Objects>,
    contender: Contender,
    workers: u32,
    arrived: Atomic<u32>,
    /// Completed by the last worker to arrive: the others sleep until then. A spinning start
    /// kept the CPUs busy while work items still waited to be started (4 workers on 8 User-Mode
    /// Linux CPUs of a 2-core host took 327 s with it, 9.4 s with this).
    #[pin]
    started: Completion,
    /// The last worker to finish takes the end time.
    finished: Atomic<u32>,
    start_ns: Atomic<u64>,
    end_ns: Atomic<u64>,
    backoffs: Atomic<u64>,
}

fn next_subset(seed: &mut u32, n: usize) -> (usize, usize, usize) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    let s = *seed as usize;
    (1 + s % 8, (s >> 8) % n, ((s >> 16) % n) | 1)
}

fn contend_rust(objects: &Objects, mut seed: u32) -> u64 {
    let Ok(task) = MayBlock::new() else {
        return 0;
    };
    let n = objects.objs.len().max(1);
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    let first: &Resv = &objects.objs[0];
    for _ in 0..CONTENTION_ROUNDS {
        let (k, start, stride) = next_subset(&mut seed, n);
        let mut subset = [first; 8];
        for (i, slot) in subset.iter_mut().take(k).enumerate() {
            *slot = &objects.objs[(start + i * stride) % n];
        }
        // Uncontended or not, locking without interruption cannot fail but for memory.
        let _ = locker.as_mut().lock_slice(&task, &subset[..k]);
        // Unlock at once and start the next context, as the C loops do.
        locker.as_mut().reset();
    }
    u64::from(locker.stats().backoffs)
}

fn contend_c(objects: &Objects, seed: u32) -> u64 {
    let mut raw: KVec<*mut bindings::dma_resv> = KVec::new();
    for &p in objects.raw.iter() {
        if raw.push(p as *mut bindings::dma_resv, GFP_KERNEL).is_err() {
            return 0;
        }
    }
    let mut backoffs = 0;
    // SAFETY: `raw` holds initialised reservations that live as long as `objects`; the C loop
    // locks and unlocks them on this task.
    unsafe {
        dl_bench_c_contend(
            raw.as_mut_ptr(),
            raw.len() as u32,
            CONTENTION_ROUNDS,
            seed,
            &mut backoffs,
        )
    };
    backoffs
}

fn contention_worker(run: &Run, seed: u32) {
    // Start together: the last to arrive takes the time and wakes the others.
    if run.arrived.fetch_add(1, Full) + 1 == run.workers {
        run.start_ns.store(now_ns(), Relaxed);
        run.started.complete_all();
    } else {
        run.started.wait_for_completion();
    }
    let backoffs = match run.contender {
        Contender::CLoop => contend_c(&run.objects, seed),
        Contender::DrmExec => run
            .objects
            .gem
            .as_ref()
            .map_or(0, |g| g.contend(CONTENTION_ROUNDS, seed)),
        Contender::Rust => contend_rust(&run.objects, seed),
    };
    run.backoffs.add(backoffs, Relaxed);
    if run.finished.fetch_add(1, Full) + 1 == run.workers {
        run.end_ns.store(now_ns(), Relaxed);
    }
}

/// Waits until every work item queued on `system_dfl_wq` so far has returned: none of this
/// module's workers runs its code any more, so the module may fail to load or be unloaded.
fn flush_workers() {
    // SAFETY: `system_dfl_wq` is a workqueue of the kernel, never destroyed; this module's
    // init, which calls this, is not itself a work item of that queue.
    unsafe { bindings::__flush_workqueue(bindings::system_dfl_wq) };
}

/// One run with `workers` work items; returns its acquisitions per second and its backoffs.
fn contention_run(
    objects: &Arc<Objects>,
    contender: Contender,
    workers: u32,
) -> Result<(u64, u64)> {
    let run = Arc::pin_init(
        pin_init!(Run {
            objects: objects.clone(),
            contender,
            workers,
            arrived: Atomic::new(0),
            started <- Completion::new(),
            finished: Atomic::new(0),
            start_ns: Atomic::new(0),
            end_ns: Atomic::new(0),
            backoffs: Atomic::new(0),
        }),
        GFP_KERNEL,
    )?;
    let spawned = (0..workers).try_for_each(|w| {
        let r = run.clone();
        let seed = SEEDS[w as usize % SEEDS.len()];
        crate::work::spawn(crate::work::system_dfl(), move || {
            contention_worker(&r, seed)
        })
    });
    if spawned.is_err() {
        // The workers already queued wait for ones that will never start: release them.
        run.started.complete_all();
    }
    flush_workers();
    spawned?;
    let ns = (run.end_ns.load(Relaxed) - run.start_ns.load(Relaxed)).max(1);
    let total = u64::from(workers) * u64::from(CONTENTION_ROUNDS);
    Ok((total * 1_000_000_000 / ns, run.backoffs.load(Relaxed)))
}

/// Median, lowest and highest of `CONTENTION_REPS` values.
fn median_spread(mut v: [u64; CONTENTION_REPS]) -> (u64, u64, u64) {
    v.sort_unstable();
    (v[CONTENTION_REPS / 2], v[0], v[CONTENTION_REPS - 1])
}

/// Workers lock random subsets of up to 8 of 64 objects, a fixed number of rounds each, with the
/// same subsets (the same seeds) for every contender; runs alternate between the contenders.
fn bench_contention() -> Result {
    let objs = new_objects(CONTENTION_OBJECTS)?;
    let mut raw_ptrs = raw_pointers(&objs)?;
    let gem = GemSet::new(&mut raw_ptrs);
    let mut raw = KVec::with_capacity(objs.len(), GFP_KERNEL)?;
    for &p in raw_ptrs.iter() {
        raw.push(p as usize, GFP_KERNEL)?;
    }
    let objects = Arc::new(Objects { objs, raw, gem }, GFP_KERNEL)?;
    // SAFETY: No preconditions.
    let cpus = unsafe { dl_bench_online_cpus() };
    let contenders = [
        (Contender::CLoop, "c"),
        (Contender::DrmExec, "exec"),
        (Contender::Rust, "rust"),
    ];
    for workers in CONTENTION_WORKERS {
        if workers > cpus {
            pr_info!("result op=\"contention, {workers} workers\" skipped cpus={cpus}\n");
            continue;
        }
        let mut rates = [[0u64; CONTENTION_REPS]; 3];
        let mut backoffs = [[0u64; CONTENTION_REPS]; 3];
        for rep in 0..CONTENTION_REPS {
            for (i, &(contender, _)) in contenders.iter().enumerate() {
                if contender == Contender::DrmExec && objects.gem.is_none() {
                    continue;
                }
                let (rate, b) = contention_run(&objects, contender, workers)?;
                rates[i][rep] = rate;
                backoffs[i][rep] = b;
            }
        }
        let mut line = KVec::<u8>::new();
        for (i, &(contender, name)) in contenders.iter().enumerate() {
            if contender == Contender::DrmExec && objects.gem.is_none() {
                continue;
            }
            let (med, lo, hi) = median_spread(rates[i]);
            let (b_med, b_lo, b_hi) = median_spread(backoffs[i]);
            let field = CString::try_from_fmt(fmt!(
                " {name}_per_s={med} {name}_min={lo} {name}_max={hi} {name}_backoffs={b_med} {name}_backoffs_min={b_lo} {name}_backoffs_max={b_hi}"
            ))?;
            line.extend_from_slice(field.to_bytes(), GFP_KERNEL)?;
        }
        let fields = core::str::from_utf8(&line).unwrap_or("");
        pr_info!(
            "result op=\"contention, {workers} workers, {CONTENTION_OBJECTS} objects\" workers={workers} rounds={CONTENTION_ROUNDS} reps={CONTENTION_REPS}{fields}\n"
        );
    }
    Ok(())
}

/// Checks the acquire context the locker sets up against what C's `ww_acquire_init()` sets up,
/// once for a new locker and once after a reset (which finalises and initialises it again, with
/// a newer stamp); the module refuses to load on a mismatch. Where the library writes the
/// context in Rust (no lock debugging), C also sets up a context of its own and compares the two
/// byte for byte but for the stamp and the lock count (`dl_bench_c_check_ctx`).
fn check_acquire_context(task: &MayBlock) -> Result {
    let objs = new_objects(2)?;
    let (a, b): (&Resv, &Resv) = (&objs[0], &objs[1]);
    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
    let mut stamps = [0; 2];
    let mut compared = 0;
    for stamp in &mut stamps {
        locker.as_mut().reset();
        locker.as_mut().lock_slice(task, &[a, b])?;
        // SAFETY: `a` is an initialised reservation, which this task holds in the locker's
        // context, with `b`; `stamp` is valid for writes.
        let ret = unsafe { dl_bench_c_check_ctx(a.as_raw(), 2, stamp) };
        kernel::error::to_result(ret)?;
        compared += ret;
    }
    if stamps[1] <= stamps[0] {
        return Err(EINVAL);
    }
    let how = if compared == 2 { ", byte for byte" } else { "" };
    pr_info!("acquire context: as ww_acquire_init() sets it up{how}\n");
    Ok(())
}

struct DmabufLockBench;

impl kernel::Module for DmabufLockBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut task = MayBlock::new()?;
        pr_info!("config lockdep={}\n", cfg!(CONFIG_LOCKDEP));
        check_acquire_context(&task)?;
        if module_parameters::check_only.value() {
            return Ok(Self);
        }
        bench_single(&task)?;
        bench_locker(&task)?;
        bench_signalling(&mut task);
        bench_contention()?;
        pr_info!("done\n");
        Ok(Self)
    }
}
