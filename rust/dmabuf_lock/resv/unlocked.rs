// SPDX-License-Identifier: GPL-2.0

//! Reading a reservation's fences without its lock, under RCU: the unlocked iterator
//! (`dma_resv_iter_begin()` / `dma_resv_for_each_fence_unlocked()`), `dma_resv_get_fences()`
//! and `dma_resv_get_singleton()`.
//!
//! Another task may change the fence list while it is read, so what these return is a snapshot
//! that may be out of date when it arrives. The iterator starts over when the list it walks is
//! replaced, and says so on the first fence of every walk
//! ([`UnlockedFence::restarted`]): code that accumulates anything resets it there.
//!
//! Rules: R3 (none of this waits), R4 ([`Resv::get_fences`] and [`Resv::get_singleton`]
//! allocate with `GFP_KERNEL`, so they need a [`MayBlock`]).

use super::{
    super::{context::MayBlock, fence::Fence, ffi},
    FenceUsage, Resv,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{bindings, error::to_result, prelude::*, sync::aref::ARef};

impl Resv {
    /// Iterates over the fences of `usage` and the usages it includes without the lock.
    ///
    /// Each item holds its own reference on its fence. When another task replaces the fence
    /// list during the walk, the walk starts over and the next item has
    /// [`UnlockedFence::restarted`] set (the first item always has).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// let mut busy = 0;
    /// for item in resv.fences_unlocked(FenceUsage::Write) {
    ///     if item.restarted {
    ///         busy = 0;
    ///     }
    ///     busy += usize::from(!item.fence.is_signaled());
    /// }
    /// assert_eq!(busy, 1);
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fences_unlocked(&self, usage: FenceUsage) -> UnlockedFences<'_> {
        UnlockedFences {
            cursor: bindings::dma_resv_iter {
                obj: self.as_raw(),
                usage: usage.as_raw(),
                ..Default::default()
            },
            state: WalkState::NotStarted,
            _resv: PhantomData,
        }
    }

    /// Returns a snapshot of the fences of `usage` and the usages it includes, each referenced
    /// (`dma_resv_get_fences()`); `ENOMEM` if the array cannot be allocated.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// let fences = resv.get_fences(&task, FenceUsage::Read)?;
    /// assert_eq!(fences.as_slice().len(), 1); // Read includes the writer
    /// job.signal(Ok(()));
    /// for fence in fences.iter() {
    ///     assert_eq!(fence.wait(&task, true, 100), Ok(true));
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_fences(&self, _task: &MayBlock, usage: FenceUsage) -> Result<FenceSnapshot> {
        let mut len = 0u32;
        let mut array = core::ptr::null_mut();
        // SAFETY: The reservation is initialised (type invariant); the call reads it under RCU
        // and, on success, hands over an array of `len` referenced fences (NULL when empty),
        // which the snapshot owns. On failure it has put and freed everything itself.
        to_result(unsafe {
            bindings::dma_resv_get_fences(self.as_raw(), usage.as_raw(), &mut len, &mut array)
        })?;
        // INVARIANT: As the call guarantees on success.
        Ok(FenceSnapshot {
            array,
            len: len as usize,
        })
    }

    /// Returns the fences of `usage` and the usages it includes as one fence
    /// (`dma_resv_get_singleton()`): `None` if there are none, the fence itself if there is
    /// one, otherwise a new `dma_fence_array` of them all (a container fence: it cannot be added
    /// to a reservation, see [`super::ResvGuard::add_fence`]).
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// assert!(resv.get_singleton(&task, FenceUsage::Write)?.is_none()); // no fences
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// let singleton = resv.get_singleton(&task, FenceUsage::Write)?;
    /// // One fence: the fence itself, not an array of one.
    /// assert!(singleton.as_deref().is_some_and(|f| core::ptr::eq(f, job.fence())));
    /// job.signal(Ok(()));
    /// if let Some(fence) = singleton {
    ///     assert_eq!(fence.wait(&task, true, 100), Ok(true));
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_singleton(
        &self,
        _task: &MayBlock,
        usage: FenceUsage,
    ) -> Result<Option<ARef<Fence>>> {
        let mut fence = core::ptr::null_mut();
        // SAFETY: The reservation is initialised (type invariant); on success the call stores
        // NULL or a fence with a reference for the caller.
        to_result(unsafe {
            bindings::dma_resv_get_singleton(self.as_raw(), usage.as_raw(), &mut fence)
        })?;
        // SAFETY: A non-NULL fence comes with a reference, which the `ARef` takes over;
        // `Fence` is `repr(transparent)` over the `dma_fence`.
        Ok(NonNull::new(fence.cast::<Fence>()).map(|fence| unsafe { ARef::from_raw(fence) }))
    }
}

/// One fence met by [`Resv::fences_unlocked`].
pub struct UnlockedFence {
    /// The fence, referenced for as long as the item lives.
    pub fence: ARef<Fence>,
    /// How it was added (`dma_resv_iter_usage()`).
    pub usage: FenceUsage,
    /// Whether the walk (re)started with this fence (`dma_resv_iter_is_restarted()`): drop
    /// whatever was gathered from the items before it.
    pub restarted: bool,
}

enum WalkState {
    NotStarted,
    Walking,
    Done,
}

/// The unlocked iterator; see [`Resv::fences_unlocked`].
///
/// Each item takes over the reference the C cursor took on its fence and clears the cursor's
/// pointer, where C's loop would keep it until the next step and put it there. Besides saving
/// an atomic, this makes the walk end when the fence list becomes NULL under it (Linux 7.3's
/// `dma_resv_iter_walk_unlocked()` then returns without clearing the cursor's fence, so a C walk
/// yields its last fence again, forever: `dma_resv_copy_fences()` from an empty reservation
/// does that to a list that another task walks; KUnit case
/// `dmabuf_lock_resv::walk_ends_when_the_list_becomes_null`).
///
/// # Invariants
///
/// `cursor` walks a reservation that stays initialised for `'r`. Between steps `cursor.fence` is
/// NULL: each step's reference has moved into its item, so dropping the iterator (which
/// `dma_resv_iter_end()` would do by putting that fence) has nothing to put. Once `state` is
/// `Done` the cursor is not stepped again.
pub struct UnlockedFences<'r> {
    cursor: bindings::dma_resv_iter,
    state: WalkState,
    _resv: PhantomData<&'r Resv>,
}

impl Iterator for UnlockedFences<'_> {
    type Item = UnlockedFence;

    fn next(&mut self) -> Option<UnlockedFence> {
        let raw = match self.state {
            // SAFETY: The cursor was set up as `dma_resv_iter_begin()` does, for a reservation
            // that lives for `'r` (type invariant), and has not walked yet. The call takes the
            // RCU read lock itself and returns a fence with a reference in `cursor.fence`.
            WalkState::NotStarted => unsafe {
                bindings::dma_resv_iter_first_unlocked(&mut self.cursor)
            },
            // SAFETY: As above, for a walk that has not ended. The call puts `cursor.fence`, which
            // is NULL (type invariant), and returns the next fence, with a reference.
            WalkState::Walking => unsafe {
                bindings::dma_resv_iter_next_unlocked(&mut self.cursor)
            },
            WalkState::Done => return None,
        };
        // INVARIANT: The reference the cursor holds moves into the item below, or there is none.
        self.cursor.fence = core::ptr::null_mut();
        let Some(raw) = NonNull::new(raw.cast::<Fence>()) else {
            // INVARIANT: A step after the end would start a new walk if the list changed.
            self.state = WalkState::Done;
            return None;
        };
        self.state = WalkState::Walking;
        // SAFETY: The cursor took a reference on the fence for this step, and nothing else
        // owns it now (the pointer was cleared above); the `ARef` owns it from here.
        // `Fence` is `repr(transparent)` over the `dma_fence`.
        let fence = unsafe { ARef::from_raw(raw) };
        Some(UnlockedFence {
            fence,
            usage: FenceUsage::from_raw(self.cursor.fence_usage),
            restarted: self.cursor.is_restarted,
        })
    }
}

/// Fences returned by [`Resv::get_fences`], each referenced until the snapshot is dropped.
///
/// # Invariants
///
/// `array` is NULL with `len` 0, or a `kmalloc`ed array of `len` non-NULL fence pointers, each
/// with a reference that the snapshot owns.
pub struct FenceSnapshot {
    array: *mut *mut bindings::dma_fence,
    len: usize,
}

impl FenceSnapshot {
    /// Returns the fences.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// let snapshot = resv.get_fences(&task, FenceUsage::Write)?;
    /// assert_eq!(snapshot.as_slice().len(), 1);
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_slice(&self) -> &[&Fence] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `array` holds `len` non-NULL pointers to referenced fences (type invariant),
        // which stay referenced and unchanged while `self` is borrowed. `&Fence` has the layout
        // of a non-NULL `*mut dma_fence` (`Fence` is `repr(transparent)` over the `dma_fence`).
        unsafe { core::slice::from_raw_parts(self.array.cast::<&Fence>(), self.len) }
    }

    /// Iterates over the fences.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, fence::FenceTimeline, resv::{FenceUsage, OwnedResv}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let job = FenceTimeline::new().prepare(&task)?.arm();
    /// # let mut guard = resv.lock(&task);
    /// # guard.reserve_fences(1)?;
    /// # guard.add_fence(job.fence(), FenceUsage::Write)?;
    /// # drop(guard);
    /// # let snapshot = resv.get_fences(&task, FenceUsage::Write)?;
    /// for fence in snapshot.iter() {
    ///     fence.enable_signaling();
    /// }
    /// assert!(snapshot.iter().all(|fence| !fence.is_signaled()));
    /// # job.signal(Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &Fence> {
        self.as_slice().iter().copied()
    }
}

impl Drop for FenceSnapshot {
    fn drop(&mut self) {
        for i in 0..self.len {
            // SAFETY: Entry `i` is a fence pointer with a reference the snapshot owns (type
            // invariant), put once here.
            unsafe { ffi::dl_dma_fence_put(*self.array.add(i)) };
        }
        // SAFETY: `array` came from `kmalloc` (or is NULL) and nothing uses it any more.
        unsafe { bindings::kfree(self.array.cast()) };
    }
}
