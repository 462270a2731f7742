// SPDX-License-Identifier: GPL-2.0

//! `dmabuf_lock_reclaim_test.ko`: KUnit suite `dmabuf_lock_reclaim`, the library's `Shrinker`
//! driven by the kernel's own reclaim (R2).
//!
//! A pool of buffers, each a reservation with 64 KiB of backing memory under it (a `ResvCell`),
//! is registered as a shrinker; some buffers are busy (an unsignalled fence in their
//! reservation), one is held locked by the test, the rest are idle. Then the kernel reclaims:
//! `drop_caches` (the boot's shell writes `2` to `/proc/sys/vm/drop_caches` every 100 ms while
//! the suite runs; a kernel thread cannot open that path, its root is not the initramfs), and
//! real memory pressure (pages allocated until direct reclaim or `kswapd` has called the scan).
//! Only the idle buffers may lose their memory. It has a boot of its own (`boot:reclaim` in
//! `scripts/test`), on the lockdep kernel, because exhausting memory has no place in the shared
//! KUnit boot.

use kernel::prelude::*;

#[path = "../../rust/dmabuf_lock/mod.rs"]
pub mod dmabuf_lock;

module! {
    type: DmabufLockReclaimTest,
    name: "dmabuf_lock_reclaim_test",
    authors: ["dmabuf-lock developers"],
    description: "KUnit suite: the dmabuf-lock shrinker under real reclaim",
    license: "GPL",
}

struct DmabufLockReclaimTest;

impl kernel::Module for DmabufLockReclaimTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(Self)
    }
}

#[kunit_tests(dmabuf_lock_reclaim)]
mod tests {
    use crate::dmabuf_lock::{
        context::MayBlock,
        fence::{DriverFence, FenceTimeline},
        lockdep::ReclaimScope,
        resv::{FenceUsage, OwnedResv, ResvCell},
        shrinker::{ScanResult, Shrink, ShrinkControl, Shrinker},
    };
    use core::ptr::NonNull;
    use kernel::{
        bindings,
        prelude::*,
        sync::{
            atomic::{Atomic, Relaxed},
            Arc, Completion,
        },
        time::{delay::fsleep, Delta},
    };

    /// Pages of backing memory per buffer: the shrinker counts and frees pages.
    const BUFFER_PAGES: usize = 16;
    const BUFFERS: usize = 8;
    /// Buffers `0..BUSY` get an unsignalled fence; buffer `HELD` is locked by the test.
    const BUSY: usize = 3;
    const HELD: usize = 3;

    /// A buffer: its reservation and its backing memory, which lives under the reservation.
    struct Buffer {
        resv: Pin<KBox<OwnedResv>>,
        backing: ResvCell<Option<KVec<u8>>>,
    }

    /// What the shrinker evicts from.
    struct Pool {
        buffers: KVec<Buffer>,
        resident_pages: Atomic<usize>,
        /// Scans by reclaim proper (`PF_MEMALLOC`: direct reclaim, `kswapd`).
        reclaim_scans: Atomic<usize>,
        /// Evict only in reclaim proper, not for `drop_caches`.
        reclaim_only: bool,
        /// Scans do nothing until the case has made its buffers busy or held.
        armed: Atomic<bool>,
        /// For the case that unregisters during a scan: each scan completes the first, sleeps,
        /// evicts, then sets the second.
        slow: Option<(Arc<Completion>, Arc<Atomic<bool>>)>,
    }

    impl Pool {
        fn new(
            reclaim_only: bool,
            slow: Option<(Arc<Completion>, Arc<Atomic<bool>>)>,
        ) -> Result<Self> {
            let mut buffers = KVec::with_capacity(BUFFERS, GFP_KERNEL)?;
            for _ in 0..BUFFERS {
                let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
                let mut memory = KVec::with_capacity(BUFFER_PAGES * 4096, GFP_KERNEL)?;
                memory.resize(BUFFER_PAGES * 4096, 0x5a, GFP_KERNEL)?;
                let backing = ResvCell::new(&resv, Some(memory));
                buffers.push(Buffer { resv, backing }, GFP_KERNEL)?;
            }
            Ok(Self {
                buffers,
                resident_pages: Atomic::new(BUFFERS * BUFFER_PAGES),
                reclaim_scans: Atomic::new(0),
                reclaim_only,
                armed: Atomic::new(false),
                slow,
            })
        }

        /// Which buffers still have their memory, checked under their locks.
        fn resident(&self, task: &MayBlock) -> Result<KVec<bool>> {
            let mut out = KVec::with_capacity(BUFFERS, GFP_KERNEL)?;
            for buffer in self.buffers.iter() {
                let guard = buffer.resv.lock(task);
                out.push(buffer.backing.get(&guard)?.is_some(), GFP_KERNEL)?;
            }
            Ok(out)
        }
    }

    impl Shrink for Pool {
        fn count(&self) -> usize {
            self.resident_pages.load(Relaxed)
        }

        fn scan(&self, reclaim: &ReclaimScope<'_>, control: &mut ShrinkControl) -> ScanResult {
            if !self.armed.load(Relaxed) {
                return ScanResult::Freed(0);
            }
            // SAFETY: The current task is alive; its flags are read once.
            let flags = unsafe { (*kernel::task::Task::current_raw()).flags };
            if flags & bindings::PF_MEMALLOC != 0 {
                self.reclaim_scans.add(1, Relaxed);
            } else if self.reclaim_only {
                return ScanResult::Freed(0);
            }
            if let Some((started, _)) = &self.slow {
                started.complete_all();
                fsleep(Delta::from_millis(300));
            }
            let mut freed = 0;
            for buffer in self.buffers.iter() {
                if freed >= control.nr_to_scan() {
                    break;
                }
                let Some(mut guard) = reclaim.try_lock(&buffer.resv) else {
                    continue; // held elsewhere
                };
                if !guard.resv().test_signaled(FenceUsage::Bookkeep) {
                    continue; // busy
                }
                let Ok(slot) = buffer.backing.get_mut(&mut guard) else {
                    continue;
                };
                if let Some(memory) = slot.take() {
                    drop(memory);
                    self.resident_pages.fetch_sub(BUFFER_PAGES, Relaxed);
                    freed += BUFFER_PAGES;
                }
            }
            if let Some((_, finished)) = &self.slow {
                finished.store(true, Relaxed);
            }
            ScanResult::Freed(freed)
        }
    }

    /// Makes buffers `0..BUSY` busy: a job fence in each reservation, unsignalled.
    fn make_busy(task: &MayBlock, pool: &Pool) -> Result<KVec<DriverFence>> {
        let timeline = FenceTimeline::new();
        let mut fences = KVec::with_capacity(BUSY, GFP_KERNEL)?;
        for buffer in pool.buffers.iter().take(BUSY) {
            let fence = timeline.prepare(task)?.arm();
            let mut guard = buffer.resv.lock(task);
            guard.reserve_fences(1)?;
            guard.add_fence(fence.fence(), FenceUsage::Write)?;
            fences.push(fence, GFP_KERNEL)?;
        }
        Ok(fences)
    }

    /// Polls `done` every 20 ms for up to 10 s; returns its last answer.
    fn wait_until(done: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if done() {
                return true;
            }
            fsleep(Delta::from_millis(20));
        }
        done()
    }

    /// Whether lockdep is still on (it switches itself off after a report).
    fn lockdep_clean() -> bool {
        // SAFETY: `debug_locks` is a plain global that lockdep only ever clears.
        let on = unsafe { core::ptr::read_volatile(&raw const bindings::debug_locks) };
        on == 1
    }

    /// Pages allocated to exhaust memory; freed on drop.
    struct Hog(KVVec<NonNull<bindings::page>>);

    impl Hog {
        /// Allocates pages, without retrying hard and without the OOM killer, until `enough`
        /// says so or allocation fails. Returns how many pages it took.
        fn allocate_until(&mut self, enough: impl Fn() -> bool) -> Result<usize> {
            // `__GFP_NORETRY` is a macro over this bit that bindgen does not expand.
            let noretry = 1 << bindings::___GFP_NORETRY_BIT;
            let flags = bindings::GFP_KERNEL | noretry | bindings::__GFP_NOWARN;
            while !enough() && self.0.len() < self.0.capacity() {
                // SAFETY: Order 0; the page is freed by `drop`.
                let Some(page) = NonNull::new(unsafe { bindings::alloc_pages(flags, 0) }) else {
                    break;
                };
                self.0.push_within_capacity(page).map_err(|_| ENOMEM)?;
            }
            Ok(self.0.len())
        }
    }

    impl Drop for Hog {
        fn drop(&mut self) {
            for page in self.0.iter() {
                // SAFETY: Allocated with order 0 by `allocate_until`, freed once here.
                unsafe { bindings::__free_pages(page.as_ptr(), 0) };
            }
        }
    }

    /// Idle buffers lose their memory, busy and held ones keep it.
    fn only_idle_evicted(resident: &[bool]) -> bool {
        resident
            .iter()
            .enumerate()
            .all(|(i, &kept)| kept == (i < BUSY || i == HELD))
    }

    #[test]
    fn drop_caches_evicts_only_idle_buffers() -> Result {
        let task = MayBlock::new()?;
        let shrinker = Shrinker::register(&task, c"dmabuf_lock_test", Pool::new(false, None)?)?;
        let fences = make_busy(&task, &shrinker)?;
        let held = shrinker.buffers[HELD].resv.lock(&task);
        shrinker.armed.store(true, Relaxed);
        let kept = (BUSY + 1) * BUFFER_PAGES;
        // The boot's `drop_caches` loop runs the scan.
        assert!(wait_until(|| shrinker.count() <= kept));
        drop(held);
        assert!(only_idle_evicted(&shrinker.resident(&task)?));
        assert_eq!(shrinker.count(), kept);
        // Once their jobs are done and the lock is free, the rest goes too.
        for fence in fences {
            fence.signal(Ok(()));
        }
        assert!(wait_until(|| shrinker.count() == 0));
        assert!(shrinker.resident(&task)?.iter().all(|&kept| !kept));
        assert!(lockdep_clean());
        Ok(())
    }

    #[test]
    fn memory_pressure_evicts_only_idle_buffers() -> Result {
        let task = MayBlock::new()?;
        let shrinker = Shrinker::register(&task, c"dmabuf_lock_test", Pool::new(true, None)?)?;
        let fences = make_busy(&task, &shrinker)?;
        let held = shrinker.buffers[HELD].resv.lock(&task);
        shrinker.armed.store(true, Relaxed);
        // Room for every page of the guest; reclaim (kswapd or direct) runs long before.
        let mut hog = Hog(KVVec::with_capacity(1 << 18, GFP_KERNEL)?);
        let kept = (BUSY + 1) * BUFFER_PAGES;
        let taken = hog.allocate_until(|| shrinker.count() <= kept)?;
        let scans = shrinker.reclaim_scans.load(Relaxed);
        drop(hog);
        drop(held);
        pr_info!("memory pressure: {taken} pages allocated, {scans} scans by reclaim\n");
        assert!(scans > 0);
        assert!(only_idle_evicted(&shrinker.resident(&task)?));
        for fence in fences {
            fence.signal(Ok(()));
        }
        assert!(lockdep_clean());
        Ok(())
    }

    #[test]
    fn unregister_waits_for_a_running_scan() -> Result {
        let task = MayBlock::new()?;
        let started = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let finished = Arc::new(Atomic::new(false), GFP_KERNEL)?;
        let pool = Pool::new(false, Some((started.clone(), finished.clone())))?;
        let shrinker = Shrinker::register(&task, c"dmabuf_lock_test", pool)?;
        shrinker.armed.store(true, Relaxed);
        // The boot's `drop_caches` loop runs the scan.
        started.wait_for_completion();
        // The scan sleeps 300 ms, then evicts from the pool that the drop frees: unregistering
        // waits for it.
        drop(shrinker);
        assert!(finished.load(Relaxed));
        assert!(lockdep_clean());
        Ok(())
    }
}
