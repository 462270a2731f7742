// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `dmabuf_lock_exporter`: a buffer type of the test's exported with the library's
//! `Exporter`, attached dynamically and statically, mapped, moved and released (R10); and one
//! whose CPU mappings fault their pages in, under the reservation, after its moves (R1, R3).

use kernel::prelude::*;

#[kunit_tests(dmabuf_lock_exporter)]
mod tests {
    use crate::{
        common::task,
        dmabuf_lock::{
            dmabuf::{
                DmaBuf, DynamicAttachment, ExportOps, ExportedAttachment, ExportedBuf, Exporter,
                PageMapping, StaticAttachment,
            },
            fence::FenceTimeline,
            resv::{FenceUsage, OwnedResv, ResvCell, ResvHeld},
            signalling::{HwCompletion, PreparedIrqJob},
        },
        lazy_exporter::LazyPages,
    };
    use kernel::{
        device::{Bound, Device},
        dma::DataDirection,
        faux,
        page::{Page, PAGE_SIZE},
        prelude::*,
        sync::{
            aref::ARef,
            atomic::{Atomic, Relaxed},
            Arc,
        },
    };

    // bindgen emits some types that `struct device` reaches as empty structs; the kernel's own
    // `bindings` crate allows the lint too.
    #[allow(improper_ctypes)]
    extern "C" {
        /// `dma_coerce_mask_and_coherent(dev, DMA_BIT_MASK(64))`, exported by `dmabuf_lock.ko`.
        fn dl_dma_coerce_mask_64(dev: *mut kernel::bindings::device) -> i32;
        /// Runs the file releases deferred to a work item (a kthread's last `fput()`).
        fn flush_delayed_fput();
    }

    /// What the test's buffer counts under its reservation.
    #[derive(Default)]
    struct Counts {
        pins: u32,
        maps: u32,
        unmaps: u32,
    }

    /// The test's exporter: pages, counts under the reservation, and a flag set when the
    /// buffer is released.
    struct Pages {
        pages: KVec<Page>,
        counts: ResvCell<Counts>,
        released: Arc<Atomic<u32>>,
    }

    impl Drop for Pages {
        fn drop(&mut self) {
            self.released.store(1, Relaxed);
        }
    }

    static PAGES_OPS: ExportOps<Pages> = ExportOps::new();

    #[vtable]
    impl Exporter for Pages {
        const OPS: &'static ExportOps<Self> = &PAGES_OPS;

        fn pin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) -> Result {
            self.counts.get_mut(held)?.pins += 1;
            Ok(())
        }

        fn unpin(&self, held: &mut ResvHeld<'_>, _attachment: &ExportedAttachment) {
            if let Ok(counts) = self.counts.get_mut(held) {
                counts.pins -= 1;
            }
        }

        fn map<'a>(
            &'a self,
            held: &mut ResvHeld<'_>,
            attachment: &ExportedAttachment,
            dir: DataDirection,
        ) -> Result<PageMapping<'a>> {
            let mapping = PageMapping::new(attachment.device(), &self.pages, dir)?;
            self.counts.get_mut(held)?.maps += 1;
            Ok(mapping)
        }

        fn unmap<'a>(
            &'a self,
            held: &mut ResvHeld<'_>,
            _attachment: &ExportedAttachment,
            mapping: PageMapping<'a>,
        ) {
            drop(mapping);
            if let Ok(counts) = self.counts.get_mut(held) {
                counts.unmaps += 1;
            }
        }
    }

    /// Another exporter type, whose buffers are not `Pages`.
    struct Other;

    static OTHER_OPS: ExportOps<Other> = ExportOps::new();

    #[vtable]
    impl Exporter for Other {
        const OPS: &'static ExportOps<Self> = &OTHER_OPS;

        fn map<'a>(
            &'a self,
            _held: &mut ResvHeld<'_>,
            _attachment: &ExportedAttachment,
            _dir: DataDirection,
        ) -> Result<PageMapping<'a>> {
            Err(ENODEV)
        }
    }

    /// An exporter that maps for a device and a direction of its own, whatever the core asks.
    struct Misdirected {
        pages: KVec<Page>,
        dev: ARef<Device>,
        dir: DataDirection,
    }

    static MISDIRECTED_OPS: ExportOps<Misdirected> = ExportOps::new();

    #[vtable]
    impl Exporter for Misdirected {
        const OPS: &'static ExportOps<Self> = &MISDIRECTED_OPS;

        fn map<'a>(
            &'a self,
            _held: &mut ResvHeld<'_>,
            _attachment: &ExportedAttachment,
            _dir: DataDirection,
        ) -> Result<PageMapping<'a>> {
            PageMapping::new(&self.dev, &self.pages, self.dir)
        }
    }

    /// Exports one page that `Misdirected` maps for `dev` in `dir`.
    fn export_misdirected(
        dev: ARef<Device>,
        dir: DataDirection,
    ) -> Result<ExportedBuf<Misdirected>> {
        let mut pages = KVec::new();
        pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        ExportedBuf::new(&task()?, PAGE_SIZE, |_| Ok(Misdirected { pages, dev, dir }))
    }

    /// Exports a buffer of `count` pages; `released` is set when it is released.
    fn export(count: usize, released: &Arc<Atomic<u32>>) -> Result<ExportedBuf<Pages>> {
        export_sized(count, count * PAGE_SIZE, released)
    }

    /// Exports `count` pages as a buffer of `size` bytes.
    fn export_sized(
        count: usize,
        size: usize,
        released: &Arc<Atomic<u32>>,
    ) -> Result<ExportedBuf<Pages>> {
        let mut pages = KVec::new();
        for _ in 0..count {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        let released = released.clone();
        ExportedBuf::new(&task()?, size, |resv| {
            Ok(Pages {
                pages,
                counts: ResvCell::new(resv, Counts::default()),
                released,
            })
        })
    }

    /// Gives the case's kthread an address space of its own (`kunit_attach_mm()`), torn down
    /// when the kthread exits, and exports one zeroed page that mappings fault in.
    fn export_lazy() -> Result<ExportedBuf<LazyPages>> {
        // SAFETY: Called from the case's kthread, which has no address space of its own yet.
        kernel::error::to_result(unsafe { kernel::bindings::kunit_attach_mm() })?;
        LazyPages::export(&task()?, 1)
    }

    /// A device that DMA can be mapped for: a faux device with a 64-bit mask.
    fn device(registration: &faux::Registration) -> Result<ARef<Device>> {
        let dev: &Device = AsRef::<faux::Device<Bound>>::as_ref(registration).as_ref();
        let raw = core::ptr::from_ref(dev).cast_mut().cast();
        // SAFETY: The faux device is live and used by this test only.
        kernel::error::to_result(unsafe { dl_dma_coerce_mask_64(raw) })?;
        Ok(dev.into())
    }

    fn flag() -> Result<Arc<Atomic<u32>>> {
        Ok(Arc::new(Atomic::new(0), GFP_KERNEL)?)
    }

    /// Reads the counts under the reservation.
    fn counts(buf: &ExportedBuf<Pages>) -> Result<(u32, u32, u32)> {
        let task = task()?;
        let guard = buf.dmabuf().resv().lock(&task);
        let c = buf.data().counts.get(&guard)?;
        Ok((c.pins, c.maps, c.unmaps))
    }

    #[test]
    fn dynamic_importer_maps_and_is_invalidated() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        let buf = export(3, &released)?;
        let attachment = DynamicAttachment::new(&task, ARef::from(buf.dmabuf()), device(&faux)?)?;
        {
            let mut guard = buf.dmabuf().resv().lock(&task);
            let mapping = attachment.map(&mut guard, DataDirection::Bidirectional)?;
            let bytes: usize = mapping.table().iter().map(|e| e.dma_len() as usize).sum();
            assert_eq!(bytes, 3 * PAGE_SIZE);
            // Mapped once: the second map returns the same mapping.
            attachment.map(&mut guard, DataDirection::Bidirectional)?;
            // The exporter moves the buffer: the importer's callback unmaps, on this task.
            buf.dmabuf().invalidate_mappings(&mut guard)?;
        }
        // A dynamic importer does not pin.
        assert_eq!(counts(&buf)?, (0, 1, 1));
        drop(attachment);
        drop(buf);
        // SAFETY: Called from a kthread, as the function expects.
        unsafe { flush_delayed_fput() };
        assert_eq!(released.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn static_attachment_pins_while_mapped() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        let buf = export(2, &released)?;
        let attachment = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), device(&faux)?)?;
        let mapping = attachment.map(&task, DataDirection::ToDevice)?;
        assert!(mapping.table().iter().count() >= 1);
        assert_eq!(counts(&buf)?, (1, 1, 0));
        let second = attachment.map(&task, DataDirection::FromDevice)?;
        assert_eq!(counts(&buf)?, (2, 2, 0));
        drop(mapping);
        drop(second);
        assert_eq!(counts(&buf)?, (0, 2, 2));
        Ok(())
    }

    #[test]
    fn mapping_must_cover_the_buffer() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        // One page behind a two-page buffer: an importer would DMA past the table's end.
        let buf = export_sized(1, 2 * PAGE_SIZE, &released)?;
        let attachment = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), device(&faux)?)?;
        assert_eq!(
            attachment.map(&task, DataDirection::ToDevice).err(),
            Some(EINVAL)
        );
        // The refused mapping went back to the exporter's `unmap`, and the pin was undone.
        assert_eq!(counts(&buf)?, (0, 1, 1));
        // Sizes that are no whole number of pages, or that `loff_t` cannot hold:
        assert_eq!(
            ExportedBuf::new(&task, PAGE_SIZE + 1, |_| Ok(Other)).err(),
            Some(EINVAL)
        );
        let huge = usize::MAX - (PAGE_SIZE - 1);
        assert_eq!(
            ExportedBuf::new(&task, huge, |_| Ok(Other)).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn leaked_static_mapping_keeps_the_pages() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        let buf = export(1, &released)?;
        let attachment = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), device(&faux)?)?;
        // The mapping is leaked: its device may still reach the pages.
        core::mem::forget(attachment.map(&task, DataDirection::ToDevice)?);
        drop(attachment);
        drop(buf);
        // SAFETY: Called from a kthread, as the function expects.
        unsafe { flush_delayed_fput() };
        assert_eq!(released.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn c_importer_detaching_mapped_keeps_the_pages() -> Result {
        use kernel::bindings;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        let buf = export(1, &released)?;
        let dev = device(&faux)?;
        let raw_dev = core::ptr::from_ref(&*dev).cast_mut().cast();
        let raw_buf = buf.dmabuf().as_raw();
        // A C importer that detaches without unmapping first, which the core does not check.
        // SAFETY: `raw_buf` is referenced by `buf` and `raw_dev` by `dev` throughout; the
        // attachment is mapped with no reservation held, then detached once.
        unsafe {
            let attach = kernel::error::from_err_ptr(bindings::dma_buf_attach(raw_buf, raw_dev))?;
            let sgt =
                bindings::dma_buf_map_attachment_unlocked(attach, DataDirection::ToDevice.into());
            assert!(!sgt.is_null() && kernel::error::from_err_ptr(sgt).is_ok());
            bindings::dma_buf_detach(raw_buf, attach);
        }
        drop(buf);
        // SAFETY: Called from a kthread, as the function expects.
        unsafe { flush_delayed_fput() };
        assert_eq!(released.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn mapping_must_be_for_the_importer_and_direction() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let other_faux = faux::Registration::new(c"dmabuf_lock_exporter_test_other", None)?;
        let (dev, other) = (device(&faux)?, device(&other_faux)?);
        // Mapped for another device than the importer's:
        let buf = export_misdirected(other, DataDirection::ToDevice)?;
        let attachment = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), dev.clone())?;
        assert_eq!(
            attachment.map(&task, DataDirection::ToDevice).err(),
            Some(EINVAL)
        );
        // Mapped for the importer, in another direction than asked:
        let buf = export_misdirected(dev.clone(), DataDirection::ToDevice)?;
        let attachment = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), dev)?;
        assert_eq!(
            attachment.map(&task, DataDirection::FromDevice).err(),
            Some(EINVAL)
        );
        assert!(attachment.map(&task, DataDirection::ToDevice).is_ok());
        Ok(())
    }

    #[test]
    fn no_direction_is_refused_everywhere() -> Result {
        let task = task()?;
        let faux = faux::Registration::new(c"dmabuf_lock_exporter_test", None)?;
        let released = flag()?;
        let buf = export(1, &released)?;
        let dev = device(&faux)?;
        let dynamic = DynamicAttachment::new(&task, ARef::from(buf.dmabuf()), dev.clone())?;
        {
            let mut guard = buf.dmabuf().resv().lock(&task);
            assert_eq!(
                dynamic.map(&mut guard, DataDirection::None).err(),
                Some(EINVAL)
            );
        }
        let fixed = StaticAttachment::new(&task, ARef::from(buf.dmabuf()), dev.clone())?;
        assert_eq!(fixed.map(&task, DataDirection::None).err(), Some(EINVAL));
        assert_eq!(
            buf.dmabuf()
                .begin_cpu_access(&task, DataDirection::None)
                .err(),
            Some(EINVAL)
        );
        assert_eq!(
            PageMapping::new(&dev, &buf.data().pages, DataDirection::None).err(),
            Some(EINVAL)
        );
        assert_eq!(counts(&buf)?, (0, 0, 0));
        Ok(())
    }

    #[test]
    fn buffers_are_told_apart_by_exporter() -> Result {
        let released = flag()?;
        let buf = export(1, &released)?;
        let task = task()?;
        let other = ExportedBuf::new(&task, PAGE_SIZE, |_| Ok(Other))?;
        let dmabuf: &DmaBuf = buf.dmabuf();
        assert!(dmabuf.exported_data::<Pages>().is_ok());
        assert_eq!(dmabuf.exported_data::<Other>().err(), Some(EINVAL));
        assert_eq!(other.dmabuf().exported_data::<Pages>().err(), Some(EINVAL));
        assert_eq!(
            ExportedBuf::<Other>::from_dmabuf(ARef::from(dmabuf)).err(),
            Some(EINVAL)
        );
        assert_eq!(
            ExportedBuf::new(&task, 0, |_| Ok(Other)).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn release_drops_the_value_once_unreferenced() -> Result {
        let released = flag()?;
        let buf = export(1, &released)?;
        let extra: ARef<DmaBuf> = ARef::from(buf.dmabuf());
        drop(buf);
        // SAFETY: Called from a kthread, as the function expects.
        unsafe { flush_delayed_fput() };
        assert_eq!(released.load(Relaxed), 0);
        drop(extra);
        // SAFETY: As above.
        unsafe { flush_delayed_fput() };
        assert_eq!(released.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn fault_waits_for_kernel_fences() -> Result {
        let mut task = task()?;
        let buf = export_lazy()?;
        // A move of the buffer in flight: a kernel-usage fence, which the "hardware"'s
        // completion interrupt signals 500 ms from now.
        let timeline = FenceTimeline::new();
        let job = PreparedIrqJob::new(&task, &timeline, 5000, |_fence, _irq| Ok(()))?;
        let mut guard = buf.dmabuf().resv().lock(&task);
        guard.reserve_fences(1)?;
        let section = task.signalling_section();
        let job = job.arm(&section);
        guard.add_fence(job.fence(), FenceUsage::Kernel)?;
        job.submit(HwCompletion::After(500));
        drop(section);
        drop(guard);
        let mapping = buf.dmabuf().map_user_read(&task)?;
        // Mapping maps nothing; the move is still running.
        assert_eq!(buf.data().faults(), 0);
        assert!(!buf.dmabuf().resv().test_signaled(FenceUsage::Kernel));
        let mut byte = [0xffu8];
        mapping.reader().read_slice(&mut byte)?;
        // The copy faulted, and the fault waited for the move before asking for the page.
        assert!(buf.dmabuf().resv().test_signaled(FenceUsage::Kernel));
        assert_eq!(buf.data().faults(), 1);
        assert_eq!(byte[0], 0);
        Ok(())
    }

    #[test]
    fn zapped_mapping_faults_again() -> Result {
        let task = task()?;
        let buf = export_lazy()?;
        let mapping = buf.dmabuf().map_user_read(&task)?;
        let mut byte = [0xffu8];
        mapping.reader().read_slice(&mut byte)?;
        mapping.reader().read_slice(&mut byte)?;
        // Mapped once, by the first access.
        assert_eq!(buf.data().faults(), 1);
        // A proof of another reservation is refused.
        let other = KBox::pin_init(OwnedResv::new(), GFP_KERNEL)?;
        let mut wrong = other.lock(&task);
        assert_eq!(buf.dmabuf().zap_user_mappings(&mut wrong), Err(EINVAL));
        drop(wrong);
        let mut guard = buf.dmabuf().resv().lock(&task);
        buf.dmabuf().zap_user_mappings(&mut guard)?;
        drop(guard);
        mapping.reader().read_slice(&mut byte)?;
        assert_eq!(buf.data().faults(), 2);
        Ok(())
    }

    #[test]
    fn user_mapping_refused_on_a_kthread() -> Result {
        let task = task()?;
        let released = flag()?;
        let buf = export(1, &released)?;
        // A KUnit case runs in a kthread, which has no address space: `vm_mmap` would
        // dereference a NULL `mm`.
        assert_eq!(
            buf.dmabuf()
                .map_user_read(&task)
                .err()
                .map(|e| e.to_errno()),
            Some(EINVAL.to_errno())
        );
        Ok(())
    }
}
