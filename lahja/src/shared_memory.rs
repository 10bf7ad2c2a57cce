//! Event bodies in shared memory (see `docs/PROTOCOL.md`, "Bodies in
//! shared memory"): a large body goes into a sealed `memfd` whose
//! descriptor travels over the socket, and the receiver decodes it from a
//! read-only mapping. This module only makes and checks those files; the
//! transport carries their descriptors.
//!
//! Each body gets its own file, sealed against writing, growing and
//! shrinking before it is sent: a receiver can neither be changed under
//! nor made to fault (`SIGBUS`) by a sender, and one file serves every
//! peer of a fan-out. The kernel frees it once the last descriptor and
//! mapping are gone, so a process that dies leaks nothing.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// The seals a received body must carry: nobody can write it, or change
/// its size, while it is mapped here.
const REQUIRED_SEALS: SealFlags = SealFlags::WRITE
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW);

/// A sealed, read-only file holding one encoded body.
#[derive(Debug)]
pub(crate) struct SharedBody {
    fd: OwnedFd,
    len: usize,
}

impl SharedBody {
    /// A new sealed memfd holding `bytes`.
    pub(crate) fn new(bytes: &[u8]) -> io::Result<SharedBody> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create("lahja-body", flags)?;
        // One copy through write(2): the pages are allocated as they are
        // filled, and no writable mapping is left to block the seal.
        let mut rest = bytes;
        while !rest.is_empty() {
            match rustix::io::write(&fd, rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => rest = &rest[written..],
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
        rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS | SealFlags::SEAL)?;
        Ok(SharedBody {
            fd,
            len: bytes.len(),
        })
    }

    /// The descriptor to send.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The body's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// A received body, mapped read-only; unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and its file sealed against writes, so
// the bytes never change while it lives; nothing in it is thread-bound.
unsafe impl Send for Mapping {}
// SAFETY: as above: shared access only ever reads immutable bytes.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the body a peer sent as `fd`, which its frame says holds
    /// `len` bytes. Refused, with the reason, unless it is a regular file
    /// of exactly that size sealed against writing and resizing: anything
    /// else could change or vanish under the decoder.
    pub(crate) fn new(fd: OwnedFd, len: usize) -> Result<Mapping, String> {
        let seals = rustix::fs::fcntl_get_seals(&fd)
            .map_err(|e| format!("the descriptor is not a sealed memfd ({e})"))?;
        if !seals.contains(REQUIRED_SEALS) {
            return Err(format!(
                "the memfd is not sealed against writing and resizing (seals {seals:?})"
            ));
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect the memfd: {e}"))?;
        let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
        if kind != rustix::fs::FileType::RegularFile || stat.st_size as u64 != len as u64 {
            return Err(format!(
                "the memfd holds {} bytes, the frame says {len}",
                stat.st_size
            ));
        }
        if len == 0 {
            return Ok(Mapping {
                ptr: NonNull::dangling(),
                len,
            });
        }
        // SAFETY: a fresh mapping (no address given) of a file whose size
        // was checked and can no longer change; read-only, so nothing here
        // can write through it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::SHARED | MapFlags::POPULATE,
                &fd,
                0,
            )
        }
        .map_err(|e| format!("cannot map the memfd: {e}"))?;
        // The mapping keeps the file alive: the descriptor can go now.
        drop(fd);
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or("mmap returned null")?;
        Ok(Mapping { ptr, len })
    }
}

impl std::ops::Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (or is dangling with
        // `len` 0) until drop, and they never change (sealed).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: exactly the region `new` mapped, unmapped once.
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(body: &SharedBody) -> OwnedFd {
        body.fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn a_body_maps_back_to_its_bytes() {
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
        let body = SharedBody::new(&bytes).unwrap();
        assert_eq!(body.len(), bytes.len());
        let mapped = Mapping::new(duplicate(&body), bytes.len()).unwrap();
        drop(body);
        assert!(mapped[..] == bytes[..]);
        let empty = SharedBody::new(&[]).unwrap();
        assert!(Mapping::new(duplicate(&empty), 0).unwrap().is_empty());
    }

    /// The sender cannot change a body once made: the seals hold.
    #[test]
    fn a_sent_body_cannot_be_written_or_resized() {
        let body = SharedBody::new(b"sealed").unwrap();
        assert!(rustix::io::pwrite(body.fd(), b"X", 0).is_err());
        assert!(rustix::fs::ftruncate(body.fd(), 1).is_err());
        assert!(rustix::fs::ftruncate(body.fd(), 100).is_err());
    }

    /// What a hostile peer could send instead: each is refused, never
    /// mapped (a wrong size could fault the reader; an unsealed file could
    /// change under the decoder).
    #[test]
    fn descriptors_that_lie_are_refused() {
        let body = SharedBody::new(&[7; 100]).unwrap();
        let wrong_size = Mapping::new(duplicate(&body), 4096).err().unwrap();
        assert!(wrong_size.contains("holds 100 bytes"), "{wrong_size}");

        let unsealed = rustix::fs::memfd_create("x", MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&unsealed, 100).unwrap();
        let why = Mapping::new(unsealed, 100).err().unwrap();
        assert!(why.contains("not sealed"), "{why}");

        let (pipe, _other) = std::io::pipe().unwrap();
        let why = Mapping::new(pipe.into(), 100).err().unwrap();
        assert!(why.contains("not a sealed memfd"), "{why}");

        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(Mapping::new(file.into(), 100).is_err());
    }
}
