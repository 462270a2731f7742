// SPDX-License-Identifier: GPL-2.0

//! Data guarded by a reservation: [`ResvCell`], reachable only with that reservation held.
//!
//! What the dma-buf rules put "under the reservation" (an importer's mapping, an exporter's
//! placement of a buffer) is written by callbacks that the core calls with the lock held and by
//! driver code that locks it itself (R10). A `ResvCell<T>` holds such data beside the reservation
//! it belongs to and lends it only against proof that the current task holds that very
//! reservation: a [`ResvGuard`] or the [`ResvHeld`] that the library gives callbacks. The check
//! is one pointer comparison.

use super::{Resv, ResvGuard};
use core::cell::UnsafeCell;
use kernel::{error::code::EINVAL, prelude::*, types::NotThreadSafe};

/// Proof, given to a callback, that the core holds a reservation for the current task while
/// the callback runs (`dma_resv_assert_held()` in C).
///
/// It offers no way to lock the reservation, which is already held: a callback cannot lock it
/// again (R10; `compile-fail/exporter_callback_relocks.rs`).
///
/// # Invariants
///
/// The current task holds the lock of `resv` for `'a`.
///
/// A callback's proof is a second proof of a reservation that the calling task may already
/// prove with a guard (an exporter's `invalidate_mappings` runs importers' callbacks on its own
/// task). This rests on what C does: the core runs such a callback on a task either inside a
/// library call that borrowed that task's proof of the same reservation mutably
/// (`&mut impl HoldsResv`: nothing borrowed through it is alive then), or with a lock that C
/// code took itself, which no proof of this library's stands for (a guard is the one holder of
/// a lock taken without an acquire context; locker locks are not proofs, see [`HoldsResv`]).
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell, ResvHeld}};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// // What a callback does with its proof: reach the data, never lock.
/// fn invalidate(held: &mut ResvHeld<'_>, mapping: &ResvCell<Option<u32>>) -> Result {
///     mapping.get_mut(held)?.take();
///     Ok(())
/// }
/// // Only the library makes a `ResvHeld`; a guard proves the same thing to the cell.
/// let mapping = ResvCell::new(&resv, Some(7u32));
/// let guard = resv.lock(&task);
/// assert_eq!(*mapping.get(&guard)?, Some(7));
/// # Ok::<(), Error>(())
/// ```
pub struct ResvHeld<'a> {
    resv: &'a Resv,
    _not_send: NotThreadSafe,
}

impl<'a> ResvHeld<'a> {
    /// Wraps a reservation that C code holds for the current task.
    ///
    /// # Safety
    ///
    /// The current task holds the lock of `resv` for `'a`, and nothing in `'a` releases it.
    pub(in super::super) unsafe fn new(resv: &'a Resv) -> Self {
        // INVARIANT: As the caller guarantees.
        Self {
            resv,
            _not_send: NotThreadSafe,
        }
    }
}

/// A proof that the current task holds a given reservation, on its own: a guard of one lock, or
/// a callback's [`ResvHeld`]. Sealed: only the library's proof types implement it, and which
/// reservation they prove is private to the library (a public accessor would hand a callback
/// a `&Resv` to lock again).
///
/// A locker's locks ([`HeldResv`]) are not proofs here: several of them are alive at once and
/// the locker's acquire context is one that C code may lock with too (`dma_resv_locking_ctx()`),
/// so a callback that C runs inside one library call could reach a reservation whose cell value
/// another of them lends; unlock with the locker and lock the one reservation instead.
///
/// [`HeldResv`]: super::super::locker::HeldResv
pub trait HoldsResv: private::Sealed {}

pub(in super::super) use private::Sealed as HoldsResvPrivate;

mod private {
    use super::Resv;

    /// The library's side of [`super::HoldsResv`].
    pub trait Sealed {
        /// The reservation held.
        fn held_resv(&self) -> &Resv;
    }
}

impl private::Sealed for ResvGuard<'_> {
    fn held_resv(&self) -> &Resv {
        self.resv()
    }
}
impl HoldsResv for ResvGuard<'_> {}

impl private::Sealed for ResvHeld<'_> {
    fn held_resv(&self) -> &Resv {
        self.resv
    }
}
impl HoldsResv for ResvHeld<'_> {}

/// A value that may only be reached while one reservation is held (R10).
///
/// Reading needs a shared borrow of a proof that the reservation is held, writing a mutable
/// one: since a proof is tied to the one task that holds the lock (`!Send`, `!Sync`) and a
/// reservation has one holder at a time, the borrow checker makes each access exclusive where it
/// must be. A proof of another reservation is `EINVAL`.
///
/// # Invariants
///
/// `value` is only accessed while the current task holds the lock of the reservation at
/// `resv`, or through `&mut self`.
///
/// # Examples
///
/// (More in KUnit case `dmabuf_lock_resv::cell_needs_its_own_reservation`.)
///
/// ```
/// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell}};
/// # let task = MayBlock::new()?;
/// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
/// let cell = ResvCell::new(&resv, 0u32);
/// let mut guard = resv.lock(&task);
/// *cell.get_mut(&mut guard)? += 1;
/// assert_eq!(*cell.get(&guard)?, 1);
/// # Ok::<(), Error>(())
/// ```
pub struct ResvCell<T> {
    resv: *const Resv,
    value: UnsafeCell<T>,
}

// SAFETY: The cell only hands out its value to the task holding the reservation (type
// invariant), one task at a time, so it may be shared between tasks when `T` may be sent
// between them (the holder changes).
unsafe impl<T: Send> Sync for ResvCell<T> {}

// SAFETY: Sending the cell sends the value; the reservation pointer is only compared.
unsafe impl<T: Send> Send for ResvCell<T> {}

impl<T> ResvCell<T> {
    /// Makes a cell guarded by `resv`. The cell does not borrow `resv`: it only remembers which
    /// reservation guards it.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let mapping: ResvCell<Option<u32>> = ResvCell::new(&resv, None);
    /// assert_eq!(*mapping.get(&resv.lock(&task))?, None);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(resv: &Resv, value: T) -> Self {
        Self {
            resv: core::ptr::from_ref(resv),
            value: UnsafeCell::new(value),
        }
    }

    /// Reads the value; `EINVAL` if `held` proves another reservation.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// # let other = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let cell = ResvCell::new(&resv, Some(1u32));
    /// let mapped = cell.get(&resv.lock(&task))?.is_some();
    /// assert!(mapped);
    /// assert_eq!(cell.get(&other.lock(&task)).err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get<'a>(&'a self, held: &'a impl HoldsResv) -> Result<&'a T> {
        self.check(held)?;
        // SAFETY: The current task holds the reservation (the proof), and the returned borrow
        // shares `held`, so no `get_mut` with the same proof runs while it lives. A second proof
        // of the reservation exists only in a callback that C runs inside a library call that
        // borrowed `held` mutably (see `ResvHeld`), which cannot happen while this borrow lives.
        Ok(unsafe { &*self.value.get() })
    }

    /// Writes the value; `EINVAL` if `held` proves another reservation.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let cell = ResvCell::new(&resv, None);
    /// let mut guard = resv.lock(&task);
    /// *cell.get_mut(&mut guard)? = Some(3u32);
    /// assert_eq!(*cell.get(&guard)?, Some(3));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_mut<'a>(&'a self, held: &'a mut impl HoldsResv) -> Result<&'a mut T> {
        self.check(held)?;
        // SAFETY: The current task holds the reservation (the proof), and the returned borrow
        // holds `held` mutably, so no other access through this proof runs while it lives; a
        // second proof exists only in a callback run inside a library call that borrows `held`
        // mutably (see `ResvHeld`), which cannot happen while this borrow lives.
        Ok(unsafe { &mut *self.value.get() })
    }

    /// Returns the value without the reservation: `&mut self` is exclusive already.
    ///
    /// ```
    /// # use dmabuf_lock::{context::MayBlock, resv::{OwnedResv, ResvCell}};
    /// # let task = MayBlock::new()?;
    /// # let resv = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
    /// let mut cell = ResvCell::new(&resv, Some(5u32));
    /// let last = cell.get_mut_unlocked().take();
    /// assert_eq!(last, Some(5));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_mut_unlocked(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn check(&self, held: &impl HoldsResv) -> Result {
        if core::ptr::eq(self.resv, private::Sealed::held_resv(held)) {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}
