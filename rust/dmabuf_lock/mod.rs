// SPDX-License-Identifier: GPL-2.0

//! dmabuf-lock: safe dma-buf locking for Rust drivers.
//!
//! The library is shared as source: every module of the project includes it with
//! `#[path = ".../rust/dmabuf_lock/mod.rs"] pub mod dmabuf_lock;` and links against the C helpers
//! exported by `dmabuf_lock.ko` (load that module first).
//!
//! | module | what it is | rules |
//! |--------|------------|-------|
//! | [`context`] | `MayBlock`: the proof that code may block, which signalling sections hold | R4 |
//! | [`signalling`] | fence-signalling critical sections, signalling work and completion interrupts with a watchdog, might-wait | R3, R4, R5, R7, R8 |
//! | [`resv`] | reservation objects, their single-object lock and fence slots | R2, R3, R7, R10 |
//! | [`fence`] | fence handle, driver fences, a driver's hardware-seqno hooks | R3, R8 |
//! | [`lockdep`] | lockdep maps, might-lock, reclaim scopes, priming a driver's lock order | R2, R9 |
//! | [`dmabuf`] | dma-buf handles, an importer's dynamic attachment, an exporter's ops and CPU fault path | R1, R3, R10 |
//! | [`locker`] | the multi-object locker (`drm_exec`), owner of acquire contexts | R2, R6, R7 |
//! | [`shrinker`] | shrinkers whose scans reach reservations only by trylock | R2 |
//! | `userptr` | user memory used by jobs, an mmu interval notifier that waits for their fences (with `CONFIG_MMU_NOTIFIER`) | R2, R3 |
//!
//! The rule ids are listed in `Documentation/rules.md`; why safe code cannot cause undefined
//! behaviour with these types, leaks included, is in `Documentation/soundness.md`.

pub mod context;
pub mod dmabuf;
pub mod fence;
pub mod lockdep;
pub mod locker;
pub mod resv;
pub mod shrinker;
pub mod signalling;
#[cfg(CONFIG_MMU_NOTIFIER)]
pub mod userptr;

mod acquire;
mod ffi;
