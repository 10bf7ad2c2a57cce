//! The bus core: one endpoint's tables (local sinks, peers, requests in
//! flight) and everything that acts on them. Shared by the endpoint's
//! clones, streams, guards and transport tasks.
//!
//! [`router`] decides who receives what; the other files carry out one
//! concern each: [`subscribers`], [`peers`], [`groups`], what peers are
//! told ([`announcements`]), [`requests`], [`delivery`], [`inbound`]
//! frames, [`lifecycle`] and [`waits`]. The core knows peers
//! only as [`Link`](crate::link::Link)s and never imports a transport.
//!
//! Locks are never held across an `.await`, and nothing that can run user
//! code (a callback, a dropped handler) is dropped while the lock is held.

mod announcements;
mod counters;
mod delivery;
mod gather;
mod groups;
mod id_map;
mod inbound;
mod lifecycle;
mod peers;
mod report;
mod requests;
mod router;
mod subscribers;
mod taps;
mod waits;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

pub(crate) use gather::Gathering;
pub(crate) use lifecycle::{Service, Stopping};
pub(crate) use peers::{Greeting, PeerInfo};
pub(crate) use requests::Ticket;
pub(crate) use subscribers::{Delivery, Offer, Sink, SinkGuard, SinkKind, WaitForRoom};
pub(crate) use taps::{Copied, TAP_BODY_MAX, TapHandle};
pub(crate) use waits::Condition;

use crate::wire::Limits;
use crate::{EndpointOptions, Error, RequestId};
use id_map::IdMap;
use peers::PeerTable;
use requests::Pending;
use router::RemoteRoutes;
use subscribers::SinkTable;

/// The tables, behind the core's one lock.
pub(crate) struct State {
    sinks: SinkTable,
    peers: PeerTable,
    /// Who subscribes to what among `peers`: cleared whenever they change.
    remote_routes: RemoteRoutes,
    pending: IdMap<RequestId, Pending>,
    /// The groups this endpoint belongs to.
    groups: BTreeSet<String>,
    /// Counts changes of what peers know of us (subscribed IDs, groups):
    /// a frame encoded outside the lock is queued only if nothing changed
    /// since it was read.
    version: u64,
}

/// A kind of change that waits can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A peer connected or disconnected (which changes subscriptions too).
    Connections,
    /// Some endpoint's subscriptions or groups changed.
    Subscriptions,
}

/// One endpoint's core.
pub(crate) struct Core {
    pub(crate) name: Arc<str>,
    pub(crate) options: EndpointOptions,
    pub(crate) runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    /// Cleared once, under the state lock, when the endpoint stops.
    running: AtomicBool,
    next_request: AtomicU64,
    next_sink: AtomicU64,
    services: Mutex<Vec<Box<dyn Service>>>,
    /// The latest refusal of each refused peer (see [`Core::refuse`]).
    refusals: Mutex<std::collections::VecDeque<(String, String)>>,
    /// Traffic per event type, for introspection.
    pub(crate) counters: counters::Counters,
    /// When the endpoint started.
    started: std::time::SystemTime,
    /// Observers being served (see `transport::observer`).
    pub(crate) observers: std::sync::atomic::AtomicUsize,
    /// Copies of traffic for observers (see [`taps`]).
    taps: taps::Taps,
    connections_changed: watch::Sender<()>,
    subscriptions_changed: watch::Sender<()>,
}

impl Core {
    pub(crate) fn new(name: Arc<str>, options: EndpointOptions) -> Arc<Self> {
        let groups = options.groups.iter().cloned().collect();
        Arc::new(Core {
            name,
            options,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State {
                sinks: IdMap::default(),
                peers: PeerTable::new(),
                remote_routes: RemoteRoutes::default(),
                pending: IdMap::default(),
                groups,
                version: 0,
            }),
            running: AtomicBool::new(true),
            // A random start: a requester restarted under the same name
            // never reuses the IDs of its previous life, so a late answer
            // to an old request cannot complete a new one.
            next_request: AtomicU64::new(random_u64()),
            next_sink: AtomicU64::new(0),
            services: Mutex::new(Vec::new()),
            refusals: Mutex::new(std::collections::VecDeque::new()),
            counters: counters::Counters::new(),
            started: std::time::SystemTime::now(),
            observers: std::sync::atomic::AtomicUsize::new(0),
            taps: taps::Taps::default(),
            connections_changed: watch::Sender::new(()),
            subscriptions_changed: watch::Sender::new(()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (user code runs
        // outside it), so poisoning can only come from a bug; carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn services(&self) -> MutexGuard<'_, Vec<Box<dyn Service>>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// The error of an operation refused because the endpoint stopped.
    pub(crate) fn lifecycle(&self, reason: &'static str) -> Error {
        Error::Lifecycle {
            endpoint: self.name.to_string(),
            reason,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            compress_above: self.options.compress_above,
            max_frame: self.options.max_frame_bytes,
        }
    }

    fn signal_sender(&self, signal: Signal) -> &watch::Sender<()> {
        match signal {
            Signal::Connections => &self.connections_changed,
            Signal::Subscriptions => &self.subscriptions_changed,
        }
    }

    /// Wakes the waits for `signal`.
    fn signal(&self, signal: Signal) {
        if signal == Signal::Connections {
            self.connections_changed.send_replace(());
        }
        self.subscriptions_changed.send_replace(());
    }
}

/// 64 random bits, from the randomly keyed hasher of the standard library
/// (no extra dependency for one number per endpoint).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests;
