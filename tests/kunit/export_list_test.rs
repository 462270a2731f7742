// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_export_list`: what an exporter that evicts buffers under memory
//! pressure relies on (R2): the list of its buffers that does not keep them alive, and mappings
//! that own the pages they map, so that the buffer may replace its pages while they live.

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_export_list)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            dmabuf::{
                page_is_zero, ExportList, ExportOps, ExportedAttachment, ExportedBuf, Exporter,
                PageMapping, PageVmap, SharedPages,
            },
            resv::{ResvCell, ResvHeld},
        },
    };
    use core::ops::ControlFlow;
    use kernel::{
        bindings,
        dma::DataDirection,
        page::{Page, PAGE_SIZE},
        prelude::*,
        sync::Arc,
    };

    extern "C" {
        /// Runs the file releases deferred to a work item (a kthread's last `fput()`).
        fn flush_delayed_fput();
    }

    /// A buffer whose pages it may replace under its reservation, as an eviction does.
    struct Swappable {
        id: u32,
        pages: ResvCell<SharedPages>,
    }

    static SWAPPABLE_OPS: ExportOps<Swappable> = ExportOps::new();

    #[vtable]
    impl Exporter for Swappable {
        const OPS: &'static ExportOps<Self> = &SWAPPABLE_OPS;

        fn map<'a>(
            &'a self,
            held: &mut ResvHeld<'_>,
            attachment: &ExportedAttachment,
            dir: DataDirection,
        ) -> Result<PageMapping<'a>> {
            let pages = self.pages.get(held)?.clone();
            PageMapping::new_shared(attachment.device(), pages, dir)
        }

        fn vmap<'a>(&'a self, held: &mut ResvHeld<'_>) -> Result<PageVmap<'a>> {
            PageVmap::new_shared(self.pages.get(held)?.clone())
        }
    }

    fn one_page() -> Result<SharedPages> {
        let mut pages = KVec::new();
        pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        Ok(Arc::new(pages, GFP_KERNEL)?)
    }

    fn export(list: &ExportList<Swappable>, id: u32) -> Result<ExportedBuf<Swappable>> {
        let pages = one_page()?;
        ExportedBuf::new_listed(&task()?, PAGE_SIZE, list, |resv| {
            Ok(Swappable {
                id,
                pages: ResvCell::new(resv, pages),
            })
        })
    }

    /// The ids of up to `max` buffers, in the order `visit` hands them out.
    fn visit(list: &ExportList<Swappable>, max: usize) -> Result<KVec<u32>> {
        let mut ids = KVec::with_capacity(8, GFP_KERNEL)?;
        list.visit(max, |buf| {
            // Within the capacity reserved above: no allocation under the list's lock.
            let _ = ids.push_within_capacity(buf.data().id);
            ControlFlow::Continue(())
        });
        Ok(ids)
    }

    #[test]
    fn release_takes_the_buffer_off_the_list() -> Result {
        let list = ExportList::new()?;
        let first = export(&list, 1)?;
        let second = export(&list, 2)?;
        assert_eq!(list.len(), 2);
        drop(first);
        // SAFETY: Called from a kthread, as the function expects.
        unsafe { flush_delayed_fput() };
        assert_eq!(list.len(), 1);
        assert_eq!(&visit(&list, 8)?[..], &[2]);
        // The list may go before its buffers.
        drop(list);
        drop(second);
        // SAFETY: As above.
        unsafe { flush_delayed_fput() };
        Ok(())
    }

    #[test]
    fn visit_goes_round_and_stops_on_break() -> Result {
        let list = ExportList::new()?;
        let _bufs = [export(&list, 1)?, export(&list, 2)?, export(&list, 3)?];
        // Each visited buffer moves to the end: the next walk goes on from there.
        assert_eq!(&visit(&list, 2)?[..], &[1, 2]);
        assert_eq!(&visit(&list, 2)?[..], &[3, 1]);
        // Never more than the list holds in one walk.
        assert_eq!(&visit(&list, usize::MAX)?[..], &[2, 3, 1]);
        let mut seen = 0;
        list.visit(usize::MAX, |_| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert_eq!(seen, 1);
        Ok(())
    }

    #[test]
    fn kernel_mapping_keeps_replaced_pages() -> Result {
        let task = task()?;
        let list = ExportList::new()?;
        let buf = export(&list, 1)?;
        let mut guard = buf.dmabuf().resv().lock(&task);
        let mut map = bindings::iosys_map::default();
        // SAFETY: The dma-buf is live and its reservation held, as `dma_buf_vmap()` requires.
        kernel::error::to_result(unsafe {
            bindings::dma_buf_vmap(buf.dmabuf().as_raw(), &mut map)
        })?;
        // The buffer replaces its pages under its reservation (an eviction): its reference to
        // the old ones goes, the kernel mapping's stays.
        *buf.data().pages.get_mut(&mut guard)? = one_page()?;
        // SAFETY: `map` is a system-memory mapping of one page, used by this test only; with the
        // pages freed, KASAN would report this write.
        let vaddr = unsafe { map.__bindgen_anon_1.vaddr }.cast::<u8>();
        // SAFETY: As above.
        unsafe { vaddr.add(PAGE_SIZE - 1).write_volatile(7) };
        // SAFETY: As above.
        assert_eq!(unsafe { vaddr.add(PAGE_SIZE - 1).read_volatile() }, 7);
        // SAFETY: The mapping made above, given back with the reservation held.
        unsafe { bindings::dma_buf_vunmap(buf.dmabuf().as_raw(), &mut map) };
        // The new pages are the buffer's: still zero.
        assert!(page_is_zero(&buf.data().pages.get(&guard)?[0]));
        Ok(())
    }

    #[test]
    fn shared_vmap_outlives_the_exporters_reference() -> Result {
        let pages = one_page()?;
        let vmap = PageVmap::new_shared(pages.clone())?;
        drop(pages);
        let byte = vmap.as_ptr().cast::<u8>();
        // SAFETY: The mapping covers one page that only this test uses; the mapping owns it.
        unsafe { byte.write_volatile(3) };
        // SAFETY: As above.
        assert_eq!(unsafe { byte.read_volatile() }, 3);
        Ok(())
    }
}
