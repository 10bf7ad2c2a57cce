//! One zenoh peer's link: its queue's batches are published on the
//! peer's directed key with `CongestionControl::Block`, so a peer that
//! does not keep up slows the writer (and, through the bounded queue,
//! `broadcast`) instead of losing frames.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::bus::Core;
use crate::link::{Carrier, Finishing, Link, Session, Writing};

/// Our publisher on `lahja/<bus>/to/<peer>/from/<us>`.
pub(super) struct Outbox(pub(super) ::zenoh::pubsub::Publisher<'static>);

impl Outbox {
    /// Publishes `bytes` (whole frames). zenoh's put waits for room
    /// synchronously (up to `wait_before_close`): in place, so the
    /// runtime's other tasks move to another thread meanwhile.
    pub(super) fn put(&self, bytes: &[u8]) -> io::Result<()> {
        let put = || ::zenoh::Wait::wait(self.0.put(bytes.to_vec()));
        tokio::task::block_in_place(put).map_err(io::Error::other)
    }
}

impl Carrier for Outbox {
    fn write_all<'a>(&'a self, batch: &'a [u8]) -> Writing<'a> {
        Box::pin(async move { self.put(batch) })
    }

    /// A put may wait (Block): every batch goes through the writer task.
    fn try_write(&self, _: &[u8]) -> io::Result<usize> {
        Ok(0)
    }

    /// The peer learns that we are gone from our liveliness token.
    fn finish(&self) {}
}

/// The writer task of a zenoh link. Frames from the peer come in on the
/// endpoint's inbox, not through the session: it only says whether the
/// link was aborted, so the inbox stops handing its frames to the core.
#[derive(Default)]
pub(super) struct ZenohSession {
    writer: Mutex<Option<JoinHandle<()>>>,
    aborted: AtomicBool,
}

impl ZenohSession {
    /// Starts writing the queue of `link`, already registered, to `outbox`.
    pub(super) fn start(&self, core: &Core, link: &Arc<Link>, outbox: Arc<Outbox>) {
        let writer = core.runtime.spawn({
            let link = link.clone();
            async move { link.queue().run_writer(outbox).await }
        });
        *self.writer() = Some(writer);
        if self.is_aborted() {
            self.abort();
        }
    }

    /// Whether the link was closed: its frames are not the core's any more.
    pub(super) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Session for ZenohSession {
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        if let Some(writer) = self.writer().take() {
            writer.abort();
        }
    }

    fn finish(&self, deadline: tokio::time::Instant) -> Finishing<'_> {
        Box::pin(async move {
            let writer = self.writer().take();
            if let Some(writer) = writer {
                let _ = tokio::time::timeout_at(deadline, writer).await;
            }
        })
    }
}
