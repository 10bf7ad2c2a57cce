//! Where a link's queued frames go: a [`Carrier`]. The queue batches
//! frames and bounds them; the carrier moves the bytes. The Unix-socket
//! carrier is here; a transport with another medium (a zenoh publisher,
//! say) brings its own.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;

use tokio::net::unix::OwnedWriteHalf;

/// The future of [`Carrier::write_all`].
pub(crate) type Writing<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// Moves a link's bytes to its peer.
pub(crate) trait Carrier: Send + Sync {
    /// Writes all of `batch` (whole frames, in order), waiting until the
    /// medium takes it: this is where backpressure comes from.
    fn write_all<'a>(&'a self, batch: &'a [u8]) -> Writing<'a>;
    /// [`write_all`](Self::write_all), with `descriptors` sent along with
    /// the first bytes (before any frame that needs them). Only a medium
    /// that can pass descriptors gets any: the rest refuse.
    fn write_all_with<'a>(
        &'a self,
        batch: &'a [u8],
        descriptors: &'a [BorrowedFd<'a>],
    ) -> Writing<'a> {
        if descriptors.is_empty() {
            return self.write_all(batch);
        }
        Box::pin(std::future::ready(Err(io::Error::other(
            "this medium cannot pass descriptors",
        ))))
    }
    /// Writes what it can of `bytes` without waiting, and says how much.
    /// A stream may take part of a frame (the queue finishes it); a medium
    /// of whole messages takes all or nothing, and one that cannot write
    /// without waiting takes nothing, so every frame goes through the
    /// writer task.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
    /// Tells the peer that nothing more comes, after the last batch.
    fn finish(&self);
}

impl Carrier for OwnedWriteHalf {
    fn write_all<'a>(&'a self, mut batch: &'a [u8]) -> Writing<'a> {
        Box::pin(async move {
            while !batch.is_empty() {
                self.writable().await?;
                match OwnedWriteHalf::try_write(self, batch) {
                    Ok(written) => batch = &batch[written..],
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        })
    }

    fn write_all_with<'a>(
        &'a self,
        batch: &'a [u8],
        descriptors: &'a [BorrowedFd<'a>],
    ) -> Writing<'a> {
        Box::pin(async move {
            let stream: &tokio::net::UnixStream = self.as_ref();
            loop {
                stream.writable().await?;
                let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
                    send_with_descriptors(stream, batch, descriptors)
                });
                match sent {
                    // The descriptors went with these bytes (a stream
                    // socket never takes none of a non-empty write).
                    Ok(written) => return Carrier::write_all(self, &batch[written..]).await,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
            }
        })
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        OwnedWriteHalf::try_write(self, bytes)
    }

    fn finish(&self) {
        // The peer sees the end of the stream even while other holders of
        // the connection keep the descriptor open.
        let stream: &tokio::net::UnixStream = self.as_ref();
        // SAFETY: the descriptor stays open while `self` lives.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    }
}

/// One `sendmsg` of (the start of) `bytes` with `descriptors` attached.
fn send_with_descriptors(
    stream: &tokio::net::UnixStream,
    bytes: &[u8],
    descriptors: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(descriptors.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(descriptors)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let iov = [io::IoSlice::new(bytes)];
    Ok(rustix::net::sendmsg(
        stream,
        &iov,
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}
