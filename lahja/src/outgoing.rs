//! A peer's outgoing queue: one byte buffer, bounded by `queue_bytes`,
//! that senders append whole frames to and a writer task drains.
//!
//! On an idle connection (nothing queued or being written, and nothing
//! written in the last moments) the sender writes its frame to the socket
//! itself, without waking the writer task: one thread hop less per
//! message. Otherwise the frame is queued, and the writer swaps the whole
//! buffer out and writes it at once, so a burst of small events becomes a
//! few large writes. The bound counts the
//! batch being written too, so a peer's queued bytes never exceed
//! `queue_bytes` (but for one oversized frame, sent alone).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

/// A frame this soon after the previous write means more frames are on
/// their way: queue and batch them. Slower than this, the connection is
/// idle and a frame goes straight out (a round trip between two processes
/// takes longer than this).
const BUSY_GAP: std::time::Duration = std::time::Duration::from_micros(30);

/// The queue is closed (the peer is gone or the endpoint stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Why a frame was not queued without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryPushError {
    Full,
    Closed,
}

struct Buffer {
    bytes: Vec<u8>,
    /// Frames in `bytes`.
    frames: usize,
    /// Bytes the writer took and is still writing.
    in_flight: usize,
    closed: bool,
    /// The socket, for writing through while the queue is idle; dropped
    /// when the queue closes, so that only the writer task keeps it.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// When bytes last went to the socket.
    last_write: Instant,
}

pub(crate) struct Outgoing {
    buffer: Mutex<Buffer>,
    /// Wakes the writer: there is data, or the queue closed.
    data: Notify,
    /// Wakes senders waiting for room.
    space: Notify,
    limit: usize,
}

impl Outgoing {
    pub(crate) fn new(limit: usize) -> Self {
        Outgoing {
            buffer: Mutex::new(Buffer {
                bytes: Vec::new(),
                frames: 0,
                in_flight: 0,
                closed: false,
                socket: None,
                // A new connection counts as idle.
                last_write: Instant::now()
                    .checked_sub(BUSY_GAP)
                    .unwrap_or_else(Instant::now),
            }),
            data: Notify::new(),
            space: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `frame` fits: always when nothing is queued or being
    /// written (a frame larger than the bound is still sent, alone).
    fn fits(&self, buffer: &Buffer, frame: &[u8]) -> bool {
        let queued = buffer.bytes.len() + buffer.in_flight;
        queued == 0 || queued + frame.len() <= self.limit
    }

    fn append(&self, mut buffer: std::sync::MutexGuard<'_, Buffer>, frame: &[u8]) {
        let mut rest = frame;
        let idle = buffer.bytes.is_empty()
            && buffer.in_flight == 0
            && buffer.last_write.elapsed() >= BUSY_GAP;
        if let Some(socket) = buffer.socket.as_ref().filter(|_| idle) {
            // Nothing is ahead of this frame, and holding the lock keeps the
            // writer from starting: the order is kept. What does not fit in
            // the socket (or an error) is left to the writer.
            if let Ok(written) = socket.try_write(frame) {
                rest = &frame[written..];
                buffer.last_write = Instant::now();
            }
        }
        if rest.is_empty() {
            return;
        }
        buffer.bytes.extend_from_slice(rest);
        buffer.frames += 1;
        drop(buffer);
        self.data.notify_one();
    }

    /// Gives the queue its socket, for writing through while idle.
    pub(crate) fn attach(&self, socket: Arc<OwnedWriteHalf>) {
        let mut buffer = self.lock();
        if !buffer.closed {
            buffer.socket = Some(socket);
        }
    }

    /// Queues `frame`, waiting for room.
    pub(crate) async fn push(&self, frame: &[u8]) -> Result<(), Closed> {
        loop {
            let room = self.space.notified();
            tokio::pin!(room);
            {
                let buffer = self.lock();
                if buffer.closed {
                    return Err(Closed);
                }
                if self.fits(&buffer, frame) {
                    self.append(buffer, frame);
                    return Ok(());
                }
                // Registered before the lock is released: no wake-up is missed.
                room.as_mut().enable();
            }
            room.await;
        }
    }

    /// Queues `frame` if there is room.
    pub(crate) fn try_push(&self, frame: &[u8]) -> Result<(), TryPushError> {
        let buffer = self.lock();
        if buffer.closed {
            Err(TryPushError::Closed)
        } else if self.fits(&buffer, frame) {
            self.append(buffer, frame);
            Ok(())
        } else {
            Err(TryPushError::Full)
        }
    }

    /// Queues a small control frame past the bound (subscription updates,
    /// "request dropped"): these must not be lost nor wait in sync code.
    pub(crate) fn force_push(&self, frame: &[u8]) {
        let buffer = self.lock();
        if !buffer.closed {
            self.append(buffer, frame);
        }
    }

    /// Refuses new frames; the writer sends what is queued, then ends.
    pub(crate) fn close(&self) {
        let socket = {
            let mut buffer = self.lock();
            buffer.closed = true;
            buffer.socket.take()
        };
        drop(socket);
        self.data.notify_one();
        self.space.notify_waiters();
    }

    /// Writes queued frames until the queue is closed and drained, or a
    /// write fails; then shuts the write side down.
    pub(crate) async fn run_writer(&self, socket: Arc<OwnedWriteHalf>) {
        let mut batch = Vec::new();
        // Whether the connection is busy: the last write carried several
        // frames, or ended moments before this wake-up. Then waiting one
        // scheduler turn lets the tasks that are ready add their frames to
        // the next write. A lone frame on an idle connection goes at once.
        let mut busy = false;
        loop {
            let idle = {
                let mut buffer = self.lock();
                if buffer.bytes.is_empty() && buffer.closed {
                    break;
                }
                std::mem::swap(&mut buffer.bytes, &mut batch);
                buffer.in_flight = batch.len();
                if !batch.is_empty() {
                    busy = buffer.frames > 1;
                }
                buffer.frames = 0;
                batch.is_empty()
            };
            if idle {
                // A push after the check above left a permit: no lost wake-up.
                self.data.notified().await;
                let recent = self.lock().last_write.elapsed() < BUSY_GAP;
                if busy || recent {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            if let Err(error) = write_all(&socket, &batch).await {
                tracing::debug!(%error, "write failed; closing the outgoing queue");
                self.close();
                break;
            }
            {
                let mut buffer = self.lock();
                buffer.in_flight = 0;
                buffer.last_write = Instant::now();
            }
            self.space.notify_waiters();
            batch.clear();
            // Give back memory after a burst of huge frames.
            if batch.capacity() > 2 * self.limit {
                batch.shrink_to(self.limit);
            }
        }
        // The peer sees the end of the stream even while other holders of
        // the connection keep the descriptor open.
        let stream: &tokio::net::UnixStream = (*socket).as_ref();
        // SAFETY: the descriptor stays open while `socket` lives.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    }
}

/// Writes all of `bytes`, waiting for the socket to take them.
async fn write_all(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_with_one_oversized_frame_alone() {
        let queue = Outgoing::new(10);
        queue.try_push(&[0; 6]).unwrap();
        assert_eq!(queue.try_push(&[0; 6]), Err(TryPushError::Full));
        queue.force_push(&[1; 6]); // control frames pass
        let empty = Outgoing::new(10);
        empty.try_push(&[0; 50]).unwrap(); // larger than the bound, but alone
        assert_eq!(empty.try_push(&[0; 1]), Err(TryPushError::Full));
    }

    #[tokio::test]
    async fn the_writer_drains_in_order_then_ends_when_closed() {
        let queue = Arc::new(Outgoing::new(4));
        let (client, mut server) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = client.into_split();
        let write = Arc::new(write);
        // Queued before the socket is attached: goes through the writer.
        queue.push(&[100]).await.unwrap();
        queue.attach(write.clone());
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_writer(write).await }
        });
        for n in 0..20u8 {
            queue.push(&[n, n]).await.unwrap();
        }
        queue.close();
        assert_eq!(queue.push(&[0]).await, Err(Closed));
        writer.await.unwrap();
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .unwrap();
        let expected: Vec<u8> = std::iter::once(100)
            .chain((0..20u8).flat_map(|n| [n, n]))
            .collect();
        assert_eq!(received, expected);
    }

    #[tokio::test]
    async fn an_idle_queue_writes_through_without_the_writer() {
        let queue = Outgoing::new(1024);
        let (client, mut server) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = client.into_split();
        queue.attach(Arc::new(write));
        queue.push(&[1, 2, 3]).await.unwrap(); // no writer task runs at all
        let mut received = [0; 3];
        let read = tokio::io::AsyncReadExt::read_exact(&mut server, &mut received);
        tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("the frame was not written through")
            .unwrap();
        assert_eq!(received, [1, 2, 3]);
        assert!(queue.lock().bytes.is_empty());
    }
}
