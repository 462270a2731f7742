// SPDX-License-Identifier: GPL-2.0

//! A list of an exporter's live buffers that does not keep them alive: what its shrinker walks
//! to evict buffers under memory pressure (R2), as DRM's `drm_gem_lru` is for GEM objects.
//!
//! A buffer exported with [`ExportedBuf::new_listed`] is on its [`ExportList`] from its export
//! until its release, which takes it off (under the list's lock) before the dma-buf is freed.
//! The list takes no reference: [`ExportList::visit`] hands each buffer to the driver under the
//! list's lock, which its release waits for, and the driver works on it there, reaching its
//! reservation only with [`ReclaimScope::try_lock`] in a scan (R2).
//!
//! Why under the lock, and not with a reference taken there and the lock dropped: the only
//! reference to a dma-buf is one on its file, and a dma-buf may outlive its file (the core
//! releases it when the file's dentry goes, which a lookup through `/proc` can hold for a
//! moment after the file is freed), so a get-unless-zero on `dmabuf->file` could touch a freed
//! file. Nothing is allocated under the lock (reclaim takes it; lockdep would report an
//! allocation under it), and a buffer's user mappings are reached through its inode, held by
//! the list from export to release, never through its file.
//!
//! [`ReclaimScope::try_lock`]: super::super::super::lockdep::ReclaimScope::try_lock
//! [`ExportedBuf::new_listed`]: super::ExportedBuf::new_listed

use super::super::super::resv::{HoldsResv, HoldsResvPrivate, Resv};
use super::{Exported, Exporter};
use core::{cell::UnsafeCell, marker::PhantomData, ops::ControlFlow, ptr};
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// The ends of a list and its length; only reached with the list's mutex held.
struct Ends {
    first: *const ListLink,
    last: *const ListLink,
    len: usize,
}

// SAFETY: The pointers are only followed with the list's mutex held, by whichever task holds
// it; what they point to is `Sync` (`ListLink`).
unsafe impl Send for Ends {}

/// The shared part of an [`ExportList`]: every listed buffer keeps it alive, so a release can
/// always take its buffer off, even after the driver dropped its list.
#[pin_data]
pub(super) struct ListInner {
    #[pin]
    ends: Mutex<Ends>,
}

/// The link of one buffer, inside the buffer's `Exported`.
///
/// # Invariants
///
/// `prev`, `next` and `linked` are only accessed with the mutex of `list` held (or through
/// `&mut self`). While `linked`, the link is on that list, `exported` points to the
/// `Exported` that holds the link, live and not moving, and `inode` to the inode of its
/// dma-buf's file, on which the link holds a reference (dropped with the link).
pub(super) struct ListLink {
    list: Option<Arc<ListInner>>,
    linked: UnsafeCell<bool>,
    prev: UnsafeCell<*const ListLink>,
    next: UnsafeCell<*const ListLink>,
    exported: UnsafeCell<*const ()>,
    inode: UnsafeCell<*mut bindings::inode>,
}

// SAFETY: The cells are only accessed under the list's mutex (type invariant); the inode
// reference may be dropped from any task.
unsafe impl Send for ListLink {}

// SAFETY: As above: shared access goes through the list's mutex.
unsafe impl Sync for ListLink {}

impl ListLink {
    /// A link that will be put on `list` by [`ListLink::push`], or none.
    pub(super) fn new(list: Option<Arc<ListInner>>) -> Self {
        Self {
            list,
            linked: UnsafeCell::new(false),
            prev: UnsafeCell::new(ptr::null()),
            next: UnsafeCell::new(ptr::null()),
            exported: UnsafeCell::new(ptr::null()),
            inode: UnsafeCell::new(ptr::null_mut()),
        }
    }

    /// Puts the link at the end of its list, with the buffer's `exported` value and the
    /// dma-buf whose file's inode it holds; does nothing for a link made without a list.
    ///
    /// # Safety
    ///
    /// `self` is the link of the `Exported` at `exported`, which stays where it is until
    /// [`ListLink::unlink`] has run; `dmabuf` is that buffer's live dma-buf, whose file is live.
    /// Called at most once.
    pub(super) unsafe fn push(&self, exported: *const (), dmabuf: *mut bindings::dma_buf) {
        let Some(list) = &self.list else {
            return;
        };
        // SAFETY: The caller's contract: the dma-buf and its file are live, and a file's inode
        // lives as long as the file; the reference taken here is the link's.
        let inode = unsafe {
            let inode = (*(*dmabuf).file).f_inode;
            bindings::ihold(inode);
            inode
        };
        let mut ends = list.ends.lock();
        // SAFETY: The list's mutex is held (type invariant), and the link is not on the list
        // yet (called once); the last link, if any, is live (it is on the list).
        unsafe {
            *self.exported.get() = exported;
            *self.inode.get() = inode;
            *self.prev.get() = ends.last;
            *self.next.get() = ptr::null();
            *self.linked.get() = true;
            match ends.last.as_ref() {
                Some(last) => *last.next.get() = self,
                None => ends.first = self,
            }
        }
        ends.last = self;
        ends.len += 1;
    }

    /// Takes the link off its list, if it is on one: the buffer's release calls this before the
    /// dma-buf and the `Exported` holding the link go.
    pub(super) fn unlink(&self) {
        let Some(list) = &self.list else {
            return;
        };
        let mut ends = list.ends.lock();
        // SAFETY: The list's mutex is held.
        if unsafe { *self.linked.get() } {
            // SAFETY: As above; `self` is on the list.
            unsafe { remove(&mut ends, self) };
        }
    }
}

impl Drop for ListLink {
    fn drop(&mut self) {
        let inode = *self.inode.get_mut();
        if !inode.is_null() {
            // SAFETY: The link holds this reference (type invariant), dropped once, here.
            unsafe { bindings::iput(inode) };
        }
    }
}

/// Takes `link` off the list of `ends`.
///
/// # Safety
///
/// The list's mutex is held (`ends` is its data), and `link` is on that list.
unsafe fn remove(ends: &mut Ends, link: &ListLink) {
    // SAFETY: The caller's contract: under the mutex, the link and its neighbours are live.
    unsafe {
        let prev = *link.prev.get();
        let next = *link.next.get();
        match prev.as_ref() {
            Some(prev) => *prev.next.get() = next,
            None => ends.first = next,
        }
        match next.as_ref() {
            Some(next) => *next.prev.get() = prev,
            None => ends.last = prev,
        }
        *link.prev.get() = ptr::null();
        *link.next.get() = ptr::null();
        *link.linked.get() = false;
    }
    ends.len -= 1;
}

/// The live buffers of exporter `T` exported with [`ExportedBuf::new_listed`], oldest first,
/// for a shrinker to walk ([`ExportList::visit`]) without keeping them alive (R2).
///
/// The list is shared with its buffers: dropping it while some are alive is fine (they take
/// themselves off at release).
///
/// [`ExportedBuf::new_listed`]: super::ExportedBuf::new_listed
///
/// # Examples
///
/// ```
/// use core::ops::ControlFlow;
/// use dmabuf_lock::{
///     context::MayBlock,
///     dmabuf::{ExportList, ExportOps, ExportedAttachment, ExportedBuf, Exporter, PageMapping},
///     resv::ResvHeld,
/// };
/// use kernel::{dma::DataDirection, page::PAGE_SIZE};
///
/// struct Bo(u32);
/// static BO_OPS: ExportOps<Bo> = ExportOps::new();
/// #[vtable]
/// impl Exporter for Bo {
///     const OPS: &'static ExportOps<Self> = &BO_OPS;
///     fn map<'a>(
///         &'a self,
///         _held: &mut ResvHeld<'_>,
///         _attachment: &ExportedAttachment,
///         _dir: DataDirection,
///     ) -> Result<PageMapping<'a>> {
///         Err(ENOMEM)
///     }
/// }
///
/// let mut task = MayBlock::new()?;
/// let list = ExportList::<Bo>::new()?;
/// let first = ExportedBuf::new_listed(&task, PAGE_SIZE, &list, |_| Ok(Bo(1)))?;
/// let second = ExportedBuf::new_listed(&task, PAGE_SIZE, &list, |_| Ok(Bo(2)))?;
/// assert_eq!(list.len(), 2);
/// // What a shrinker's scan does: visit the buffers, trylock each (R2).
/// let reclaim = task.reclaim_scope();
/// let mut seen = KVec::new();
/// list.visit(2, |buf| {
///     if let Some(_guard) = reclaim.try_lock(buf.resv()) {
///         let _ = seen.push(buf.data().0, GFP_NOWAIT);
///     }
///     ControlFlow::Continue(())
/// });
/// drop(reclaim);
/// assert_eq!(&seen[..], &[1, 2]);
/// drop(list); // the buffers keep what they need of the list
/// drop(first); // released (when its file goes): off the list
/// drop(second);
/// # Ok::<(), Error>(())
/// ```
pub struct ExportList<T: Exporter> {
    pub(super) inner: Arc<ListInner>,
    _buffers: PhantomData<fn() -> T>,
}

impl<T: Exporter> ExportList<T> {
    /// Makes an empty list.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportList, Exporter};
    /// fn empty<T: Exporter>() -> Result<bool> {
    ///     Ok(ExportList::<T>::new()?.is_empty())
    /// }
    /// ```
    pub fn new() -> Result<Self> {
        let inner = Arc::pin_init(
            pin_init!(ListInner {
                ends <- new_mutex!(
                    Ends {
                        first: ptr::null(),
                        last: ptr::null(),
                        len: 0,
                    },
                    "dmabuf_lock_export_list"
                ),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self {
            inner,
            _buffers: PhantomData,
        })
    }

    /// Returns how many buffers are on the list now.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportList, Exporter};
    /// fn listed<T: Exporter>(list: &ExportList<T>) -> usize {
    ///     list.len()
    /// }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.ends.lock().len
    }

    /// Returns whether the list is empty now.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{ExportList, Exporter};
    /// fn none<T: Exporter>(list: &ExportList<T>) -> bool {
    ///     list.is_empty()
    /// }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands up to `max` buffers to `f`, oldest first, each moved to the end of the list as it
    /// is visited (so the next walk starts where this one stopped), until `f` breaks.
    ///
    /// `f` runs with the list's mutex held, which the buffer's release waits for: the buffer
    /// stays alive during the call without a reference. So `f` must not allocate (reclaim takes
    /// this mutex) nor export into this list (which takes it again), and in a shrinker's scan it
    /// reaches the buffer's reservation only through
    /// [`ReclaimScope::try_lock`](super::super::super::lockdep::ReclaimScope::try_lock) (R2).
    /// Lockdep reports either breach; neither is undefined behaviour. (Dropping the last
    /// reference to a dma-buf defers its release to a work item or the task's return to user
    /// space, so it does not release a buffer inside `f`.)
    ///
    /// ```
    /// # use core::ops::ControlFlow;
    /// # use dmabuf_lock::dmabuf::{ExportList, Exporter};
    /// fn count<T: Exporter>(list: &ExportList<T>) -> usize {
    ///     let mut n = 0;
    ///     list.visit(usize::MAX, |_buf| {
    ///         n += 1;
    ///         ControlFlow::Continue(())
    ///     });
    ///     n
    /// }
    /// ```
    pub fn visit(&self, max: usize, mut f: impl FnMut(&Listed<'_, T>) -> ControlFlow<()>) {
        let mut ends = self.inner.ends.lock();
        for _ in 0..max.min(ends.len) {
            // SAFETY: The mutex is held; the first link, when there is one, is on the list and
            // live (its release waits for the mutex to take it off).
            let Some(link) = (unsafe { ends.first.as_ref() }) else {
                break;
            };
            // SAFETY: As above; moved to the end.
            unsafe {
                remove(&mut ends, link);
                *link.prev.get() = ends.last;
                *link.linked.get() = true;
                match ends.last.as_ref() {
                    Some(last) => *last.next.get() = link,
                    None => ends.first = link,
                }
            }
            ends.last = link;
            ends.len += 1;
            // SAFETY: The link is on this list of `T`'s buffers, so `exported` is the live
            // `Exported<T>` holding it (type invariant of `ListLink`; only
            // `ExportedBuf::<T>::new_listed` puts links on an `ExportList<T>`), which its
            // release cannot free while the mutex is held.
            let exported = unsafe { &*(*link.exported.get()).cast::<Exported<T>>() };
            let listed = Listed {
                exported,
                link,
                _list_locked: PhantomData,
            };
            if f(&listed).is_break() {
                break;
            }
        }
    }
}

/// A buffer on an [`ExportList`], as [`ExportList::visit`] hands it out: alive while the visit
/// holds the list's lock, without a reference to its dma-buf.
///
/// ```
/// # use core::ops::ControlFlow;
/// # use dmabuf_lock::dmabuf::{ExportList, Exporter, Listed};
/// fn mapped_by_processes<T: Exporter>(list: &ExportList<T>) -> usize {
///     let mut n = 0;
///     list.visit(usize::MAX, |buf: &Listed<'_, T>| {
///         n += usize::from(buf.is_user_mapped());
///         ControlFlow::Continue(())
///     });
///     n
/// }
/// ```
///
/// # Invariants
///
/// `link` is on its list, whose mutex is held during `'a`, and belongs to `exported`.
pub struct Listed<'a, T: Exporter> {
    exported: &'a Exported<T>,
    link: &'a ListLink,
    _list_locked: PhantomData<&'a mut Ends>,
}

impl<T: Exporter> Listed<'_, T> {
    /// Returns the driver's value.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{Exporter, Listed};
    /// fn value<'a, T: Exporter>(buf: &'a Listed<'_, T>) -> &'a T {
    ///     buf.data()
    /// }
    /// ```
    pub fn data(&self) -> &T {
        &self.exported.data
    }

    /// Returns the buffer's reservation: in a shrinker's scan, lock it only with
    /// [`ReclaimScope::try_lock`](super::super::super::lockdep::ReclaimScope::try_lock) (R2).
    ///
    /// ```
    /// # use dmabuf_lock::{dmabuf::{Exporter, Listed}, lockdep::ReclaimScope};
    /// fn idle<T: Exporter>(reclaim: &ReclaimScope<'_>, buf: &Listed<'_, T>) -> bool {
    ///     reclaim.try_lock(buf.resv()).is_some()
    /// }
    /// ```
    pub fn resv(&self) -> &Resv {
        &self.exported.resv
    }

    /// Returns whether a process has the buffer mapped now (`mapping_mapped()` of its file's
    /// mapping). A hint: a process may map it right after.
    ///
    /// ```
    /// # use dmabuf_lock::dmabuf::{Exporter, Listed};
    /// fn in_use<T: Exporter>(buf: &Listed<'_, T>) -> bool {
    ///     buf.is_user_mapped()
    /// }
    /// ```
    pub fn is_user_mapped(&self) -> bool {
        // SAFETY: The link holds a reference on the inode while on the list (type invariants);
        // the root of the mapping's tree of vmas is read without its lock, as
        // `mapping_mapped()` does.
        unsafe {
            let mapping = (*(*self.link.inode.get())).i_mapping;
            !ptr::read_volatile(ptr::addr_of!((*mapping).i_mmap.rb_root.rb_node)).is_null()
        }
    }

    /// Removes every page that processes have mapped of the buffer (`unmap_mapping_range()`):
    /// their next access faults. Called with the buffer's reservation held (`held` proves it;
    /// `EINVAL` for a proof of another reservation), before the exporter evicts or moves the
    /// pages, so that no process keeps the old ones.
    ///
    /// ```
    /// # use dmabuf_lock::{dmabuf::{Exporter, Listed}, lockdep::ReclaimScope};
    /// fn unmap<T: Exporter>(reclaim: &ReclaimScope<'_>, buf: &Listed<'_, T>) -> Result {
    ///     let mut guard = reclaim.try_lock(buf.resv()).ok_or(EBUSY)?;
    ///     buf.zap_user_mappings(&mut guard)
    /// }
    /// ```
    pub fn zap_user_mappings(&self, held: &mut impl HoldsResv) -> Result {
        if !ptr::eq(HoldsResvPrivate::held_resv(held), self.resv()) {
            return Err(EINVAL);
        }
        // SAFETY: The link holds a reference on the inode while on the list (type invariants);
        // `unmap_mapping_range()` takes the mapping's lock itself. A length of 0 is "to the
        // end", and 1 says to remove private copies too.
        unsafe {
            let mapping = (*(*self.link.inode.get())).i_mapping;
            bindings::unmap_mapping_range(mapping, 0, 0, 1);
        }
        Ok(())
    }
}
