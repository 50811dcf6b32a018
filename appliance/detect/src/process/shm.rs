//! A frame slot in shared memory: a memfd mapped by the daemon (read-write)
//! and by the detector child (read-only), so a frame crosses the process
//! boundary without being copied through a pipe.
//!
//! The one FFI surface of the detector process boundary: `mmap`/`munmap`.
#![allow(
    unsafe_code,
    reason = "mmap of a memfd; each use has its SAFETY comment"
)]

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::MemfdFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// A mapped memfd of a fixed length.
#[derive(Debug)]
pub(crate) struct Shm {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is owned by this value alone (no aliasing `&mut` is handed
// out across threads: `as_mut_slice` takes `&mut self`), and moving the owner to
// another thread moves the only access to it.
unsafe impl Send for Shm {}

impl Shm {
    /// A new memfd of `len` bytes (at least 1), mapped read-write.
    pub(crate) fn create(len: usize) -> std::io::Result<Self> {
        let len = len.max(1);
        let fd = rustix::fs::memfd_create(
            "safe-yolo-frame",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        Self::map(fd, len, true)
    }

    /// Maps `len` bytes of `fd` (a memfd received from the daemon), read-only
    /// unless `writable`. Refuses a file shorter than `len`.
    pub(crate) fn map(fd: OwnedFd, len: usize, writable: bool) -> std::io::Result<Self> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        if len == 0 || u64::try_from(size).unwrap_or(0) < len as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("shared frame slot of {size} bytes, {len} expected"),
            ));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint) of `len`
        // bytes of a file at least that long; it is unmapped once, in `Drop`, and
        // no reference into it outlives the borrow of `self` it was made from.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                fd.as_fd(),
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned a null mapping"))?;
        Ok(Self {
            fd,
            ptr,
            len,
            writable,
        })
    }

    /// The memfd, to hand to the child.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes. The other process writes them only while this one waits for
    /// its answer (the protocol's turns), never during a borrow.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, to write a frame; `None` for a read-only mapping.
    pub(crate) fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        // SAFETY: a writable mapping of `len` bytes for the life of `self`; the
        // `&mut self` borrow makes this the only reference in this process, and
        // the child reads the slot only after the daemon sent it the frame.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped
        // only here, and no borrow of it can outlive `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn a_second_mapping_sees_what_the_first_wrote_and_cannot_write() {
        let mut a = Shm::create(16).unwrap();
        a.as_mut_slice().unwrap().copy_from_slice(&[7; 16]);
        let fd = a.fd().try_clone().unwrap();
        let mut b = Shm::map(fd, 16, false).unwrap();
        assert_eq!(b.as_slice(), &[7; 16]);
        assert!(b.as_mut_slice().is_none());
        // Longer than the file: refused.
        let fd = a.fd().try_clone().unwrap();
        assert!(Shm::map(fd, 17, false).is_err());
        assert_eq!(a.len(), 16);
    }
}
