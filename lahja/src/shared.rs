//! The state of one endpoint shared by its clones, streams and tasks, and
//! the routing decision: who receives an event.
//!
//! Locks are never held across an `.await`, and nothing that can run user
//! code (a callback, a dropped handler) is dropped while the lock is held.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, watch};

use crate::request::{GaveUp, Outcome, Pending, Reply, Ticket};
use crate::sink::{Delivery, Offer, Sink};
use crate::{BroadcastConfig, EndpointOptions, Error, Event, EventId, RequestId, Result};

/// One local subscriber of one event ID.
#[derive(Clone)]
pub(crate) struct SinkEntry {
    key: u64,
    sink: Arc<dyn Sink>,
}

/// Who receives one broadcast.
pub(crate) struct Route {
    /// This endpoint's sinks for the ID, if it receives the event.
    local: Option<Arc<[SinkEntry]>>,
}

impl Route {
    fn is_empty(&self) -> bool {
        self.local.is_none()
    }

    pub(crate) fn reaches_self(&self) -> bool {
        self.local.is_some()
    }
}

pub(crate) struct State {
    running: bool,
    /// Local subscriptions; a present key always has at least one sink.
    /// Copy-on-write so a broadcast takes its targets with one `Arc` clone.
    sinks: HashMap<EventId, Arc<[SinkEntry]>>,
    pending: HashMap<RequestId, Pending>,
}

impl State {
    pub(crate) fn subscribed_ids(&self) -> HashSet<EventId> {
        self.sinks.keys().copied().collect()
    }

    pub(crate) fn is_subscribed(&self, id: EventId) -> bool {
        self.sinks.contains_key(&id)
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) options: EndpointOptions,
    pub(crate) runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    running: AtomicBool,
    next_request: AtomicU64,
    next_sink: AtomicU64,
    pub(crate) connections_changed: watch::Sender<()>,
    pub(crate) subscriptions_changed: watch::Sender<()>,
}

impl Shared {
    pub(crate) fn new(name: Arc<str>, options: EndpointOptions) -> Arc<Self> {
        Arc::new(Shared {
            name,
            options,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State {
                running: true,
                sinks: HashMap::new(),
                pending: HashMap::new(),
            }),
            running: AtomicBool::new(true),
            next_request: AtomicU64::new(0),
            next_sink: AtomicU64::new(0),
            connections_changed: watch::Sender::new(()),
            subscriptions_changed: watch::Sender::new(()),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (user code runs
        // outside it), so poisoning can only come from a bug; carry on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub(crate) fn lifecycle(&self, reason: &'static str) -> Error {
        Error::Lifecycle {
            endpoint: self.name.to_string(),
            reason,
        }
    }

    /// The routing decision for an event of `id` (wire name `name`),
    /// including the `NoSubscribers` rule.
    pub(crate) fn route(
        &self,
        id: EventId,
        name: &'static str,
        config: &BroadcastConfig,
    ) -> Result<Route> {
        let state = self.state();
        if !state.running {
            return Err(self.lifecycle("cannot broadcast"));
        }
        let to_self = config
            .filter_endpoint
            .as_deref()
            .is_none_or(|target| target == &*self.name);
        let route = Route {
            local: to_self.then(|| state.sinks.get(&id).cloned()).flatten(),
        };
        if config.require_subscriber && route.is_empty() {
            return Err(Error::NoSubscribers { event: name });
        }
        Ok(route)
    }

    /// Delivers to every target, waiting for room in full streams.
    pub(crate) async fn deliver<E: Event>(
        &self,
        route: &Route,
        event: &E,
        ticket: Option<&Arc<Ticket>>,
    ) {
        if let Some(sinks) = &route.local {
            let delivery = Delivery {
                origin: &self.name,
                event,
                ticket,
            };
            for entry in sinks.iter() {
                if let Offer::Full = entry.sink.try_deliver(&delivery) {
                    entry.sink.deliver(&delivery).await;
                }
            }
        }
    }

    /// Delivers to every target with room; names the first full one.
    pub(crate) fn deliver_nowait<E: Event>(&self, route: &Route, event: &E) -> Result<()> {
        let mut full = None;
        if let Some(sinks) = &route.local {
            let delivery = Delivery {
                origin: &self.name,
                event,
                ticket: None,
            };
            for entry in sinks.iter() {
                if let Offer::Full = entry.sink.try_deliver(&delivery) {
                    full.get_or_insert_with(|| self.name.to_string());
                }
            }
        }
        match full {
            Some(endpoint) => Err(Error::QueueFull { endpoint }),
            None => Ok(()),
        }
    }

    /// Adds a local subscriber; on a stopped endpoint the sink is dropped at
    /// once (so its stream ends).
    pub(crate) fn add_sink(self: &Arc<Self>, id: EventId, sink: Arc<dyn Sink>) -> SinkGuard {
        let key = self.next_sink.fetch_add(1, Ordering::Relaxed);
        let previous = {
            let mut state = self.state();
            if !state.running {
                None
            } else {
                let entry = SinkEntry { key, sink };
                let list = match state.sinks.get(&id) {
                    Some(list) => list.iter().cloned().chain([entry]).collect(),
                    None => Arc::from([entry]),
                };
                Some(state.sinks.insert(id, list))
            }
        };
        if previous.is_some() {
            self.subscriptions_changed.send_replace(());
        }
        SinkGuard {
            shared: self.clone(),
            id,
            key,
            detached: false,
        }
    }

    fn remove_sink(&self, id: EventId, key: u64) {
        // Hold what is removed until the lock is released: dropping a sink
        // can run user code (a callback's captures).
        let removed = {
            let mut state = self.state();
            let Some(list) = state.sinks.get(&id) else {
                return;
            };
            let kept: Arc<[SinkEntry]> = list.iter().filter(|e| e.key != key).cloned().collect();
            if kept.len() == list.len() {
                return;
            }
            if kept.is_empty() {
                state.sinks.remove(&id)
            } else {
                state.sinks.insert(id, kept)
            }
        };
        drop(removed);
        self.subscriptions_changed.send_replace(());
    }

    /// Registers a request to `targets`; the guard forgets it when dropped.
    pub(crate) fn register_request(
        self: &Arc<Self>,
        targets: HashSet<Arc<str>>,
    ) -> (RequestId, oneshot::Receiver<Outcome>, PendingGuard) {
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.state().pending.insert(
            id,
            Pending {
                tx,
                targets,
                any_dropped: false,
            },
        );
        let guard = PendingGuard {
            shared: self.clone(),
            id,
        };
        (id, rx, guard)
    }

    /// The targets a request on `route` waits for.
    pub(crate) fn targets(&self, route: &Route) -> HashSet<Arc<str>> {
        route
            .reaches_self()
            .then(|| self.name.clone())
            .into_iter()
            .collect()
    }

    /// Routes a response to the requester's pending entry, never to
    /// ordinary subscribers. `requester` `None` means "whoever sent it".
    pub(crate) fn send_response<E: Event>(
        &self,
        response: E,
        requester: Option<&str>,
        request: RequestId,
    ) -> Result<()> {
        if !self.is_running() {
            return Err(self.lifecycle("cannot respond"));
        }
        if requester.is_none_or(|name| name == &*self.name) {
            let reply = Reply {
                event_id: E::ID,
                value: Box::new(response),
            };
            self.complete(request, &self.name, Outcome::Reply(reply));
        } else {
            tracing::debug!(
                endpoint = %self.name,
                requester = ?requester,
                "discarding a response to an endpoint that is not connected"
            );
        }
        Ok(())
    }

    /// Completes a pending request with an answer from `from`, if `from` is
    /// one of the endpoints it was sent to; anything else is discarded.
    fn complete(&self, id: RequestId, from: &str, outcome: Outcome) {
        let pending = {
            let mut state = self.state();
            match state.pending.get(&id) {
                Some(p) if p.targets.contains(from) => state.pending.remove(&id),
                _ => None,
            }
        };
        match pending {
            Some(pending) => {
                let _ = pending.tx.send(outcome);
            }
            None => tracing::debug!(
                endpoint = %self.name,
                ?id,
                from,
                "discarding a response: already answered, cancelled, or never sent there"
            ),
        }
    }

    /// A local ticket for a request from `requester` was dropped unanswered.
    pub(crate) fn request_dropped(&self, requester: &str, id: RequestId) {
        if requester == &*self.name {
            let from = self.name.clone();
            self.target_gave_up(id, &from, GaveUp::Dropped);
        }
    }

    /// Target `from` will not answer request `id`; fail it when no target is left.
    pub(crate) fn target_gave_up(&self, id: RequestId, from: &Arc<str>, how: GaveUp) {
        let finished = {
            let mut state = self.state();
            let Some(pending) = state.pending.get_mut(&id) else {
                return;
            };
            if !pending.targets.remove(from) {
                return;
            }
            pending.any_dropped |= how == GaveUp::Dropped;
            if pending.targets.is_empty() {
                state.pending.remove(&id)
            } else {
                None
            }
        };
        if let Some(pending) = finished {
            let outcome = if pending.any_dropped {
                Outcome::Dropped
            } else {
                Outcome::Disconnected(from.clone())
            };
            let _ = pending.tx.send(outcome);
        }
    }

    /// Waits until `condition` holds, re-checking on every `signal`.
    pub(crate) async fn wait_until(
        &self,
        signal: &watch::Sender<()>,
        mut condition: impl FnMut(&State) -> bool + Send,
    ) -> Result<()> {
        let mut changes = signal.subscribe();
        loop {
            {
                let state = self.state();
                if !state.running {
                    return Err(self.lifecycle("stopped while waiting"));
                }
                if condition(&state) {
                    return Ok(());
                }
            }
            // The sender lives as long as `self`, so this cannot fail.
            let _ = changes.changed().await;
        }
    }

    /// Waits for the next `signal`.
    pub(crate) async fn wait_next(&self, signal: &watch::Sender<()>) -> Result<()> {
        let mut changes = signal.subscribe();
        if !self.is_running() {
            return Err(self.lifecycle("stopped while waiting"));
        }
        let _ = changes.changed().await;
        if !self.is_running() {
            return Err(self.lifecycle("stopped while waiting"));
        }
        Ok(())
    }

    /// Stops: ends every stream, fails every pending request, wakes every
    /// wait. Idempotent.
    pub(crate) fn shutdown(&self) {
        let (sinks, pending) = {
            let mut state = self.state();
            if !state.running {
                return;
            }
            state.running = false;
            self.running.store(false, Ordering::Release);
            (
                std::mem::take(&mut state.sinks),
                std::mem::take(&mut state.pending),
            )
        };
        for (_, pending) in pending {
            let _ = pending.tx.send(Outcome::Stopped);
        }
        drop(sinks);
        self.connections_changed.send_replace(());
        self.subscriptions_changed.send_replace(());
    }
}

/// Removes a local subscriber when dropped (unless detached).
pub(crate) struct SinkGuard {
    shared: Arc<Shared>,
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
            self.shared.remove_sink(self.id, self.key);
        }
    }
}

/// Forgets a pending request when its `request()` future ends or is dropped.
pub(crate) struct PendingGuard {
    shared: Arc<Shared>,
    id: RequestId,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let removed = self.shared.state().pending.remove(&self.id);
        drop(removed);
    }
}
