//! expect-error: E0624
//!
//! Soundness: the library is compiled into each driver's crate, so its internals must be private
//! to the library module, not `pub(crate)`. The trylock without a `MayBlock` proof is one of
//! them (reclaim scopes reach it, R2); a driver cannot call it.

use crate::dmabuf_lock::resv::Resv;

/// Exercises the case described at the top of this file.
pub fn snippet(resv: &Resv) -> bool {
    resv.try_lock_nosleep().is_some()
}
