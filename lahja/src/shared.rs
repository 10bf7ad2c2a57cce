//! The state of one endpoint shared by its clones, streams and tasks, and
//! the routing decision: who receives an event, local or remote.
//!
//! Locks are never held across an `.await`, and nothing that can run user
//! code (a callback, a dropped handler) is dropped while the lock is held.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use crate::connection::{Connection, Warning};
use crate::id_map::IdMap;
use crate::listener::SocketFile;
use crate::outgoing::TryPushError;
use crate::request::{GaveUp, Outcome, Pending, Reply, ReplyValue, Ticket};
use crate::scratch;
use crate::sink::{Delivery, Offer, Sink};
use crate::wire::{self, Frame, Hello, Kind, Limits, Violation};
use crate::{BroadcastConfig, EndpointOptions, Error, Event, EventId, RequestId, Result, registry};

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
    /// The peers that receive it.
    remote: Vec<Arc<Connection>>,
}

impl Route {
    fn is_empty(&self) -> bool {
        self.local.is_none() && self.remote.is_empty()
    }

    pub(crate) fn reaches_self(&self) -> bool {
        self.local.is_some()
    }
}

/// What offering a frame to the remote targets left to do.
#[derive(Default)]
struct Offered {
    /// Peers whose queue was full, with the frame they still have to get.
    blocked: Option<Blocked>,
    /// Peers whose connection is closed.
    closed: Vec<Arc<str>>,
}

/// Peers whose queue was full, and the frame they still have to get.
struct Blocked {
    frame: Vec<u8>,
    peers: Vec<Arc<Connection>>,
}

/// What this endpoint knows of one connected peer.
struct PeerEntry {
    connection: Arc<Connection>,
    subscriptions: HashSet<EventId>,
}

pub(crate) struct State {
    running: bool,
    name: Arc<str>,
    /// Local subscriptions; a present key always has at least one sink.
    /// Copy-on-write so a broadcast takes its targets with one `Arc` clone.
    sinks: IdMap<EventId, Arc<[SinkEntry]>>,
    peers: HashMap<Arc<str>, PeerEntry>,
    pending: IdMap<RequestId, Pending>,
}

impl State {
    pub(crate) fn subscribed_ids(&self) -> HashSet<EventId> {
        self.sinks.keys().copied().collect()
    }

    pub(crate) fn is_connected(&self, name: &str) -> bool {
        name == &*self.name || self.peers.contains_key(name)
    }

    pub(crate) fn is_endpoint_subscribed(&self, name: &str, id: EventId) -> bool {
        if name == &*self.name {
            self.sinks.contains_key(&id)
        } else {
            self.peers
                .get(name)
                .is_some_and(|peer| peer.subscriptions.contains(&id))
        }
    }

    pub(crate) fn is_any_subscribed(&self, id: EventId) -> bool {
        self.sinks.contains_key(&id) || self.peers.values().any(|p| p.subscriptions.contains(&id))
    }

    pub(crate) fn are_all_subscribed(&self, id: EventId, include_self: bool) -> bool {
        (!include_self || self.sinks.contains_key(&id))
            && self.peers.values().all(|p| p.subscriptions.contains(&id))
    }

    /// This endpoint first, then its peers by name.
    pub(crate) fn connected(&self) -> Vec<(String, HashSet<EventId>)> {
        let mut peers: Vec<_> = self
            .peers
            .iter()
            .map(|(name, peer)| (name.to_string(), peer.subscriptions.clone()))
            .collect();
        peers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut all = vec![(self.name.to_string(), self.subscribed_ids())];
        all.extend(peers);
        all
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Queues our subscription set to every peer (under the state lock, so
    /// peers see the updates in the order the set changed); a newer set
    /// replaces one not yet sent.
    fn announce_subscriptions(&self, limits: Limits) {
        if self.peers.is_empty() {
            return;
        }
        let Some(frame) = subscriptions_frame(&self.sinks, limits) else {
            return;
        };
        for peer in self.peers.values() {
            peer.connection.outgoing.announce(&frame);
        }
    }

    /// Our hello: name, registry table and current subscriptions.
    fn hello(&self) -> Hello {
        Hello {
            name: self.name.to_string(),
            events: registry::all()
                .map(|i| (i.id.as_u64(), i.schema, registry::format_of(i.id)))
                .collect(),
            subscriptions: self.sinks.keys().map(|id| id.as_u64()).collect(),
        }
    }

    /// Forgets a peer and closes its queue in one step under the lock, so
    /// that a request routed to it meanwhile meets a closed queue (and
    /// fails at once) instead of queueing to a connection nobody reads.
    fn remove_peer_entry(&mut self, connection: &Arc<Connection>) -> bool {
        let current = self
            .peers
            .get(&connection.name)
            .is_some_and(|p| Arc::ptr_eq(&p.connection, connection));
        if current {
            self.peers.remove(&connection.name);
            connection.outgoing.close();
        }
        current
    }
}

/// Our subscription set as a frame; `None` (logged) only if it is over the
/// control-frame limit (some 100,000 subscribed types).
fn subscriptions_frame(
    sinks: &IdMap<EventId, Arc<[SinkEntry]>>,
    limits: Limits,
) -> Option<Vec<u8>> {
    let ids: Vec<u64> = sinks.keys().map(|id| id.as_u64()).collect();
    let mut frame = Vec::new();
    let zero = EventId::from_u64(0);
    match wire::append_encoded(&mut frame, Kind::Subscriptions, zero, 0, limits, &ids) {
        Ok(()) => Some(frame),
        Err(error) => {
            tracing::warn!(%error, "cannot announce our subscriptions; peers keep the previous set");
            None
        }
    }
}

/// The listener of a serving endpoint.
struct Serving {
    accept_task: AbortHandle,
    socket: SocketFile,
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) options: EndpointOptions,
    pub(crate) runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    running: AtomicBool,
    next_request: AtomicU64,
    next_sink: AtomicU64,
    serving: Mutex<Option<Serving>>,
    pub(crate) connections_changed: watch::Sender<()>,
    pub(crate) subscriptions_changed: watch::Sender<()>,
}

impl Shared {
    pub(crate) fn new(name: Arc<str>, options: EndpointOptions) -> Arc<Self> {
        Arc::new(Shared {
            name: name.clone(),
            options,
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State {
                running: true,
                name,
                sinks: IdMap::default(),
                peers: HashMap::new(),
                pending: IdMap::default(),
            }),
            running: AtomicBool::new(true),
            // A random start: a requester restarted under the same name
            // never reuses the IDs of its previous life, so a late answer
            // to an old request cannot complete a new one.
            next_request: AtomicU64::new(random_u64()),
            next_sink: AtomicU64::new(0),
            serving: Mutex::new(None),
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

    fn serving(&self) -> MutexGuard<'_, Option<Serving>> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.is_running() && self.serving().is_some()
    }

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

    /// Starts accepting connections on a bound socket.
    pub(crate) fn start_serving(self: &Arc<Self>, bound: crate::listener::Bound) -> Result<()> {
        let listener = tokio::net::UnixListener::from_std(bound.listener)?;
        let task = self
            .runtime
            .spawn(crate::listener::accept_loop(self.clone(), listener));
        *self.serving() = Some(Serving {
            accept_task: task.abort_handle(),
            socket: bound.socket,
        });
        Ok(())
    }

    /// Our hello: name, registry table and current subscriptions.
    pub(crate) fn hello(&self) -> Hello {
        self.state().hello()
    }

    // ----- routing and delivery -----------------------------------------

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
        let allowed = |endpoint: &str| {
            config
                .filter_endpoint
                .as_deref()
                .is_none_or(|t| t == endpoint)
        };
        let local = allowed(&self.name)
            .then(|| state.sinks.get(&id).cloned())
            .flatten();
        let remote = if config.internal {
            Vec::new()
        } else {
            state
                .peers
                .iter()
                .filter(|(peer, entry)| allowed(peer) && entry.subscriptions.contains(&id))
                .map(|(_, entry)| entry.connection.clone())
                .collect()
        };
        let route = Route { local, remote };
        if config.require_subscriber && route.is_empty() {
            return Err(Error::NoSubscribers { event: name });
        }
        Ok(route)
    }

    /// Encodes `event` once and offers the frame to every remote target
    /// without waiting; an event that cannot be encoded reaches nobody.
    fn offer_to_peers<E: Event>(
        &self,
        route: &Route,
        event: &E,
        kind: Kind,
        request_id: u64,
    ) -> Result<Offered> {
        if route.remote.is_empty() {
            return Ok(Offered::default());
        }
        scratch::with_encoded(
            |out| wire::append_encoded(out, kind, E::ID, request_id, self.limits(), event),
            |frame| {
                let mut offered = Offered::default();
                let mut full = Vec::new();
                for peer in &route.remote {
                    match peer.outgoing.try_push(frame) {
                        Ok(()) => {}
                        Err(TryPushError::Full) => full.push(peer.clone()),
                        Err(TryPushError::Closed) => offered.closed.push(peer.name.clone()),
                    }
                }
                if !full.is_empty() {
                    offered.blocked = Some(Blocked {
                        frame: frame.to_vec(),
                        peers: full,
                    });
                }
                offered
            },
        )
    }

    /// Delivers to every target: the peers' queues, then local sinks,
    /// waiting for room where a queue or stream is full.
    pub(crate) async fn deliver<E: Event>(
        &self,
        route: &Route,
        event: &E,
        ticket: Option<&Arc<Ticket>>,
        request: Option<RequestId>,
    ) -> Result<()> {
        let kind = if request.is_some() {
            Kind::Request
        } else {
            Kind::Event
        };
        let offered = self.offer_to_peers(route, event, kind, request.map_or(0, |r| r.0))?;
        let mut gone = offered.closed;
        if let Some(sinks) = &route.local {
            deliver_local(sinks, &self.name, event, ticket).await;
        }
        if let Some(blocked) = offered.blocked {
            for peer in blocked.peers {
                if peer.outgoing.push(&blocked.frame).await.is_err() {
                    gone.push(peer.name.clone());
                }
            }
        }
        // A peer that went away is skipped. Its reader fails the requests
        // waiting on it, but it may have done so before this request was
        // registered: a request that met a closed queue says so itself.
        if let Some(request) = request {
            for peer in gone {
                self.target_gave_up(request, &peer, GaveUp::Disconnected);
            }
        }
        Ok(())
    }

    /// Delivers to every target with room; names the first full one.
    pub(crate) fn deliver_nowait<E: Event>(&self, route: &Route, event: &E) -> Result<()> {
        let offered = self.offer_to_peers(route, event, Kind::Event, 0)?;
        let mut full = offered
            .blocked
            .map(|blocked| blocked.peers[0].name.to_string());
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

    // ----- local subscriptions ------------------------------------------

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
                let (list, new_id): (Arc<[SinkEntry]>, bool) = match state.sinks.get(&id) {
                    Some(list) => (list.iter().cloned().chain([entry]).collect(), false),
                    None => (Arc::from([entry]), true),
                };
                let previous = state.sinks.insert(id, list);
                if new_id {
                    state.announce_subscriptions(self.limits());
                }
                Some(previous)
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
                let removed = state.sinks.remove(&id);
                state.announce_subscriptions(self.limits());
                removed
            } else {
                state.sinks.insert(id, kept)
            }
        };
        drop(removed);
        self.subscriptions_changed.send_replace(());
    }

    // ----- peers --------------------------------------------------------

    /// Adds a peer after a successful handshake. The first frame it gets
    /// is our hello (server side) or our current subscriptions (client
    /// side, in case they changed since our hello), queued under the lock
    /// so no later subscription change can overtake it.
    pub(crate) fn register_peer(
        &self,
        connection: &Arc<Connection>,
        subscriptions: &[u64],
        send_hello: bool,
    ) -> std::result::Result<(), String> {
        {
            let mut state = self.state();
            if !state.running {
                return Err("the endpoint is stopping".into());
            }
            if *connection.name == *self.name {
                return Err("an endpoint cannot connect to itself".into());
            }
            if state.peers.contains_key(&connection.name) {
                return Err(format!("`{}` is already connected", connection.name));
            }
            if send_hello {
                let mut frame = Vec::new();
                wire::append_hello(&mut frame, &state.hello(), self.limits())
                    .map_err(|e| e.to_string())?;
                connection.outgoing.greet(&frame);
            } else {
                if let Some(frame) = subscriptions_frame(&state.sinks, self.limits()) {
                    connection.outgoing.announce(&frame);
                }
            }
            state.peers.insert(
                connection.name.clone(),
                PeerEntry {
                    connection: connection.clone(),
                    subscriptions: subscriptions
                        .iter()
                        .map(|&id| EventId::from_u64(id))
                        .collect(),
                },
            );
        }
        tracing::debug!(endpoint = %self.name, peer = %connection.name, "connected");
        self.connections_changed.send_replace(());
        self.subscriptions_changed.send_replace(());
        Ok(())
    }

    /// Forgets a peer whose connection ended: its subscriptions go, and its
    /// pending requests fail once no other target can answer.
    pub(crate) fn remove_peer(&self, connection: &Arc<Connection>) {
        let waiting_on_it: Vec<RequestId> = {
            let mut state = self.state();
            if !state.remove_peer_entry(connection) {
                return;
            }
            state
                .pending
                .iter()
                .filter(|(_, p)| p.targets.contains(&connection.name))
                .map(|(id, _)| *id)
                .collect()
        };
        connection.abort();
        for id in waiting_on_it {
            self.target_gave_up(id, &connection.name, GaveUp::Disconnected);
        }
        self.connections_changed.send_replace(());
        self.subscriptions_changed.send_replace(());
    }

    fn peer(&self, name: &str) -> Option<Arc<Connection>> {
        self.state().peers.get(name).map(|p| p.connection.clone())
    }

    /// Handles one frame from `connection`; an error closes the connection.
    pub(crate) async fn handle_frame(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        frame: Frame<'_>,
    ) -> std::result::Result<(), Violation> {
        let max = self.options.max_frame_bytes;
        match frame.kind {
            Kind::Event | Kind::Request => {
                let sinks = self.state().sinks.get(&frame.event_id).cloned();
                let is_request = frame.kind == Kind::Request;
                let Some(sinks) = sinks else {
                    self.unrouted(connection, &frame);
                    if is_request {
                        // Nobody here can answer: say so at once.
                        self.send_dropped(connection, RequestId(frame.request_id));
                    }
                    return Ok(());
                };
                let body = wire::body(&frame, max)?;
                let event = sinks[0].sink.decode(&body).map_err(|e| {
                    Violation::BadBody(format!("{}: {e}", registry::describe(frame.event_id)))
                })?;
                let ticket = is_request
                    .then(|| Ticket::remote(RequestId(frame.request_id), connection, self));
                deliver_local(&sinks, &connection.name, &*event, ticket.as_ref()).await;
            }
            Kind::Response => {
                let body = wire::body(&frame, max)?.into_owned();
                let reply = Reply {
                    event_id: frame.event_id,
                    value: ReplyValue::Remote(body),
                };
                self.complete(
                    RequestId(frame.request_id),
                    &connection.name,
                    Outcome::Reply(reply),
                );
            }
            Kind::Dropped => {
                self.target_gave_up(
                    RequestId(frame.request_id),
                    &connection.name,
                    GaveUp::Dropped,
                );
            }
            Kind::Subscriptions => {
                let body = wire::body(&frame, max)?;
                let ids: Vec<u64> =
                    crate::codec::decode(&body).map_err(|e| Violation::BadBody(e.to_string()))?;
                {
                    let mut state = self.state();
                    match state.peers.get_mut(&connection.name) {
                        Some(peer) if Arc::ptr_eq(&peer.connection, connection) => {
                            peer.subscriptions = ids.into_iter().map(EventId::from_u64).collect();
                        }
                        _ => return Ok(()),
                    }
                }
                self.subscriptions_changed.send_replace(());
            }
            Kind::Hello | Kind::Reject => return Err(Violation::Unexpected(frame.kind)),
        }
        Ok(())
    }

    /// A well-formed event nobody here subscribes to: dropped. Unknown IDs
    /// are worth a warning (a few per connection: a hostile peer cannot
    /// flood the log); known ones just raced an unsubscribe.
    fn unrouted(&self, connection: &Connection, frame: &Frame<'_>) {
        if registry::lookup(frame.event_id).is_none() {
            match connection.warning() {
                Warning::Log => tracing::warn!(
                    endpoint = %self.name,
                    peer = %connection.name,
                    id = %frame.event_id,
                    "dropping an event with an unknown id"
                ),
                Warning::Last => tracing::warn!(
                    endpoint = %self.name,
                    peer = %connection.name,
                    id = %frame.event_id,
                    "dropping an event with an unknown id; further warnings about this peer are suppressed"
                ),
                Warning::Quiet => tracing::debug!(
                    endpoint = %self.name,
                    peer = %connection.name,
                    id = %frame.event_id,
                    "dropping an event with an unknown id"
                ),
            }
        } else {
            tracing::debug!(
                endpoint = %self.name,
                peer = %connection.name,
                event = %registry::describe(frame.event_id),
                "dropping an event nobody here subscribes to"
            );
        }
    }

    // ----- requests -----------------------------------------------------

    /// Registers a request to `targets`; the guard forgets it when dropped.
    pub(crate) fn register_request(
        self: &Arc<Self>,
        route: &Route,
    ) -> (RequestId, oneshot::Receiver<Outcome>, PendingGuard) {
        // fetch_add wraps: starting anywhere is fine.
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let mut targets = Vec::with_capacity(route.remote.len() + 1);
        if route.reaches_self() {
            targets.push(self.name.clone());
        }
        targets.extend(route.remote.iter().map(|peer| peer.name.clone()));
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

    /// Where a response goes: completed here at once for a local
    /// requester; the requester's connection for a remote one (none if
    /// it is not connected).
    fn response_target<E: Event>(
        &self,
        response: E,
        requester: Option<&str>,
        request: RequestId,
    ) -> Result<Option<(Arc<Connection>, E)>> {
        if !self.is_running() {
            return Err(self.lifecycle("cannot respond"));
        }
        let requester = requester.unwrap_or(&self.name);
        if requester == &*self.name {
            let reply = Reply {
                event_id: E::ID,
                value: ReplyValue::Local(Box::new(response)),
            };
            self.complete(request, &self.name, Outcome::Reply(reply));
            return Ok(None);
        }
        match self.peer(requester) {
            Some(peer) => Ok(Some((peer, response))),
            None => {
                tracing::debug!(endpoint = %self.name, requester, "discarding a response: the requester is not connected");
                Ok(None)
            }
        }
    }

    /// Sends a response, waiting for room in the requester's queue.
    pub(crate) async fn send_response<E: Event>(
        &self,
        response: E,
        requester: Option<&str>,
        request: RequestId,
    ) -> Result<()> {
        match self.response_target(response, requester, request)? {
            None => Ok(()),
            Some((peer, response)) => self.send_response_via(&peer, &response, request).await,
        }
    }

    /// Encodes a response and offers it to `peer` without waiting;
    /// returns the frame if the queue was full.
    fn offer_response<E: Event>(
        &self,
        peer: &Connection,
        response: &E,
        request: RequestId,
    ) -> Result<Option<Vec<u8>>> {
        let frame = scratch::with_encoded(
            |out| {
                wire::append_encoded(
                    out,
                    Kind::Response,
                    E::ID,
                    request.0,
                    self.limits(),
                    response,
                )
            },
            |frame| match peer.outgoing.try_push(frame) {
                Ok(()) => Ok(None),
                Err(TryPushError::Full) => Ok(Some(frame.to_vec())),
                Err(TryPushError::Closed) => Err(()),
            },
        )?;
        frame.map_err(|()| Error::RemoteDisconnected {
            endpoint: peer.name.to_string(),
        })
    }

    /// Sends a response over `peer`'s connection, waiting for room.
    pub(crate) async fn send_response_via<E: Event>(
        &self,
        peer: &Connection,
        response: &E,
        request: RequestId,
    ) -> Result<()> {
        match self.offer_response(peer, response, request)? {
            None => Ok(()),
            Some(frame) => {
                peer.outgoing
                    .push(&frame)
                    .await
                    .map_err(|_| Error::RemoteDisconnected {
                        endpoint: peer.name.to_string(),
                    })
            }
        }
    }

    /// Sends a response without waiting: a full queue is `QueueFull`.
    pub(crate) fn send_response_nowait<E: Event>(
        &self,
        response: E,
        requester: Option<&str>,
        request: RequestId,
    ) -> Result<()> {
        let Some((peer, response)) = self.response_target(response, requester, request)? else {
            return Ok(());
        };
        match self.offer_response(&peer, &response, request)? {
            None => Ok(()),
            Some(_) => Err(Error::QueueFull {
                endpoint: peer.name.to_string(),
            }),
        }
    }

    /// Completes a pending request with an answer from `from`, if `from` is
    /// one of the endpoints it was sent to; anything else is discarded.
    fn complete(&self, id: RequestId, from: &str, outcome: Outcome) {
        let pending = {
            let mut state = self.state();
            match state.pending.get(&id) {
                Some(p) if p.targets.iter().any(|t| **t == *from) => state.pending.remove(&id),
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

    /// A ticket for a request from this endpoint was dropped unanswered.
    pub(crate) fn request_dropped_here(&self, id: RequestId) {
        let from = self.name.clone();
        self.target_gave_up(id, &from, GaveUp::Dropped);
    }

    /// Tells `peer` that this endpoint will not answer its request `id`.
    /// A peer that let these replies pile up past the hard cap is not
    /// reading: its connection is closed (memory stays bounded).
    pub(crate) fn send_dropped(&self, peer: &Arc<Connection>, id: RequestId) {
        let mut frame = Vec::new();
        let built = wire::append_frame(
            &mut frame,
            Kind::Dropped,
            EventId::from_u64(0),
            id.0,
            self.limits(),
            |_| Ok(()),
        );
        if built.is_ok() && peer.outgoing.push_control(&frame).is_err() {
            tracing::warn!(
                endpoint = %self.name,
                peer = %peer.name,
                "closing the connection: the peer does not read its replies"
            );
            self.remove_peer(peer);
        }
    }

    /// Target `from` will not answer request `id`; fail it when no target is left.
    pub(crate) fn target_gave_up(&self, id: RequestId, from: &Arc<str>, how: GaveUp) {
        let finished = {
            let mut state = self.state();
            let Some(pending) = state.pending.get_mut(&id) else {
                return;
            };
            let Some(index) = pending.targets.iter().position(|t| t == from) else {
                return;
            };
            pending.targets.swap_remove(index);
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

    // ----- waiting ------------------------------------------------------

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

    // ----- stopping -----------------------------------------------------

    /// Sends what is queued to every peer (waiting at most `patience`).
    pub(crate) async fn flush_peers(&self, patience: Duration) {
        let peers: Vec<_> = self
            .state()
            .peers
            .values()
            .map(|p| p.connection.clone())
            .collect();
        // All at once: stalled peers share one patience, not one each.
        let mut flushes = tokio::task::JoinSet::new();
        for peer in peers {
            flushes.spawn_on(async move { peer.flush(patience).await }, &self.runtime);
        }
        while flushes.join_next().await.is_some() {}
    }

    /// Stops: stops listening and removes the socket file, closes every
    /// connection, ends every stream, fails every pending request, wakes
    /// every wait. Idempotent; synchronous so `Drop` can call it.
    pub(crate) fn shutdown(&self) {
        let (sinks, pending, peers) = {
            let mut state = self.state();
            if !state.running {
                return;
            }
            state.running = false;
            self.running.store(false, Ordering::Release);
            (
                std::mem::take(&mut state.sinks),
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.peers),
            )
        };
        if let Some(serving) = self.serving().take() {
            serving.accept_task.abort();
            serving.socket.remove();
        }
        for peer in peers.values() {
            peer.connection.abort();
        }
        for (_, pending) in pending {
            let _ = pending.tx.send(Outcome::Stopped);
        }
        drop(sinks);
        self.connections_changed.send_replace(());
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

/// Offers one event to local sinks, waiting for room in full ones.
/// Used for local broadcasts and for events read from a peer alike.
async fn deliver_local(
    sinks: &[SinkEntry],
    origin: &Arc<str>,
    event: &(dyn Any + Send + Sync),
    ticket: Option<&Arc<Ticket>>,
) {
    let delivery = Delivery {
        origin,
        event,
        ticket,
    };
    for entry in sinks {
        if let Offer::Full = entry.sink.try_deliver(&delivery) {
            entry.sink.deliver(&delivery).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    #[derive(crate::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
    #[request(response = Answer)]
    struct Question;

    #[derive(crate::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
    struct Answer;

    /// Removing a peer closes its queue in the same critical section: a
    /// request that was routed to it just before meets a closed queue and
    /// fails at once, instead of queueing to a connection nobody reads (the
    /// queue used to be closed only after the lock was released).
    #[tokio::test]
    async fn a_removed_peer_s_queue_is_closed_before_the_lock_is_released() {
        let endpoint = Endpoint::run("removal").await.unwrap();
        let shared = endpoint.shared();
        let connection = Connection::new("peer".into(), 1024);
        shared
            .register_peer(&connection, &[Question::ID.as_u64()], false)
            .unwrap();
        let route = shared
            .route(Question::ID, Question::NAME, &BroadcastConfig::default())
            .unwrap();
        let mut state = shared.state();
        assert!(state.remove_peer_entry(&connection));
        assert!(!state.peers.contains_key("peer"));
        for target in &route.remote {
            assert_eq!(
                target.outgoing.try_push(&[0]),
                Err(TryPushError::Closed),
                "a routed request could still queue to the removed peer"
            );
        }
    }

    /// A peer registered a moment before its tasks start, sent an event,
    /// then the endpoint stops: the stop's flush waits for the writer, so
    /// the peer still gets our hello and the event (it used to get EOF).
    #[tokio::test]
    async fn stop_flushes_a_peer_whose_tasks_have_not_started_yet() {
        let endpoint = Endpoint::run("early-stop").await.unwrap();
        let shared = endpoint.shared().clone();
        let connection = Connection::new("peer".into(), 1 << 16);
        shared
            .register_peer(&connection, &[Answer::ID.as_u64()], true)
            .unwrap();
        endpoint.broadcast(Answer).await.unwrap();
        let stopping = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.stop().await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let (read, write) = ours.into_split();
        let frames = wire::FrameBuffer::new(1 << 20);
        connection.start(&shared, read, write, frames);
        let mut received = Vec::new();
        let patience = std::time::Duration::from_secs(20);
        let reading = tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut received);
        tokio::time::timeout(patience, reading)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(patience, stopping)
            .await
            .unwrap()
            .unwrap();
        let mut frames = wire::FrameBuffer::new(1 << 20);
        frames.extend(&received);
        let kinds: Vec<Kind> =
            std::iter::from_fn(|| frames.next_frame().unwrap().map(|f| f.kind)).collect();
        assert_eq!(kinds, [Kind::Hello, Kind::Event]);
    }

    /// A peer whose connection died after the request was routed to it,
    /// before its reader removed it: the request fails at once instead of
    /// waiting for a removal that already scanned the pending requests.
    #[tokio::test]
    async fn a_request_meeting_a_closed_queue_fails_at_once() {
        let endpoint = Endpoint::run("race").await.unwrap();
        let shared = endpoint.shared();
        let connection = Connection::new("peer".into(), 1024);
        shared
            .register_peer(&connection, &[Question::ID.as_u64()], false)
            .unwrap();
        connection.outgoing.close();
        let patience = std::time::Duration::from_secs(20);
        match tokio::time::timeout(patience, endpoint.request(Question)).await {
            Ok(Err(Error::RemoteDisconnected { endpoint })) => assert_eq!(endpoint, "peer"),
            other => panic!("expected RemoteDisconnected, got {other:?}"),
        }
        assert_eq!(endpoint.pending_requests(), 0);
    }
}
