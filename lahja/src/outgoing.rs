//! A peer's outgoing queue: one byte buffer, bounded by `queue_bytes`,
//! that senders append whole frames to and a writer task drains.
//!
//! The writer swaps the whole buffer out and writes it with one
//! `write_all`, so a burst of small events becomes a few large writes while
//! a single event on an idle connection is written at once. The bound
//! counts the batch being written too, so a peer's queued bytes never
//! exceed `queue_bytes` (but for one oversized frame, sent alone).

use std::sync::Mutex;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// A wake-up this soon after the previous write means more frames are on
/// their way (a round trip between processes takes longer than this).
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
        buffer.bytes.extend_from_slice(frame);
        buffer.frames += 1;
        drop(buffer);
        self.data.notify_one();
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
        self.lock().closed = true;
        self.data.notify_one();
        self.space.notify_waiters();
    }

    /// Writes queued frames until the queue is closed and drained, or a
    /// write fails; then shuts the write side down.
    pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(&self, mut writer: W) {
        let mut batch = Vec::new();
        // Whether the connection is busy: the last write carried several
        // frames, or ended moments before this wake-up. Then waiting one
        // scheduler turn lets the tasks that are ready add their frames to
        // the next write. A lone frame on an idle connection goes at once.
        let mut busy = false;
        let mut last_write = tokio::time::Instant::now();
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
                if busy || last_write.elapsed() < BUSY_GAP {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            if let Err(error) = writer.write_all(&batch).await {
                tracing::debug!(%error, "write failed; closing the outgoing queue");
                self.close();
                break;
            }
            self.lock().in_flight = 0;
            last_write = tokio::time::Instant::now();
            self.space.notify_waiters();
            batch.clear();
            // Give back memory after a burst of huge frames.
            if batch.capacity() > 2 * self.limit {
                batch.shrink_to(self.limit);
            }
        }
        let _ = writer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
        let (client, mut server) = tokio::io::duplex(1024);
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_writer(client).await }
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
        let expected: Vec<u8> = (0..20u8).flat_map(|n| [n, n]).collect();
        assert_eq!(received, expected);
    }
}
