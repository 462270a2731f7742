// SPDX-License-Identifier: GPL-2.0

//! Data guarded by a reservation: [`ResvCell`], reachable only with that reservation held.
//!
//! What the dma-buf rules put "under the reservation" (an importer's mapping, an exporter's
//! placement of a buffer) is written by callbacks that the core calls with the lock held and by
//! driver code that locks it itself (R10). A `ResvCell<T>` holds such data beside the reservation
//! it belongs to and lends it only against proof that the current task holds that very
//! reservation: a [`ResvGuard`], a locker's [`HeldResv`], or the [`ResvHeld`] that the library
//! gives callbacks. The check is one pointer comparison.
//!
//! [`HeldResv`]: super::super::locker::HeldResv

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
/// task). That is sound because every library call that makes the core run such callbacks takes
/// the caller's proof mutably (`&mut impl HoldsResv`), so nothing borrowed through the caller's
/// proof (a [`ResvCell`] value) is alive while the callback's proof is.
///
/// ```ignore
/// fn invalidate(held: &mut ResvHeld<'_>, mapping: &ResvCell<Option<Mapping>>) -> Result {
///     mapping.get_mut(held)?.take();
///     Ok(())
/// }
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

/// A proof that the current task holds a given reservation: a guard, a locker's lock, or a
/// callback's [`ResvHeld`]. Sealed: only the library's proof types implement it.
pub trait HoldsResv: private::Sealed {
    /// The reservation held.
    fn held_resv(&self) -> &Resv;
}

mod private {
    pub trait Sealed {}
}

impl private::Sealed for ResvGuard<'_> {}
impl HoldsResv for ResvGuard<'_> {
    fn held_resv(&self) -> &Resv {
        self.resv()
    }
}

impl private::Sealed for ResvHeld<'_> {}
impl HoldsResv for ResvHeld<'_> {
    fn held_resv(&self) -> &Resv {
        self.resv
    }
}

impl private::Sealed for super::super::locker::HeldResv<'_, '_> {}
impl HoldsResv for super::super::locker::HeldResv<'_, '_> {
    fn held_resv(&self) -> &Resv {
        self.resv()
    }
}

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
/// (KUnit case `dmabuf_lock_resv_cell::needs_its_own_reservation`.)
///
/// ```ignore
/// let cell = ResvCell::new(&resv, 0u32);
/// let mut guard = resv.lock(&task);
/// *cell.get_mut(&mut guard)? += 1;
/// assert_eq!(*cell.get(&guard)?, 1);
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
    /// ```ignore
    /// let mapping = ResvCell::new(dmabuf.resv(), None);
    /// ```
    pub fn new(resv: &Resv, value: T) -> Self {
        Self {
            resv: core::ptr::from_ref(resv),
            value: UnsafeCell::new(value),
        }
    }

    /// Reads the value; `EINVAL` if `held` proves another reservation.
    ///
    /// ```ignore
    /// let mapped = cell.get(&guard)?.is_some();
    /// ```
    pub fn get<'a>(&'a self, held: &'a impl HoldsResv) -> Result<&'a T> {
        self.check(held)?;
        // SAFETY: The current task holds the reservation (the proof), and the returned borrow
        // shares `held`, so no `get_mut` with the same proof can run while it lives; another
        // proof of the same reservation cannot exist in the meantime (one holder).
        Ok(unsafe { &*self.value.get() })
    }

    /// Writes the value; `EINVAL` if `held` proves another reservation.
    ///
    /// ```ignore
    /// *cell.get_mut(&mut guard)? = Some(mapping);
    /// ```
    pub fn get_mut<'a>(&'a self, held: &'a mut impl HoldsResv) -> Result<&'a mut T> {
        self.check(held)?;
        // SAFETY: The current task holds the reservation (the proof), and the returned borrow
        // holds `held` mutably, so no other access through this proof runs while it lives, and
        // no other proof of the reservation exists (one holder at a time).
        Ok(unsafe { &mut *self.value.get() })
    }

    /// Returns the value without the reservation: `&mut self` is exclusive already.
    ///
    /// ```ignore
    /// let last = cell.get_mut_unlocked().take();
    /// ```
    pub fn get_mut_unlocked(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn check(&self, held: &impl HoldsResv) -> Result {
        if core::ptr::eq(self.resv, held.held_resv()) {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}
