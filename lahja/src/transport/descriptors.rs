//! The read side of a socket link, keeping the descriptors that come with
//! its bytes (`SCM_RIGHTS`): those of bodies in shared memory, in the
//! order they were sent, for the frames that stand for them.
//!
//! A descriptor arrives with the first bytes of the write that carried
//! it, so never after the frame that needs it: the frames take them in
//! order. However many a peer sends, only a bounded number is held.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::OwnedReadHalf;

use crate::link::MAX_UNRELEASED;

/// The most descriptors one connection may have sent and not yet used: a
/// sender holds back once its peer has [`MAX_UNRELEASED`] bodies, so
/// more than twice that is a peer that lies.
const MAX_HELD: usize = 2 * MAX_UNRELEASED;

/// Descriptors one read takes at most; a message with more is cut short
/// by the kernel (which closes the rest), and the connection with it.
const MAX_PER_READ: usize = MAX_HELD;

/// A socket's read half that keeps the descriptors it receives.
pub(crate) struct SocketReader {
    read: OwnedReadHalf,
    held: VecDeque<OwnedFd>,
}

impl SocketReader {
    pub(crate) fn new(read: OwnedReadHalf) -> Self {
        SocketReader {
            read,
            held: VecDeque::new(),
        }
    }

    /// The oldest descriptor received and not yet taken.
    pub(crate) fn take_descriptor(&mut self) -> Option<OwnedFd> {
        self.held.pop_front()
    }
}

impl AsyncRead for SocketReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream: &tokio::net::UnixStream = this.read.as_ref();
        loop {
            ready!(stream.poll_read_ready(cx))?;
            // SAFETY: the kernel only writes into the slice and says how
            // much; the bytes it did not write stay uninitialized to us
            // (tokio's own socket reads do the same).
            let unfilled =
                unsafe { &mut *(buf.unfilled_mut() as *mut [MaybeUninit<u8>] as *mut [u8]) };
            let held = &mut this.held;
            match stream.try_io(tokio::io::Interest::READABLE, || {
                receive(stream, unfilled, held)
            }) {
                Ok(read) => {
                    // SAFETY: `receive` wrote `read` bytes at the start.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// One `recvmsg` into `bytes`; the descriptors it brings go to `held`.
fn receive(
    stream: &tokio::net::UnixStream,
    bytes: &mut [u8],
    held: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PER_READ))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(bytes)];
    let message = rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for ancillary in control.drain() {
        if let RecvAncillaryMessage::ScmRights(descriptors) = ancillary {
            held.extend(descriptors);
        }
    }
    if message.flags.contains(ReturnFlags::CTRUNC) || held.len() > MAX_HELD {
        held.clear();
        return Err(io::Error::other(format!(
            "the peer sent more than {MAX_HELD} descriptors it has not used"
        )));
    }
    Ok(message.bytes)
}

#[cfg(test)]
mod tests {
    use std::os::fd::BorrowedFd;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::link::Carrier;
    use crate::shared_memory::{Mapping, SharedBody};

    fn pair() -> (tokio::net::unix::OwnedWriteHalf, SocketReader) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let (read, _) = theirs.into_split();
        let (_, write) = ours.into_split();
        (write, SocketReader::new(read))
    }

    /// Descriptors written with a batch come out in order, with its bytes.
    #[tokio::test]
    async fn descriptors_arrive_in_order_with_the_bytes() {
        let (write, mut reader) = pair();
        let bodies: Vec<SharedBody> = (0..3).map(|i| SharedBody::new(&[i; 10]).unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = bodies.iter().map(SharedBody::fd).collect();
        write.write_all_with(b"frames", &fds).await.unwrap();
        write.write_all_with(b" and more", &[]).await.unwrap();
        let mut got = [0; 15];
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"frames and more");
        for i in 0..3 {
            let mapped = Mapping::new(reader.take_descriptor().unwrap(), 10).unwrap();
            assert_eq!(&mapped[..], &[i; 10]);
        }
        assert!(reader.take_descriptor().is_none());
    }

    /// A peer that sends more descriptors than it may have outstanding is
    /// cut off, in one message (cut short by the kernel) or in several.
    #[tokio::test]
    async fn a_peer_sending_too_many_descriptors_fails_the_read() {
        let body = SharedBody::new(b"x").unwrap();
        for per_message in [MAX_HELD + 1, MAX_HELD / 2 + 1] {
            let (write, mut reader) = pair();
            let fds = vec![body.fd(); per_message];
            write.write_all_with(b"a", &fds).await.unwrap();
            write.write_all_with(b"b", &fds).await.unwrap();
            let mut got = Vec::new();
            let error = reader.read_to_end(&mut got).await.unwrap_err();
            assert!(error.to_string().contains("descriptors"), "{error}");
            assert!(
                reader.take_descriptor().is_none(),
                "the descriptors were kept"
            );
        }
    }
}
