//! Local subscribers: the untyped [`Sink`] interface that typed streams,
//! callbacks and request handlers implement, and the table of them.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::announcements::News;
use super::id_map::IdMap;
use super::requests::Ticket;
use super::{Core, Signal, State};
use crate::{EventId, Result};

/// One event offered to the sinks of its ID.
pub(crate) struct Delivery<'a> {
    /// The name of the endpoint that sent it.
    pub(crate) origin: &'a Arc<str>,
    /// The event, of the sink's type (the router matched the ID).
    pub(crate) event: &'a (dyn Any + Send + Sync),
    /// Set when the event is a request made with `request()`.
    pub(crate) ticket: Option<&'a Arc<Ticket>>,
}

/// The outcome of offering an event without waiting.
pub(crate) enum Offer {
    Delivered,
    /// The sink's buffer is full; [`Sink::deliver`] would wait for room.
    Full,
}

/// The future of [`Sink::deliver`].
pub(crate) type WaitForRoom<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What a sink takes (the router decides with [`takes`](super::router::takes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    /// Every event of its type: streams, callbacks, `wait_for`.
    Events,
    /// Only requests that can be answered: `stream_requests`, `handle_requests`.
    Requests,
}

/// A local subscriber of one event type, made by a typed call.
pub(crate) trait Sink: Send + Sync {
    /// Decodes a body of this sink's type (once per frame, for all sinks).
    fn decode(&self, body: &[u8]) -> Result<Box<dyn Any + Send + Sync>>;
    /// Delivers if there is room; never waits.
    fn try_deliver(&self, delivery: &Delivery<'_>) -> Offer;
    /// Delivers, waiting for room (the slow path, after `Full`).
    fn deliver<'a>(&'a self, delivery: &'a Delivery<'a>) -> WaitForRoom<'a>;
    /// For a frame of an event this sink alone receives: decodes `body`
    /// and delivers the event itself, neither boxed nor cloned. `None`
    /// where the sink has no such path (then [`decode`](Self::decode) and
    /// the offers above are used); else `Ok(None)` once delivered, or the
    /// wait for room, which owns the event.
    fn decode_and_deliver<'a>(
        &'a self,
        _origin: &'a Arc<str>,
        _body: &[u8],
    ) -> Option<Result<Option<WaitForRoom<'a>>>> {
        None
    }
}

/// One local subscriber of one event ID.
#[derive(Clone)]
pub(crate) struct SinkEntry {
    pub(crate) key: u64,
    pub(crate) kind: SinkKind,
    pub(crate) sink: Arc<dyn Sink>,
}

/// Local subscriptions; a present key always has at least one sink.
/// Copy-on-write, so a broadcast takes its targets with one `Arc` clone.
pub(crate) type SinkTable = IdMap<EventId, Arc<[SinkEntry]>>;

impl Core {
    /// Adds a local subscriber; on a stopped endpoint the sink is dropped
    /// at once (so its stream ends).
    pub(crate) fn add_sink(
        self: &Arc<Self>,
        id: EventId,
        kind: SinkKind,
        sink: Arc<dyn Sink>,
    ) -> SinkGuard {
        let key = self.next_sink.fetch_add(1, Ordering::Relaxed);
        let entry = SinkEntry { key, kind, sink };
        let news = |state: &State| {
            let new_id = self.is_running() && !state.sinks.contains_key(&id);
            new_id.then(|| {
                News::Subscriptions(state.wire_ids().into_iter().chain([id.as_u64()]).collect())
            })
        };
        // The list replaced, dropped after the lock; `None` once stopped.
        let replaced = self.change_announced(news, |state| {
            if !self.is_running() {
                return None;
            }
            let list: Arc<[SinkEntry]> = match state.sinks.get(&id) {
                Some(list) => list.iter().cloned().chain([entry]).collect(),
                None => Arc::from([entry]),
            };
            Some(state.sinks.insert(id, list))
        });
        if replaced.is_some() {
            self.signal(Signal::Subscriptions);
        }
        SinkGuard {
            core: self.clone(),
            id,
            key,
            detached: false,
        }
    }

    fn remove_sink(&self, id: EventId, key: u64) {
        let news = |state: &State| {
            let last = state
                .sinks
                .get(&id)
                .is_some_and(|list| list.len() == 1 && list[0].key == key);
            last.then(|| {
                let gone = id.as_u64();
                let kept = state.wire_ids().into_iter().filter(|&i| i != gone);
                News::Subscriptions(kept.collect())
            })
        };
        // Held until the lock is released: dropping a sink can run user
        // code (a callback's captures).
        let removed = self.change_announced(news, |state| {
            let list = state.sinks.get(&id)?;
            let kept: Arc<[SinkEntry]> = list.iter().filter(|e| e.key != key).cloned().collect();
            if kept.len() == list.len() {
                None
            } else if kept.is_empty() {
                state.sinks.remove(&id)
            } else {
                state.sinks.insert(id, kept)
            }
        });
        if removed.is_some() {
            drop(removed);
            self.signal(Signal::Subscriptions);
        }
    }
}

/// Removes a local subscriber when dropped (unless detached).
pub(crate) struct SinkGuard {
    core: Arc<Core>,
    id: EventId,
    key: u64,
    detached: bool,
}

impl SinkGuard {
    /// Keeps the subscriber for the endpoint's lifetime.
    pub(crate) fn detach(mut self) {
        self.detached = true;
    }

    pub(crate) fn event_id(&self) -> EventId {
        self.id
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        if !self.detached {
            self.core.remove_sink(self.id, self.key);
        }
    }
}
