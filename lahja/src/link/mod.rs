//! What a connected peer is to the bus: a [`Link`], a name with a bounded
//! outgoing queue of encoded frames, the [`Carrier`](carrier::Carrier) its writer puts them
//! on, and the transport [`Session`] that owns the connection.
//!
//! The bus never sees sockets: it offers frames to links and closes them.
//! Every frame the bus sends to peers passes through [`offer_all`] or a
//! link's own methods, which is where a transport with a fan-out medium of
//! its own (one publish reaching every subscriber, see
//! `docs/ARCHITECTURE.md`) plugs in.

mod carrier;
mod outgoing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

#[cfg(any(test, feature = "zenoh"))]
pub(crate) use carrier::Carrier;
#[cfg(feature = "zenoh")]
pub(crate) use carrier::Writing;
pub(crate) use outgoing::{Closed, MAX_UNRELEASED, Outgoing, Overflow, Topic, TryPushError};

use crate::shared_memory::SharedBody;

/// The transport's side of a link: what it takes to stop one.
pub(crate) trait Session: Send + Sync {
    /// Closes the connection at once; whatever is queued is discarded.
    fn abort(&self);
    /// Waits (until `deadline`) for the queue, already closed, to be
    /// written out, then closes the write side.
    fn finish(&self, deadline: tokio::time::Instant) -> Finishing<'_>;
}

/// The future of [`Session::finish`].
pub(crate) type Finishing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One connected peer.
pub(crate) struct Link {
    pub(crate) name: Arc<str>,
    queue: Outgoing,
    session: Arc<dyn Session>,
    /// Warnings logged about this peer so far.
    warnings: AtomicU32,
    /// Traffic with this peer, for introspection.
    pub(crate) traffic: Traffic,
    /// When the link was made.
    pub(crate) since: std::time::SystemTime,
    /// Whether large bodies may go to this peer in shared memory: its
    /// medium passes descriptors (a local socket) and this endpoint's
    /// `shared_memory_above` is set.
    pub(crate) shares_memory: bool,
}

/// Frames and bytes received on one link, for introspection. Only the
/// link's one reader writes them (a load and a store, no atomic
/// read-modify-write on the hot path); what is sent is counted by the
/// queue, under the lock each push takes anyway.
#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
}

impl Traffic {
    /// A frame of `bytes` came in (called by the link's reader only).
    pub(crate) fn inbound(&self, bytes: usize) {
        let add =
            |n: &AtomicU64, by: u64| n.store(n.load(Ordering::Relaxed) + by, Ordering::Relaxed);
        add(&self.frames_in, 1);
        add(&self.bytes_in, bytes as u64);
    }
}

/// Whether to log one more warning about a peer.
pub(crate) enum Warning {
    Log,
    /// The last one logged; say that more are suppressed.
    Last,
    Quiet,
}

/// Warnings logged per link before the rest go to `debug`.
const WARNINGS_PER_LINK: u32 = 8;

impl Link {
    /// A link whose medium cannot pass descriptors (zenoh, tests).
    #[cfg(any(test, feature = "zenoh"))]
    pub(crate) fn new(name: Arc<str>, queue_bytes: usize, session: Arc<dyn Session>) -> Arc<Self> {
        Self::sharing(name, queue_bytes, session, false)
    }

    /// A link to which bodies may go in shared memory when `shares_memory`.
    pub(crate) fn sharing(
        name: Arc<str>,
        queue_bytes: usize,
        session: Arc<dyn Session>,
        shares_memory: bool,
    ) -> Arc<Self> {
        Arc::new(Link {
            name,
            queue: Outgoing::new(queue_bytes),
            session,
            warnings: AtomicU32::new(0),
            traffic: Traffic::default(),
            since: std::time::SystemTime::now(),
            shares_memory,
        })
    }

    /// What this link is sent of `frame`: its stand-in, where the body
    /// is in shared memory and this peer takes that.
    fn shared<'a>(&self, shared: Option<&'a Shared>) -> Option<&'a Shared> {
        shared.filter(|_| self.shares_memory)
    }

    /// The queue, for the transport's writer.
    pub(crate) fn queue(&self) -> &Outgoing {
        &self.queue
    }

    /// Counts a warning about this peer: a hostile peer cannot flood the log.
    pub(crate) fn warning(&self) -> Warning {
        match self.warnings.fetch_add(1, Ordering::Relaxed) {
            n if n < WARNINGS_PER_LINK - 1 => Warning::Log,
            n if n == WARNINGS_PER_LINK - 1 => Warning::Last,
            _ => Warning::Quiet,
        }
    }

    /// Queues `frame` if there is room.
    pub(crate) fn offer(&self, frame: &[u8]) -> Result<(), TryPushError> {
        self.queue.try_push(frame)
    }

    /// [`offer`](Self::offer) as one of many peers: queued for the writer,
    /// never written through (see [`Outgoing::try_push_queued`]).
    pub(crate) fn offer_queued(&self, frame: &[u8]) -> Result<(), TryPushError> {
        self.queue.try_push_queued(frame)
    }

    /// [`offer`](Self::offer), or the stand-in of `shared` where this
    /// peer takes bodies in shared memory.
    pub(crate) fn offer_either(
        &self,
        frame: &[u8],
        shared: Option<&Shared>,
    ) -> Result<(), TryPushError> {
        match self.shared(shared) {
            Some(shared) => self.queue.try_push_shared(&shared.stand_in, &shared.body),
            None => self.queue.try_push(frame),
        }
    }

    /// Queues `frame` (or the stand-in of `shared`, where this peer takes
    /// bodies in shared memory), waiting for room.
    pub(crate) async fn send(&self, frame: &[u8], shared: Option<&Shared>) -> Result<(), Closed> {
        match self.shared(shared) {
            Some(shared) => self.queue.push_shared(&shared.stand_in, &shared.body).await,
            None => self.queue.push(frame).await,
        }
    }

    /// Queues a small control frame past the bound, up to a hard cap.
    pub(crate) fn send_control(&self, frame: &[u8]) -> Result<(), Overflow> {
        self.queue.push_control(frame)
    }

    /// Sets the first frame of the connection.
    pub(crate) fn greet(&self, frame: &[u8]) {
        self.queue.greet(frame)
    }

    /// Replaces the pending announcement of `topic` with `frame`.
    pub(crate) fn announce(&self, topic: Topic, frame: &[u8]) {
        self.queue.announce(topic, frame)
    }

    /// Refuses new frames; what is queued is still written.
    pub(crate) fn close(&self) {
        self.queue.close();
    }

    /// Closes the connection at once: queued frames are discarded.
    pub(crate) fn abort(&self) {
        self.queue.close();
        self.session.abort();
    }

    /// Sends what is queued (waiting at most `patience`), then closes the
    /// write side; the transport reads on until the peer closes or `abort`.
    pub(crate) async fn flush(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        self.queue.close();
        self.session.finish(deadline).await;
    }
}

/// A frame whose body went into shared memory: the frame that stands for
/// it, and the body.
pub(crate) struct Shared {
    pub(crate) stand_in: Vec<u8>,
    pub(crate) body: Arc<SharedBody>,
}

/// What offering one frame to several links left to do.
#[derive(Default)]
pub(crate) struct Offered {
    /// Links whose queue was full: they still have to get the frame.
    pub(crate) full: Vec<Arc<Link>>,
    /// Links whose queue is closed.
    pub(crate) closed: Vec<Arc<str>>,
}

/// Offers one encoded frame to every link in `links` without waiting;
/// those that take bodies in shared memory get the stand-in of `shared`
/// instead, when given.
///
/// A socket link takes its own copy; a fan-out medium would send once for
/// the whole set here.
pub(crate) fn offer_all(frame: &[u8], shared: Option<&Shared>, links: &[Arc<Link>]) -> Offered {
    let mut offered = Offered::default();
    let fan_out = links.len() > 1;
    for link in links {
        let offer = match (link.shared(shared), fan_out) {
            (Some(shared), _) => link.queue.try_push_shared(&shared.stand_in, &shared.body),
            (None, true) => link.offer_queued(frame),
            (None, false) => link.offer(frame),
        };
        match offer {
            Ok(()) => {}
            Err(TryPushError::Full) => offered.full.push(link.clone()),
            Err(TryPushError::Closed) => offered.closed.push(link.name.clone()),
        }
    }
    offered
}

/// A session with nothing behind it, for unit tests of the layers above.
#[cfg(test)]
pub(crate) struct Unconnected;

#[cfg(test)]
impl Session for Unconnected {
    fn abort(&self) {}
    fn finish(&self, _: tokio::time::Instant) -> Finishing<'_> {
        Box::pin(std::future::ready(()))
    }
}
