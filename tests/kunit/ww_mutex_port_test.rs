// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_ww_mutex`: upstream's ww_mutex selftest
//! (`kernel/locking/test-ww_mutex.c`, module `test-ww_mutex.ko`) ported to the library's public
//! API, as a driver author porting C code would write it (R6).
//!
//! The C selftest runs every case with a wound-wait and a wait-die class; reservations are
//! `ww_mutex`es of `reservation_ww_class`, which is wound-wait, so the port runs the wound-wait
//! half. The C module runs beside this suite in `make test` as the control
//! `control-c:test-ww_mutex` (see `Documentation/testing.md`).
//!
//! Where C stresses for 2 s of wall time, each case here does a fixed amount of work, so that a
//! slow guest (TCG, KASAN) does not change what is tested. Every case checks the same things:
//! no worker failed, a plain counter per object that only the object's lock protects lost no
//! increment (two holders at once would lose one: each increment is a load, a sleep and a
//! store), and nothing is left locked.

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_ww_mutex)]
mod tests {
    use crate::{
        common::{new_resvs, Objects},
        dmabuf_lock::{
            context::MayBlock,
            locker::{LockerFlags, ResvLocker},
            resv::Resv,
        },
    };
    use kernel::{
        prelude::*,
        sync::{
            atomic::{Atomic, Full, Relaxed},
            Arc, Completion,
        },
        time::{delay::fsleep, Delta},
    };
    use pin_init::stack_pin_init;

    /// How long a worker holds its locks (C's `dummy_load()` sleeps 1 to 2 ms; shorter here, as
    /// the fixed pass counts, not a deadline, bound the run).
    const HOLD: Delta = Delta::from_micros(200);

    /// What one worker does; the names are C's work functions.
    #[derive(Clone, Copy)]
    enum Worker {
        /// `stress_inorder_work`: locks every object, in an order of its own kept for all its
        /// passes; the locker retries in that order after a backoff.
        InOrder,
        /// `stress_reorder_work`: locks every object, in a new order on every pass, retries
        /// included.
        Reorder,
        /// `stress_one_work`: locks one object at a time, without an acquire context.
        One,
    }

    /// A small xorshift generator: each worker gets its own seed, so a run is repeatable.
    struct Rng(u32);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.0 = x;
            // A divisor the compiler sees is not zero: objtool of Linux 7.3 does not know the
            // division-by-zero panic as non-returning (README, known issues).
            x as usize % n.max(1)
        }

        /// Fisher-Yates, as C's `get_random_order()`.
        fn shuffle(&mut self, order: &mut [usize]) {
            for i in (1..order.len()).rev() {
                order.swap(i, self.below(i + 1));
            }
        }
    }

    /// The objects of one case and what its workers report.
    #[pin_data]
    struct Table {
        objs: Objects,
        /// Per object: incremented under the object's lock only, by a load and a later store.
        counts: KVec<Atomic<u32>>,
        /// Per object: how many increments were made, counted atomically.
        expected: KVec<Atomic<u32>>,
        /// Per object, for [`cycle`]: completed once the object's owner has locked it.
        ready: KVec<Pin<KBox<Completion>>>,
        passes: u32,
        backoffs: Atomic<u32>,
        failures: Atomic<u32>,
        running: Atomic<u32>,
        #[pin]
        done: Completion,
    }

    impl Table {
        fn new(n: usize, passes: u32, with_ready: bool) -> Result<Arc<Self>> {
            let mut counts = KVec::with_capacity(n, GFP_KERNEL)?;
            let mut expected = KVec::with_capacity(n, GFP_KERNEL)?;
            let mut ready = KVec::new();
            for _ in 0..n {
                counts.push(Atomic::new(0), GFP_KERNEL)?;
                expected.push(Atomic::new(0), GFP_KERNEL)?;
                if with_ready {
                    ready.push(KBox::pin_init(Completion::new(), GFP_KERNEL)?, GFP_KERNEL)?;
                }
            }
            let objs = new_resvs(n)?;
            Arc::pin_init(
                pin_init!(Self {
                    objs,
                    counts,
                    expected,
                    ready,
                    passes,
                    backoffs: Atomic::new(0),
                    failures: Atomic::new(0),
                    running: Atomic::new(1),
                    done <- Completion::new(),
                }),
                GFP_KERNEL,
            )
        }

        fn resv(&self, i: usize) -> &Resv {
            &self.objs[i]
        }

        /// Increments the counters of `held` (objects the caller has locked): loads them all,
        /// holds the locks a while, then stores. Another holder in between loses increments.
        fn increment(&self, held: &[usize], scratch: &mut KVec<u32>) -> Result {
            scratch.clear();
            for &i in held {
                scratch.push(self.counts[i].load(Relaxed), GFP_KERNEL)?;
            }
            fsleep(HOLD);
            for (&i, &seen) in held.iter().zip(scratch.iter()) {
                self.counts[i].store(seen + 1, Relaxed);
                self.expected[i].add(1, Relaxed);
            }
            Ok(())
        }

        /// Marks one worker (or the spawning test itself) finished.
        fn finish_one(&self) {
            if self.running.fetch_sub(1, Full) == 1 {
                self.done.complete_all();
            }
        }
    }

    /// What a case's workers left behind; every case asserts that it is all zero.
    struct Outcome {
        /// Workers that returned an error (or could not be spawned).
        failures: u32,
        /// Objects whose counter lost increments: two workers held its lock at once.
        torn: usize,
        /// Objects still locked after every worker finished.
        left_locked: usize,
        /// Backoffs of every locker, summed.
        backoffs: u32,
    }

    /// Runs `workers` work items on the unbound workqueue, item `k` calling `f(table, k)`, and
    /// waits for all of them. (KUnit's assertions are made by the cases themselves: a helper
    /// above the first case would get the standard `assert!`.)
    fn run(
        table: &Arc<Table>,
        workers: usize,
        f: impl Fn(&Table, usize) -> Result + Copy + Send + 'static,
    ) -> Outcome {
        for k in 0..workers {
            let t = table.clone();
            table.running.add(1, Relaxed);
            let spawned = crate::work::spawn(crate::work::system_dfl(), move || {
                if f(&t, k).is_err() {
                    t.failures.add(1, Relaxed);
                }
                t.finish_one();
            });
            if spawned.is_err() {
                table.failures.add(1, Relaxed);
                // A ring (`cycle`) cannot close without this worker: let the others through.
                if let Some(ready) = table.ready.get(k) {
                    ready.complete_all();
                }
                table.finish_one();
            }
        }
        table.finish_one();
        table.done.wait_for_completion();
        Outcome {
            failures: table.failures.load(Relaxed),
            torn: table
                .counts
                .iter()
                .zip(table.expected.iter())
                .filter(|(c, e)| c.load(Relaxed) != e.load(Relaxed))
                .count(),
            left_locked: table.objs.iter().filter(|o| o.is_locked()).count(),
            backoffs: table.backoffs.load(Relaxed),
        }
    }

    /// Worker `k` of a stress case: `t.passes` passes of `kind`, seeded with `k`.
    fn work(t: &Table, kind: Worker, k: usize) -> Result {
        let task = MayBlock::new()?;
        let mut rng = Rng(k as u32 + 1);
        let n = t.objs.len();
        let mut order = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            order.push(i, GFP_KERNEL)?;
        }
        rng.shuffle(&mut order);
        let mut scratch = KVec::with_capacity(n, GFP_KERNEL)?;
        match kind {
            Worker::InOrder => {
                let mut resvs = KVec::with_capacity(n, GFP_KERNEL)?;
                for &i in order.iter() {
                    resvs.push(t.resv(i), GFP_KERNEL)?;
                }
                for _ in 0..t.passes {
                    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
                    locker.as_mut().lock_slice(&task, &resvs)?;
                    if locker.locked().len() != n {
                        return Err(EINVAL);
                    }
                    t.increment(&order, &mut scratch)?;
                    t.backoffs.add(locker.stats().backoffs, Relaxed);
                }
            }
            Worker::Reorder => {
                for _ in 0..t.passes {
                    stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
                    locker.as_mut().lock_all(&task, |pass| {
                        rng.shuffle(&mut order);
                        for &i in order.iter() {
                            pass.lock(t.resv(i))?;
                        }
                        Ok(())
                    })?;
                    // Every object, once, in the order of the pass that succeeded.
                    let locked = locker.locked();
                    if locked.len() != n
                        || !locked
                            .iter()
                            .zip(order.iter())
                            .all(|(g, &i)| core::ptr::eq(g.resv(), t.resv(i)))
                    {
                        return Err(EINVAL);
                    }
                    t.increment(&order, &mut scratch)?;
                    t.backoffs.add(locker.stats().backoffs, Relaxed);
                }
            }
            Worker::One => {
                for _ in 0..t.passes {
                    let i = rng.below(n);
                    let guard = t.resv(i).lock(&task);
                    t.increment(&[i], &mut scratch)?;
                    drop(guard);
                }
            }
        }
        Ok(())
    }

    /// C twin: `stress(class, 16, 2 * ncpus, STRESS_INORDER)` of `test-ww_mutex`: four workers
    /// (two per CPU of the test VM) lock the same 16 objects, each in a fixed order of its own,
    /// 40 passes each; the locker backs off and retries in that order.
    #[test]
    fn stress_inorder() -> Result {
        stress_16_objects("stress_inorder", Worker::InOrder)
    }

    /// C twin: `stress(class, 16, 2 * ncpus, STRESS_REORDER)` of `test-ww_mutex`. C moves the
    /// contended lock to the head of its list after a backoff; the locker does not say which
    /// object it was (it takes that one first itself), so each pass here, retries included, asks
    /// for the 16 objects in a new random order, and `locked()` must list them in that order.
    #[test]
    fn stress_reorder() -> Result {
        stress_16_objects("stress_reorder", Worker::Reorder)
    }

    /// The body of `stress_inorder` and `stress_reorder`: four workers, 40 passes each over the
    /// same 16 objects; no worker fails, no increment is lost, nothing stays locked, and the
    /// workers did contend.
    fn stress_16_objects(name: &str, worker: Worker) -> Result {
        let table = Table::new(16, 40, false)?;
        let out = run(&table, 4, move |t, k| work(t, worker, k));
        pr_info!(
            "{name}: 4 workers x 40 passes over 16 objects, {} backoffs\n",
            out.backoffs
        );
        assert_eq!(out.failures, 0);
        assert_eq!(out.torn, 0);
        assert_eq!(out.left_locked, 0);
        assert!(out.backoffs > 0);
        assert!(table.expected.iter().all(|e| e.load(Relaxed) == 4 * 40));
        Ok(())
    }

    /// C twin: `stress_one_work` of `test-ww_mutex` (run there inside `STRESS_ALL`): four
    /// workers lock one object at a time without an acquire context. C keeps one random lock
    /// per worker among 2046; here each pass picks a new one of 4, so that workers collide.
    #[test]
    fn stress_one() -> Result {
        let table = Table::new(4, 100, false)?;
        let out = run(&table, 4, |t, k| work(t, Worker::One, k));
        let total: u32 = table.expected.iter().map(|e| e.load(Relaxed)).sum();
        pr_info!("stress_one: 4 workers x 100 single locks over 4 objects\n");
        assert_eq!(out.failures, 0);
        assert_eq!(out.torn, 0);
        assert_eq!(out.left_locked, 0);
        assert_eq!(total, 4 * 100);
        Ok(())
    }

    /// C twin: `stress(class, 2046, 3 * ncpus, STRESS_ALL)` of `test-ww_mutex`: two workers of
    /// each kind (in order, reorder, one) on a large set, 256 objects and 16 passes here, so
    /// that a pass holds many locks of one class in one context.
    #[test]
    fn stress_all() -> Result {
        const KINDS: [Worker; 3] = [Worker::InOrder, Worker::Reorder, Worker::One];
        let table = Table::new(256, 16, false)?;
        let out = run(&table, 6, |t, k| work(t, KINDS[k % 3], k));
        pr_info!(
            "stress_all: 6 workers x 16 passes over 256 objects, {} backoffs\n",
            out.backoffs
        );
        assert_eq!(out.failures, 0);
        assert_eq!(out.torn, 0);
        assert_eq!(out.left_locked, 0);
        assert!(out.backoffs > 0);
        // The 4 workers that lock every object count each one on every pass.
        assert!(table.expected.iter().all(|e| e.load(Relaxed) >= 4 * 16));
        Ok(())
    }

    /// One worker of a ring: locks its own object, waits until its neighbour holds the next one,
    /// then locks that too. Every worker then waits on the next: the locker must back off.
    fn ring_worker(t: &Table, k: usize) -> Result {
        let task = MayBlock::new()?;
        let next = if k + 1 == t.objs.len() { 0 } else { k + 1 };
        stack_pin_init!(let locker = ResvLocker::new(LockerFlags::default()));
        locker.as_mut().lock_all(&task, |pass| {
            pass.lock(t.resv(k))?;
            t.ready[k].complete_all();
            t.ready[next].wait_for_completion();
            pass.lock(t.resv(next))?;
            Ok(())
        })?;
        if locker.locked().len() != 2 {
            return Err(EINVAL);
        }
        t.backoffs.add(locker.stats().backoffs, Relaxed);
        Ok(())
    }

    /// C twin: `test_cycle(class, ncpus)` of `test-ww_mutex` (and `test_abba` with resolve, its
    /// ring of two): rings of 2 to 4 workers, each holding its own object and asking for its
    /// neighbour's, a cycle that only a backoff breaks. Every worker must end with both locks.
    #[test]
    fn cycle() -> Result {
        for n in 2..=4 {
            let table = Table::new(n, 1, true)?;
            let out = run(&table, n, ring_worker);
            pr_info!("cycle: ring of {n}, {} backoffs\n", out.backoffs);
            assert_eq!(out.failures, 0);
            assert_eq!(out.left_locked, 0);
            assert!(out.backoffs > 0);
        }
        Ok(())
    }
}
