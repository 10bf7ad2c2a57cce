//! A peer's outgoing queue: one byte buffer, bounded by `queue_bytes`,
//! that senders append whole frames to and a writer task drains.
//!
//! On an idle connection (nothing queued or being written, and nothing
//! written in the last moments) the sender writes its frame to the socket
//! itself, without waking the writer task: one thread hop less per
//! message (but never for a frame offered to several peers at once: each
//! of them alone looks idle). Otherwise the frame is queued, and the writer swaps the whole
//! buffer out and writes it at once, so a burst of small events becomes a
//! few large writes. The bound counts the
//! batch being written too, so a peer's queued bytes never exceed
//! `queue_bytes` (but for one oversized frame, sent alone).
//!
//! A body in shared memory counts against the bound with its full length
//! from when it is queued until the peer releases it (a RELEASED frame):
//! a peer that stops reading holds at most `queue_bytes` of them, as it
//! would of frames on the socket.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::carrier::Carrier;
use crate::shared_memory::SharedBody;

/// Bodies in shared memory a peer may hold unreleased at once: each is a
/// descriptor in its process, so their number is bounded as well as
/// their bytes (a peer's reader refuses more than twice this).
pub(crate) const MAX_UNRELEASED: usize = 32;

/// A frame this soon after the previous write means more frames are on
/// their way: queue and batch them. Slower than this, the connection is
/// idle and a frame goes straight out (a round trip between two processes
/// takes longer than this).
const BUSY_GAP: std::time::Duration = std::time::Duration::from_micros(30);

/// The queue is closed (the peer is gone or the endpoint stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// A control frame did not fit under the hard cap: the peer has not read
/// its replies for a long time, and the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// How far past `queue_bytes` control frames (replies the reader owes a
/// peer) may go before the peer counts as not reading.
const CONTROL_SLACK: usize = 64 * 1024;

/// What an announcement tells a peer; each has one slot in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    Subscriptions = 0,
    Groups = 1,
}

/// Why a frame was not queued without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TryPushError {
    Full,
    Closed,
}

struct Buffer {
    /// Frames and bytes queued so far, for introspection (counted here,
    /// under the lock every push takes anyway).
    sent_frames: u64,
    sent_bytes: u64,
    bytes: Vec<u8>,
    /// Frames in `bytes`.
    frames: usize,
    /// Bytes the writer took and is still writing.
    in_flight: usize,
    closed: bool,
    /// The first frame of the connection (our hello, server side), until
    /// written: ahead of everything.
    greeting: Vec<u8>,
    /// How many leading bytes of `bytes` finish a frame that was partly
    /// written through: control frames go after them, never inside.
    partial: usize,
    /// The latest announcement of each [`Topic`] not yet written: a newer one
    /// replaces it, so a peer that does not read costs one frame, not one
    /// per change. Written after the greeting, ahead of `bytes` (a
    /// subscription is never known later than a frame queued after it).
    announcements: [Vec<u8>; 2],
    /// When each pending announcement was made (by `changes`): they are
    /// written oldest first, so a peer applies changes of different
    /// topics in the order they happened.
    announced_at: [u64; 2],
    changes: u64,
    /// The carrier, for writing through while the queue is idle; dropped
    /// when the queue closes, so that only the writer task keeps it.
    carrier: Option<Arc<dyn Carrier>>,
    /// When bytes last went to the socket.
    last_write: Instant,
    /// The shared bodies of the frames in `bytes`: their descriptors go
    /// with the first bytes of the write that carries those frames.
    descriptors: Vec<Arc<SharedBody>>,
    /// The lengths of the shared bodies queued or sent and not yet
    /// released by the peer, oldest first, and their sum.
    unreleased: VecDeque<usize>,
    unreleased_bytes: usize,
}

impl Buffer {
    /// Everything that counts against the bound.
    fn queued(&self) -> usize {
        self.controls() + self.bytes.len() + self.in_flight + self.unreleased_bytes
    }

    /// The greeting and announcements waiting to be written.
    fn controls(&self) -> usize {
        let announced: usize = self.announcements.iter().map(Vec::len).sum();
        self.greeting.len() + announced
    }
}

/// The peer released a shared body it was never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NothingToRelease;

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
                sent_frames: 0,
                sent_bytes: 0,
                bytes: Vec::new(),
                frames: 0,
                in_flight: 0,
                closed: false,
                greeting: Vec::new(),
                partial: 0,
                announcements: [Vec::new(), Vec::new()],
                announced_at: [0; 2],
                changes: 0,
                carrier: None,
                // A new connection counts as idle.
                last_write: Instant::now()
                    .checked_sub(BUSY_GAP)
                    .unwrap_or_else(Instant::now),
                descriptors: Vec::new(),
                unreleased: VecDeque::new(),
                unreleased_bytes: 0,
            }),
            data: Notify::new(),
            space: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `frame` (standing for `shared`, if given) fits: always when
    /// nothing is queued, being written or unreleased (a frame larger than
    /// the bound is still sent, alone).
    fn fits(&self, buffer: &Buffer, frame: &[u8], shared: Option<&Arc<SharedBody>>) -> bool {
        let queued = buffer.queued();
        let weight = frame.len() + shared.map_or(0, |body| body.len());
        let countable = shared.is_none() || buffer.unreleased.len() < MAX_UNRELEASED;
        let idle = queued == 0 && buffer.unreleased.is_empty();
        idle || (countable && queued + weight <= self.limit)
    }

    /// Queues `frame`, or writes it to the socket at once when `through`
    /// allows and the connection is idle. A frame standing for a shared
    /// body is always queued: its descriptor goes with the writer's batch.
    fn append(
        &self,
        mut buffer: std::sync::MutexGuard<'_, Buffer>,
        frame: &[u8],
        through: bool,
        shared: Option<&Arc<SharedBody>>,
    ) {
        buffer.sent_frames += 1;
        buffer.sent_bytes += (frame.len() + shared.map_or(0, |body| body.len())) as u64;
        if let Some(body) = shared {
            buffer.descriptors.push(body.clone());
            buffer.unreleased.push_back(body.len());
            buffer.unreleased_bytes += body.len();
        }
        let mut rest = frame;
        let through = through && shared.is_none();
        let idle = through && buffer.queued() == 0 && buffer.last_write.elapsed() >= BUSY_GAP;
        if let Some(carrier) = buffer.carrier.as_ref().filter(|_| idle) {
            // Nothing is ahead of this frame, and holding the lock keeps the
            // writer from starting: the order is kept. What does not fit in
            // the socket (or an error) is left to the writer.
            if let Ok(written) = carrier.try_write(frame) {
                rest = &frame[written..];
                buffer.last_write = Instant::now();
                if written > 0 {
                    // The tail of a frame begun on the socket: nothing,
                    // not even a control frame, may go before it.
                    buffer.partial = rest.len();
                }
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

    /// Gives the queue its carrier, for writing through while idle.
    pub(crate) fn attach(&self, carrier: Arc<dyn Carrier>) {
        let mut buffer = self.lock();
        if !buffer.closed {
            buffer.carrier = Some(carrier);
        }
    }

    /// Queues `frame`, waiting for room.
    pub(crate) async fn push(&self, frame: &[u8]) -> Result<(), Closed> {
        self.push_either(frame, None).await
    }

    /// Queues `frame`, which stands for the shared body `body`, waiting
    /// for room.
    pub(crate) async fn push_shared(
        &self,
        frame: &[u8],
        body: &Arc<SharedBody>,
    ) -> Result<(), Closed> {
        self.push_either(frame, Some(body)).await
    }

    async fn push_either(
        &self,
        frame: &[u8],
        shared: Option<&Arc<SharedBody>>,
    ) -> Result<(), Closed> {
        loop {
            let room = self.space.notified();
            tokio::pin!(room);
            {
                let buffer = self.lock();
                if buffer.closed {
                    return Err(Closed);
                }
                if self.fits(&buffer, frame, shared) {
                    self.append(buffer, frame, true, shared);
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
        self.try_push_through(frame, true, None)
    }

    /// [`try_push`](Self::try_push), but never writing through: the writer
    /// task sends it. For a frame that goes to many peers at once: each
    /// peer alone looks idle (its frames come a fan-out apart), and writing
    /// through would cost the sender a write per frame per peer, where the
    /// writers batch.
    pub(crate) fn try_push_queued(&self, frame: &[u8]) -> Result<(), TryPushError> {
        self.try_push_through(frame, false, None)
    }

    /// [`try_push`](Self::try_push) of a frame standing for the shared
    /// body `body`.
    pub(crate) fn try_push_shared(
        &self,
        frame: &[u8],
        body: &Arc<SharedBody>,
    ) -> Result<(), TryPushError> {
        self.try_push_through(frame, false, Some(body))
    }

    fn try_push_through(
        &self,
        frame: &[u8],
        through: bool,
        shared: Option<&Arc<SharedBody>>,
    ) -> Result<(), TryPushError> {
        let buffer = self.lock();
        if buffer.closed {
            Err(TryPushError::Closed)
        } else if self.fits(&buffer, frame, shared) {
            self.append(buffer, frame, through, shared);
            Ok(())
        } else {
            Err(TryPushError::Full)
        }
    }

    /// Queues a small control frame ("request dropped", the first frame of
    /// a connection) that sync code cannot wait to send: past the bound if
    /// need be, but never past the hard cap of twice the bound plus
    /// [`CONTROL_SLACK`], so a peer that never reads cannot grow our memory.
    /// A closed queue takes it silently (the peer is gone anyway).
    pub(crate) fn push_control(&self, frame: &[u8]) -> Result<(), Overflow> {
        let buffer = self.lock();
        if buffer.closed {
            return Ok(());
        }
        if buffer.queued() + frame.len() > 2 * self.limit + CONTROL_SLACK {
            return Err(Overflow);
        }
        self.append(buffer, frame, true, None);
        Ok(())
    }

    /// The peer is done with the oldest shared body it was sent: it no
    /// longer counts against the bound. A release of nothing is the
    /// peer's lie.
    pub(crate) fn release(&self) -> Result<(), NothingToRelease> {
        let mut buffer = self.lock();
        let len = buffer.unreleased.pop_front().ok_or(NothingToRelease)?;
        buffer.unreleased_bytes -= len;
        drop(buffer);
        self.space.notify_waiters();
        Ok(())
    }

    /// Sets the first frame of the connection (before any other is queued).
    pub(crate) fn greet(&self, frame: &[u8]) {
        let mut buffer = self.lock();
        buffer.greeting = frame.to_vec();
        drop(buffer);
        self.data.notify_one();
    }

    /// Replaces the pending announcement of `topic` with `frame`: only
    /// the latest state matters, so at most one per topic is ever queued.
    pub(crate) fn announce(&self, topic: Topic, frame: &[u8]) {
        let mut buffer = self.lock();
        if buffer.closed {
            return;
        }
        buffer.changes += 1;
        buffer.announced_at[topic as usize] = buffer.changes;
        let slot = &mut buffer.announcements[topic as usize];
        slot.clear();
        slot.extend_from_slice(frame);
        drop(buffer);
        self.data.notify_one();
    }

    /// Frames and bytes queued so far (introspection).
    pub(crate) fn sent(&self) -> (u64, u64) {
        let buffer = self.lock();
        (buffer.sent_frames, buffer.sent_bytes)
    }

    /// Bytes queued or being written (tests of the bound, introspection).
    pub(crate) fn queued(&self) -> usize {
        self.lock().queued()
    }

    /// Refuses new frames; the writer sends what is queued, then ends.
    pub(crate) fn close(&self) {
        let carrier = {
            let mut buffer = self.lock();
            buffer.closed = true;
            buffer.carrier.take()
        };
        drop(carrier);
        self.data.notify_one();
        self.space.notify_waiters();
    }

    /// Writes queued frames until the queue is closed and drained, or a
    /// write fails; then shuts the write side down.
    pub(crate) async fn run_writer(&self, carrier: Arc<dyn Carrier>) {
        let mut batch = Vec::new();
        let mut shared = Vec::new();
        // Whether the connection is busy: the last write carried several
        // frames, or ended moments before this wake-up. Then waiting one
        // scheduler turn lets the tasks that are ready add their frames to
        // the next write. A lone frame on an idle connection goes at once.
        let mut busy = false;
        loop {
            let idle = {
                let mut buffer = self.lock();
                let controls = buffer.controls();
                if buffer.bytes.is_empty() && controls == 0 && buffer.closed {
                    break;
                }
                std::mem::swap(&mut buffer.bytes, &mut batch);
                std::mem::swap(&mut buffer.descriptors, &mut shared);
                let partial = std::mem::take(&mut buffer.partial);
                if controls > 0 {
                    // Ahead of the frames queued with them (but after the
                    // tail of a frame already begun): rare, so the shift
                    // does not matter.
                    let mut first = std::mem::take(&mut buffer.greeting);
                    let mut topics = [0, 1];
                    topics.sort_by_key(|&t| buffer.announced_at[t]);
                    for topic in topics {
                        first.append(&mut buffer.announcements[topic]);
                    }
                    batch.splice(partial..partial, first);
                    buffer.frames += 1;
                }
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
            let written = if shared.is_empty() {
                carrier.write_all(&batch).await
            } else {
                let fds: Vec<BorrowedFd<'_>> = shared.iter().map(|body| body.fd()).collect();
                carrier.write_all_with(&batch, &fds).await
            };
            // Sent (or failed): the peer holds its own descriptors now.
            shared.clear();
            if let Err(error) = written {
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
            // Give back memory once a burst of huge frames is over: while
            // they come, the batch keeps its size (shrinking after each
            // cost an allocation and its page faults per frame).
            if batch.capacity() > 2 * self.limit && batch.len() <= self.limit {
                batch.shrink_to(self.limit);
            }
            batch.clear();
        }
        carrier.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_with_one_oversized_frame_alone() {
        let queue = Outgoing::new(10);
        queue.try_push(&[0; 6]).unwrap();
        assert_eq!(queue.try_push(&[0; 6]), Err(TryPushError::Full));
        queue.push_control(&[1; 6]).unwrap(); // control frames pass
        let empty = Outgoing::new(10);
        empty.try_push(&[0; 50]).unwrap(); // larger than the bound, but alone
        assert_eq!(empty.try_push(&[0; 1]), Err(TryPushError::Full));
    }

    /// A peer that never reads: control frames stop at the hard cap, and
    /// however many subscription changes there are, one announcement waits.
    #[tokio::test]
    async fn control_frames_and_announcements_are_bounded() {
        let queue = Outgoing::new(1000);
        let mut accepted = 0;
        while queue.push_control(&[0; 22]).is_ok() {
            accepted += 1;
            assert!(accepted < 1_000_000, "no cap");
        }
        let cap = 2 * 1000 + CONTROL_SLACK;
        assert!(queue.queued() <= cap && queue.queued() + 22 > cap);
        let before = queue.queued();
        for n in 0..10_000u32 {
            queue.announce(Topic::Subscriptions, &n.to_le_bytes());
        }
        assert_eq!(queue.queued(), before + 4);
    }

    /// A body in shared memory counts with its whole length until the
    /// peer releases it, and only so many may be unreleased at once.
    #[tokio::test]
    async fn shared_bodies_count_against_the_bound_until_released() {
        let queue = Outgoing::new(1000);
        let body = Arc::new(SharedBody::new(&[1; 600]).unwrap());
        queue.try_push_shared(&[0; 30], &body).unwrap();
        assert_eq!(queue.queued(), 630);
        assert_eq!(
            queue.try_push_shared(&[0; 30], &body),
            Err(TryPushError::Full)
        );
        assert_eq!(queue.try_push(&[0; 400]), Err(TryPushError::Full));
        queue.release().unwrap();
        assert_eq!(queue.queued(), 30, "the stand-in is still queued");
        assert_eq!(queue.release(), Err(NothingToRelease));

        let many = Outgoing::new(1 << 20);
        let small = Arc::new(SharedBody::new(&[1; 10]).unwrap());
        for _ in 0..MAX_UNRELEASED {
            many.try_push_shared(&[0; 30], &small).unwrap();
        }
        let full = many.try_push_shared(&[0; 30], &small);
        assert_eq!(
            full,
            Err(TryPushError::Full),
            "more descriptors than a peer may hold"
        );
        many.try_push(&[0; 30]).unwrap();
        many.release().unwrap();
        many.try_push_shared(&[0; 30], &small).unwrap();
    }

    /// The writer sends a batch's descriptors with its bytes and lets go
    /// of its own references once written.
    #[tokio::test]
    async fn the_writer_sends_descriptors_with_the_batch() {
        let queue = Arc::new(Outgoing::new(1 << 20));
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = client.into_split();
        let body = Arc::new(SharedBody::new(b"in shared memory").unwrap());
        queue.try_push_shared(b"stand-in", &body).unwrap();
        queue.close();
        queue.run_writer(Arc::new(write)).await;
        assert_eq!(Arc::strong_count(&body), 1, "the writer kept the body");
        let mut bytes = [0; 16];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let mut iov = [std::io::IoSliceMut::new(&mut bytes)];
        let flags = rustix::net::RecvFlags::empty();
        let got = rustix::net::recvmsg(&server, &mut iov, &mut control, flags).unwrap();
        assert_eq!(&bytes[..got.bytes], b"stand-in");
        let fds: Vec<std::os::fd::OwnedFd> = control
            .drain()
            .flat_map(|message| match message {
                rustix::net::RecvAncillaryMessage::ScmRights(fds) => fds.collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(fds.len(), 1);
        let mapped = crate::shared_memory::Mapping::new(fds.into_iter().next().unwrap(), 16);
        assert_eq!(&mapped.unwrap()[..], b"in shared memory");
    }

    /// Counts what the sender wrote through, taking every byte offered.
    #[derive(Default)]
    struct Through(std::sync::atomic::AtomicUsize);

    impl Carrier for Through {
        fn write_all<'a>(&'a self, _: &'a [u8]) -> super::super::carrier::Writing<'a> {
            Box::pin(async { Ok(()) })
        }
        fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(bytes.len())
        }
        fn finish(&self) {}
    }

    /// On an idle connection a frame for this peer alone is written
    /// through; one offered to many peers at once waits for the writer.
    #[tokio::test]
    async fn only_a_frame_for_one_peer_is_written_through() {
        let through = Arc::new(Through::default());
        let queue = Outgoing::new(1024);
        queue.attach(through.clone());
        queue.try_push_queued(&[1; 8]).unwrap();
        assert_eq!(through.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(queue.queued(), 8);
        let idle = Outgoing::new(1024);
        idle.attach(through.clone());
        idle.try_push(&[1; 8]).unwrap();
        assert_eq!(through.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(idle.queued(), 0);
    }

    #[tokio::test]
    async fn the_greeting_then_the_latest_announcement_go_first() {
        let queue = Arc::new(Outgoing::new(64));
        let (client, mut server) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = client.into_split();
        let write = Arc::new(write);
        queue.push(&[9]).await.unwrap();
        queue.announce(Topic::Subscriptions, &[1]);
        queue.greet(&[7]);
        queue.announce(Topic::Groups, &[3]);
        // Replaces [1], and is now the newer of the two: it goes second.
        queue.announce(Topic::Subscriptions, &[2]);
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_writer(write).await }
        });
        queue.close();
        writer.await.unwrap();
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .unwrap();
        assert_eq!(received, vec![7, 3, 2, 9]);
    }

    /// A large frame written through in part: an announcement made before
    /// the writer sends the rest goes after that frame, not inside it.
    #[tokio::test]
    async fn an_announcement_never_splits_a_partly_written_frame() {
        let queue = Arc::new(Outgoing::new(1 << 20));
        let (client, mut server) = tokio::net::UnixStream::pair().unwrap();
        let (_read, write) = client.into_split();
        let write = Arc::new(write);
        queue.attach(write.clone());
        let frame: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        queue.push(&frame).await.unwrap(); // the socket takes only a part
        assert!(queue.queued() > 0, "the socket took all of it");
        queue.announce(Topic::Subscriptions, b"ANNOUNCEMENT");
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.run_writer(write).await }
        });
        let mut received = Vec::new();
        let reading = tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received);
        let (read, ()) = tokio::join!(reading, async {
            queue.close();
            writer.await.unwrap();
        });
        read.unwrap();
        assert_eq!(received.len(), frame.len() + 12);
        assert!(received[..frame.len()] == frame[..], "the frame was split");
        assert_eq!(&received[frame.len()..], b"ANNOUNCEMENT");
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

    /// A medium of whole messages that cannot write without waiting (as a
    /// zenoh publisher would be): nothing is written through, every frame
    /// reaches it through the writer, in order, after the greeting and
    /// announcements, and the end is signalled once.
    #[tokio::test]
    async fn a_carrier_that_never_writes_through_gets_every_frame_from_the_writer() {
        use std::sync::Mutex;

        #[derive(Default)]
        struct Messages {
            batches: Mutex<Vec<Vec<u8>>>,
            finished: std::sync::atomic::AtomicUsize,
        }
        impl Carrier for Messages {
            fn write_all<'a>(&'a self, batch: &'a [u8]) -> super::super::carrier::Writing<'a> {
                self.batches.lock().unwrap().push(batch.to_vec());
                Box::pin(std::future::ready(Ok(())))
            }
            fn try_write(&self, _: &[u8]) -> std::io::Result<usize> {
                Ok(0)
            }
            fn finish(&self) {
                self.finished
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }

        let queue = Arc::new(Outgoing::new(1 << 16));
        let messages = Arc::new(Messages::default());
        queue.attach(messages.clone());
        queue.push(&[1, 1]).await.unwrap();
        queue.try_push(&[2, 2]).unwrap();
        queue.greet(&[0]);
        queue.announce(Topic::Subscriptions, &[9]);
        queue.close();
        queue.run_writer(messages.clone()).await;
        let written: Vec<u8> = messages.batches.lock().unwrap().concat();
        assert_eq!(written, [0, 9, 1, 1, 2, 2]);
        assert_eq!(
            messages.finished.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }
}
