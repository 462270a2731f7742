// SPDX-License-Identifier: GPL-2.0

//! CPU page faults on the exporter's buffers (issue 13, R1): `mmap()` of a dma-buf maps nothing,
//! and each page is inserted by the library's fault handler, under the buffer's reservation,
//! the first time it is touched. These checks run in the story (the default run).

use super::{checksum, create, evict, import, op, Report, DLI_IOCTL_CHECKSUM, DLI_IOCTL_MAP};
use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, RawFd},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

const PAGE: usize = 4096;

/// A shared mapping of a dma-buf, unmapped on drop unless already unmapped.
pub(crate) struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of the buffer behind `fd` from its start, without populating anything.
    fn new(fd: RawFd, len: usize, prot: i32, flags: i32) -> io::Result<Self> {
        // SAFETY: A fresh mapping at an address of the kernel's choice; unmapped on drop.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            addr: addr.cast(),
            len,
        })
    }

    pub(crate) fn shared(fd: RawFd, len: usize) -> io::Result<Self> {
        Self::new(
            fd,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
    }

    /// The mapped bytes (touching them faults the pages in).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn bytes(&self) -> &mut [u8] {
        // SAFETY: `addr` maps `len` writable bytes while `self` lives; the test does not keep
        // two of these slices alive across a call that uses the other.
        unsafe { std::slice::from_raw_parts_mut(self.addr, self.len) }
    }

    /// Which pages have a page-table entry (`mincore()`): the buffer is no page cache, so a
    /// page counts only once a fault has inserted it.
    fn resident(&self) -> io::Result<Vec<bool>> {
        let mut vec = vec![0u8; self.len / PAGE];
        // SAFETY: `vec` has one byte per page of the mapping.
        if unsafe { libc::mincore(self.addr.cast(), self.len, vec.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(vec.iter().map(|v| v & 1 != 0).collect())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: Unmaps the mapping made in `new` (a no-op for a range already unmapped).
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// Reads one byte of each page listed, through a volatile read the compiler keeps.
fn touch(map: &Mapping, pages: &[usize]) -> u64 {
    pages
        .iter()
        .map(|&p| {
            // SAFETY: Inside the mapping.
            u64::from(unsafe { map.addr.add(p * PAGE).read_volatile() })
        })
        .sum()
}

fn count(resident: &io::Result<Vec<bool>>) -> Option<usize> {
    resident
        .as_ref()
        .ok()
        .map(|v| v.iter().filter(|&&r| r).count())
}

/// The fault checks of the story.
pub fn checks(r: &mut Report, exporter: &File, importer: &File) {
    const PAGES: usize = 8;
    let len = PAGES * PAGE;
    let buf = match create(exporter, PAGES as u64) {
        Ok(fd) => fd,
        Err(e) => {
            r.check("fault: exporter creates an 8-page buffer", false, e);
            return;
        }
    };
    let map = match Mapping::shared(buf.as_raw_fd(), len) {
        Ok(map) => map,
        Err(e) => {
            r.check("fault: mmap of a dma-buf", false, e);
            return;
        }
    };

    // Lazily: nothing is mapped until touched, then exactly what was touched.
    let before = map.resident();
    touch(&map, &[0, 3]);
    let after = map.resident();
    r.check(
        "fault: mmap maps no page, a touch faults in that page only",
        count(&before) == Some(0)
            && matches!(&after, Ok(v) if v.iter().enumerate().all(|(i, &p)| p == (i == 0 || i == 3))),
        format_args!("resident before {before:?}, after touching pages 0 and 3 {after:?}"),
    );

    // Written through the mapping, read by the importer's device path (its own mapping of the
    // buffer, faulted in the ioctl's user copy).
    for (i, b) in map.bytes().iter_mut().enumerate() {
        *b = (i * 13 + 5) as u8;
    }
    let expected = checksum(map.bytes());
    let sum = import(importer, buf.as_raw_fd()).and_then(|h| {
        op(importer, DLI_IOCTL_MAP, h, 0)?;
        let sum = op(importer, DLI_IOCTL_CHECKSUM, h, 0);
        op(importer, super::DLI_IOCTL_RELEASE, h, 0)?;
        sum
    });
    r.check(
        "fault: a pattern written through faulted-in pages, the importer's checksum matches",
        matches!(sum, Ok(s) if s == expected),
        format_args!("{sum:x?}, expected {expected:x}"),
    );

    // A move zaps the mappings under the reservation: the pages fault in again, same contents.
    let moved = evict(exporter, buf.as_raw_fd());
    let zapped = map.resident();
    let again = checksum(map.bytes());
    r.check(
        "fault: a move unmaps every page, the next access faults them back",
        moved.is_ok() && count(&zapped) == Some(0) && again == expected,
        format_args!(
            "evict {moved:?}, resident after it {:?}, checksum {again:x} (expected {expected:x})",
            count(&zapped)
        ),
    );

    fork_shares(r, exporter, buf.as_raw_fd(), &map, expected);
    mremap_checks(r, buf.as_raw_fd(), &map, expected);
    bad_mappings(r, buf.as_raw_fd(), len);
    drop(map);
    munmap_while_faulting(r, exporter);
}

/// A child process inherits the mapping: it reads what the parent wrote, and its write is seen
/// by the parent (a shared mapping). The buffer is moved first, so the child faults every page
/// in itself, from the same buffer.
fn fork_shares(r: &mut Report, exporter: &File, fd: RawFd, map: &Mapping, expected: u64) {
    let moved = evict(exporter, fd);
    let mapped_at_fork = count(&map.resident());
    // SAFETY: The child only reads and writes the mapping and exits with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let sum = checksum(map.bytes());
        map.bytes()[PAGE * 7 + 1] = 0xa5;
        // SAFETY: Ends the child without running the parent's destructors.
        unsafe { libc::_exit(if sum == expected { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: Waits for the child forked above.
    let waited = pid > 0 && unsafe { libc::waitpid(pid, &mut status, 0) } == pid;
    let seen = map.bytes()[PAGE * 7 + 1];
    r.check(
        "fault: a forked child reads the parent's pattern, the parent sees its write",
        moved.is_ok()
            && mapped_at_fork == Some(0)
            && waited
            && libc::WIFEXITED(status)
            && libc::WEXITSTATUS(status) == 0
            && seen == 0xa5,
        format_args!(
            "child status {status:#x}, byte {seen:#x}, {mapped_at_fork:?} pages mapped at fork"
        ),
    );
    // Back to the pattern, for the checks after this one.
    map.bytes()[PAGE * 7 + 1] = ((PAGE * 7 + 1) * 13 + 5) as u8;
}

/// `mremap()`: the buffer's size is fixed, so growing is refused; moving works, and the moved
/// mapping faults at the right offsets.
fn mremap_checks(r: &mut Report, fd: RawFd, map: &Mapping, expected: u64) {
    // SAFETY: Asks for a larger mapping at the same place; refused or unmapped below.
    let grown = unsafe {
        libc::mremap(
            map.addr.cast(),
            map.len,
            map.len + PAGE,
            libc::MREMAP_MAYMOVE,
        )
    };
    let grow_err = io::Error::last_os_error();
    r.check(
        "fault: mremap growing a mapping is refused (EFAULT)",
        grown == libc::MAP_FAILED && grow_err.raw_os_error() == Some(libc::EFAULT),
        format_args!("{grown:?} {grow_err}"),
    );
    // A second mapping of the same buffer, moved elsewhere: its pages fault in at its offsets.
    let moved = (|| -> io::Result<u64> {
        let second = Mapping::shared(fd, map.len)?;
        // A free range of the right size to move to.
        let target = Mapping::new(
            -1,
            map.len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )?;
        touch(&second, &[1]);
        // SAFETY: Moves `second` over `target` (`MREMAP_FIXED` replaces it).
        let addr = unsafe {
            libc::mremap(
                second.addr.cast(),
                second.len,
                second.len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target.addr.cast::<libc::c_void>(),
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // `second`'s range is now unmapped, `target`'s holds the buffer: drop unmaps both.
        Ok(checksum(target.bytes()))
    })();
    r.check(
        "fault: a mapping moved by mremap faults in the buffer's pages at its offsets",
        matches!(moved, Ok(s) if s == expected),
        format_args!("{moved:x?}, expected {expected:x}"),
    );
}

/// Mappings the buffer cannot serve: private writable ones (a write would copy the page away
/// from the buffer) and ones past its end.
fn bad_mappings(r: &mut Report, fd: RawFd, len: usize) {
    r.expect_errno(
        "fault: a private (copy-on-write) mapping of a dma-buf",
        Mapping::new(fd, len, libc::PROT_READ, libc::MAP_PRIVATE),
        libc::EINVAL,
    );
    r.expect_errno(
        "fault: a mapping past the buffer's end",
        Mapping::shared(fd, len + PAGE),
        libc::EINVAL,
    );
}

/// `munmap()` while another thread faults on the mapping, over and over: the faulting thread
/// sees its copies succeed or fail with `EFAULT` (it fills the mapping with `read()` from
/// `/dev/zero`, a user copy that faults in the kernel), never a crash, and the kernel stays
/// quiet (the boot's judge).
fn munmap_while_faulting(r: &mut Report, exporter: &File) {
    const ROUNDS: usize = 40;
    const PAGES: usize = 16;
    let result = (|| -> io::Result<(u64, u64)> {
        let zero = File::open("/dev/zero")?;
        let buf = create(exporter, PAGES as u64)?;
        let (mut copies, mut efaults) = (0, 0);
        for _ in 0..ROUNDS {
            let map = Mapping::shared(buf.as_raw_fd(), PAGES * PAGE)?;
            let addr = map.addr as usize;
            let stop = AtomicBool::new(false);
            let done = AtomicU64::new(0);
            let faulted = AtomicU64::new(0);
            let other: io::Result<()> = std::thread::scope(|s| {
                let worker = s.spawn(|| -> io::Result<()> {
                    while !stop.load(Ordering::Relaxed) {
                        // SAFETY: The kernel writes into the range, mapped or not: an unmapped
                        // one is an `EFAULT`, never a fault in this process.
                        let n = unsafe {
                            libc::read(zero.as_raw_fd(), addr as *mut libc::c_void, PAGES * PAGE)
                        };
                        if n >= 0 {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else if io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT) {
                            faulted.fetch_add(1, Ordering::Relaxed);
                            break;
                        } else {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
                // Let it fault a while, zapping the pages under it so that it keeps faulting,
                // then unmap under it.
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_millis(2));
                    evict(exporter, buf.as_raw_fd())?;
                }
                drop(map);
                std::thread::sleep(Duration::from_millis(2));
                stop.store(true, Ordering::Relaxed);
                worker
                    .join()
                    .unwrap_or(Err(io::Error::from_raw_os_error(libc::EIO)))
            });
            other?;
            copies += done.load(Ordering::Relaxed);
            efaults += faulted.load(Ordering::Relaxed);
        }
        Ok((copies, efaults))
    })();
    r.check(
        "fault: munmap while another thread faults on the mapping (40 rounds)",
        matches!(result, Ok((copies, _)) if copies > 0),
        format_args!(
            "{:?}",
            result.map(|(c, e)| format!("{c} copies completed, {e} ended with EFAULT"))
        ),
    );
}
