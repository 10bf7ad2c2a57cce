//! Delivery: handing one event to the targets the router chose.
//!
//! The frame is encoded once for all peers and offered to each without
//! waiting; local sinks get a clone; then, unless told not to wait, the
//! delivery waits for room where a queue or stream was full.

use std::sync::Arc;

use super::Core;
use super::requests::{GaveUp, Outcome, Reply, ReplyValue, Ticket};
use super::router::{self, Plan, Requester, Route};
use super::subscribers::{Delivery, Offer, SinkEntry};
use crate::link::{self, Link, Shared, TryPushError};
use crate::shared_memory::SharedBody;
use crate::wire::{self, Kind, scratch};
use crate::{BroadcastConfig, Error, Event, EventId, RequestId, Result};

/// Remote targets that are still owed a frame after the offer.
struct Unsent {
    /// The frame; empty when every one of `links` takes `shared` instead.
    frame: Vec<u8>,
    shared: Option<Shared>,
    links: Vec<Arc<Link>>,
}

/// What a delivery could not do without waiting.
pub(super) struct Rest {
    /// The first local sink that was full (the ones after it wait too).
    local_full: Option<usize>,
    unsent: Option<Unsent>,
    /// Peers found closed.
    gone: Vec<Arc<str>>,
}

impl Rest {
    /// Whether finishing it has to wait for room somewhere.
    pub(super) fn needs_waiting(&self) -> bool {
        self.local_full.is_some() || self.unsent.is_some()
    }
}

impl Core {
    /// The targets of an `E` routed by `config`; refused once stopped.
    pub(super) fn route<E: Event>(&self, config: &BroadcastConfig) -> Result<Route> {
        let mut state = self.state();
        if !self.is_running() {
            return Err(self.lifecycle("cannot broadcast"));
        }
        let state = &mut *state;
        let me = router::Me {
            name: &self.name,
            groups: &state.groups,
        };
        let (sinks, peers, routes) = (&state.sinks, &state.peers, &mut state.remote_routes);
        router::targets(me, sinks, peers, routes, E::ID, E::NAME, config)
    }

    /// `broadcast_with`: a broadcast, or a response when `config` says so.
    pub(crate) async fn broadcast<E: Event>(
        &self,
        event: E,
        config: &BroadcastConfig,
    ) -> Result<()> {
        match router::plan(config) {
            Plan::Respond { requester, request } => match self.requester(requester)? {
                Some(to) => self.respond(&to, event, request).await,
                None => Ok(()),
            },
            Plan::Broadcast => {
                let route = self.route::<E>(config)?;
                self.deliver(&route, &event, None, None).await
            }
        }
    }

    /// `broadcast_nowait_with`: like [`broadcast`](Self::broadcast), but
    /// a full target is `QueueFull` (naming the first) instead of a wait.
    pub(crate) fn broadcast_nowait<E: Event>(
        &self,
        event: E,
        config: &BroadcastConfig,
    ) -> Result<()> {
        match router::plan(config) {
            Plan::Respond { requester, request } => match self.requester(requester)? {
                Some(to) => self.respond_nowait(&to, event, request),
                None => Ok(()),
            },
            Plan::Broadcast => {
                let route = self.route::<E>(config)?;
                let unsent = self.offer_remote(&route, &event, Kind::Event, 0)?.0;
                let mut full = unsent.map(|unsent| unsent.links[0].name.to_string());
                if let Some(sinks) = &route.local {
                    let delivery = Delivery {
                        origin: &self.name,
                        event: &event,
                        ticket: None,
                    };
                    if offer_local(sinks, &delivery) {
                        full.get_or_insert_with(|| self.name.to_string());
                    }
                }
                match full {
                    Some(endpoint) => {
                        self.counters.dropped_full(E::ID);
                        Err(Error::QueueFull { endpoint })
                    }
                    None => Ok(()),
                }
            }
        }
    }

    /// Delivers an event (or, with `request`, a request) to every target
    /// of `route`, waiting for room where a queue or stream is full.
    pub(super) async fn deliver<E: Event>(
        &self,
        route: &Route,
        event: &E,
        ticket: Option<Arc<Ticket>>,
        request: Option<RequestId>,
    ) -> Result<()> {
        let rest = self.start_delivery(route, event, ticket.as_ref(), request)?;
        self.finish_delivery(route, rest, event, ticket, request)
            .await;
        Ok(())
    }

    /// Delivers what can go without waiting, in the order `deliver` does:
    /// the peers with room, then local sinks up to the first full one.
    pub(super) fn start_delivery<E: Event>(
        &self,
        route: &Route,
        event: &E,
        ticket: Option<&Arc<Ticket>>,
        request: Option<RequestId>,
    ) -> Result<Rest> {
        let kind = if request.is_some() {
            Kind::Request
        } else {
            Kind::Event
        };
        let (unsent, gone) = self.offer_remote(route, event, kind, request.map_or(0, |r| r.0))?;
        let local_full = route.local.as_ref().and_then(|sinks| {
            let delivery = Delivery {
                origin: &self.name,
                event,
                ticket,
            };
            try_local(sinks, 0, &delivery)
        });
        Ok(Rest {
            local_full,
            unsent,
            gone,
        })
    }

    /// Delivers what [`start_delivery`](Self::start_delivery) left,
    /// waiting for room. This copy of the ticket goes once the local
    /// sinks have the request, not after the peers do: a local target that
    /// drops it is not kept waiting behind a slow peer.
    pub(super) async fn finish_delivery<E: Event>(
        &self,
        route: &Route,
        rest: Rest,
        event: &E,
        ticket: Option<Arc<Ticket>>,
        request: Option<RequestId>,
    ) {
        let mut gone = rest.gone;
        if let (Some(sinks), Some(full)) = (&route.local, rest.local_full) {
            let delivery = Delivery {
                origin: &self.name,
                event,
                ticket: ticket.as_ref(),
            };
            finish_local(sinks, full, &delivery).await;
        }
        drop(ticket);
        if let Some(unsent) = rest.unsent {
            for link in unsent.links {
                if link
                    .send(&unsent.frame, unsent.shared.as_ref())
                    .await
                    .is_err()
                {
                    gone.push(link.name.clone());
                }
            }
        }
        if let Some(request) = request {
            self.gave_up_on(gone, request);
        }
    }

    /// Finishes a delivery that has nothing to wait for (see
    /// [`Rest::needs_waiting`]): only closed peers are left to note.
    pub(super) fn settle_gone(&self, rest: Rest, request: RequestId) {
        debug_assert!(!rest.needs_waiting());
        self.gave_up_on(rest.gone, request);
    }

    /// A peer that went away is skipped. Its reader fails the requests
    /// waiting on it, but it may have done so before this request was
    /// registered: a request that met a closed queue says so itself.
    fn gave_up_on(&self, gone: Vec<Arc<str>>, request: RequestId) {
        for peer in gone {
            self.target_gave_up(request, &peer, GaveUp::Disconnected);
        }
    }

    /// Encodes `event` once and offers the frame to every remote target
    /// without waiting: what is still owed, and the peers found closed.
    /// An event that cannot be encoded reaches nobody.
    ///
    /// A body of at least `shared_memory_above` bytes, with a target that
    /// takes bodies in shared memory, is left uncompressed and put in one
    /// sealed memfd for all such targets; the others get the frame.
    fn offer_remote<E: Event>(
        &self,
        route: &Route,
        event: &E,
        kind: Kind,
        request_id: u64,
    ) -> Result<(Option<Unsent>, Vec<Arc<str>>)> {
        if route.remote.is_empty() {
            return Ok((None, Vec::new()));
        }
        let links = &route.remote;
        self.with_frame_for(kind, E::ID, request_id, event, links, |frame, shared| {
            self.counters.sent(E::ID, wire::body_len(frame));
            if self.taps.any() {
                self.tap_sent(kind, E::ID, request_id, frame, &route.remote);
            }
            let offered = link::offer_all(frame, shared.as_ref(), &route.remote);
            let unsent = (!offered.full.is_empty()).then(|| {
                let all_share = shared.is_some() && offered.full.iter().all(|l| l.shares_memory);
                Unsent {
                    frame: if all_share {
                        Vec::new()
                    } else {
                        frame.to_vec()
                    },
                    shared,
                    links: offered.full,
                }
            });
            (unsent, offered.closed)
        })
    }

    /// Encodes a frame for `links` into this thread's scratch buffer and
    /// hands it to `use_frame`, compressed when large. A body of at least `shared_memory_above` bytes, with a link that
    /// takes bodies in shared memory, is left uncompressed and also put in
    /// one sealed memfd for all such links, handed to `use_frame` too.
    fn with_frame_for<T>(
        &self,
        kind: Kind,
        id: EventId,
        request_id: u64,
        value: &impl serde::Serialize,
        links: &[Arc<Link>],
        use_frame: impl FnOnce(&[u8], Option<Shared>) -> T,
    ) -> Result<T> {
        let limits = self.limits();
        let share_above = self.options.shared_memory_above;
        let share = std::cell::Cell::new(false);
        let encode = |out: &mut Vec<u8>| {
            let body = |out: &mut Vec<u8>| crate::codec::encode_into(value, out);
            wire::append_uncompressed(out, kind, id, request_id, limits, body)?;
            let large = share_above.is_some_and(|above| wire::body_len(out) >= above);
            if large && links.iter().any(|link| link.shares_memory) {
                share.set(true);
                return Ok(());
            }
            wire::compress_from(out, 0, limits)
        };
        scratch::with_encoded(encode, |frame| {
            let shared = if share.get() { self.share(frame) } else { None };
            use_frame(frame, shared)
        })
    }

    /// The body of `frame` in a sealed memfd, with the frame that stands
    /// for it; `None` (logged) where that fails, and the frame goes as it
    /// is.
    fn share(&self, frame: &[u8]) -> Option<Shared> {
        match SharedBody::new(&frame[wire::LEN_BYTES + wire::HEADER_BYTES..]) {
            Ok(body) => Some(Shared {
                stand_in: wire::shared_stand_in(frame).to_vec(),
                body: Arc::new(body),
            }),
            Err(error) => {
                tracing::debug!(endpoint = %self.name, %error, "cannot put a body in shared memory; sending it on the socket");
                None
            }
        }
    }

    /// The requester named in a response config, or `None` (logged) when
    /// it is not connected: the response is discarded.
    fn requester(&self, requester: Option<&str>) -> Result<Option<Requester>> {
        if !self.is_running() {
            return Err(self.lifecycle("cannot respond"));
        }
        let found = router::requester(&self.name, requester, &self.state().peers);
        if found.is_none() {
            tracing::debug!(endpoint = %self.name, ?requester, "discarding a response: the requester is not connected");
        }
        Ok(found)
    }

    /// Sends a response, waiting for room in the requester's queue.
    pub(super) async fn respond<E: Event>(
        &self,
        to: &Requester,
        response: E,
        request: RequestId,
    ) -> Result<()> {
        match self.offer_response(to, response, request)? {
            None => Ok(()),
            Some(unsent) => {
                let link = &unsent.links[0];
                link.send(&unsent.frame, unsent.shared.as_ref())
                    .await
                    .map_err(|_| disconnected(link))?;
                self.response_sent(E::ID, request, &unsent.frame, link);
                Ok(())
            }
        }
    }

    /// Counts (and taps) a response queued to `link`.
    fn response_sent(&self, id: EventId, request: RequestId, frame: &[u8], link: &Arc<Link>) {
        self.counters.sent(id, wire::body_len(frame));
        if self.taps.any() {
            self.tap_sent(
                Kind::Response,
                id,
                request.0,
                frame,
                std::slice::from_ref(link),
            );
        }
    }

    /// Sends a response without waiting: a full queue is `QueueFull`.
    fn respond_nowait<E: Event>(
        &self,
        to: &Requester,
        response: E,
        request: RequestId,
    ) -> Result<()> {
        match self.offer_response(to, response, request)? {
            None => Ok(()),
            Some(unsent) => Err(Error::QueueFull {
                endpoint: unsent.links[0].name.to_string(),
            }),
        }
    }

    /// Completes a local request at once, or offers the encoded response
    /// to the requester's link; returns it, unsent, if its queue was full.
    fn offer_response<E: Event>(
        &self,
        to: &Requester,
        response: E,
        request: RequestId,
    ) -> Result<Option<Unsent>> {
        if !self.is_running() {
            return Err(self.lifecycle("cannot respond"));
        }
        let link = match to {
            Requester::Here => {
                let reply = Reply {
                    event_id: E::ID,
                    value: ReplyValue::Local(Box::new(response)),
                };
                self.complete(request, &self.name, Outcome::Reply(reply));
                return Ok(None);
            }
            Requester::Peer(link) => link,
        };
        let offer = |frame: &[u8], shared: Option<Shared>| match link
            .offer_either(frame, shared.as_ref())
        {
            Ok(()) => {
                self.response_sent(E::ID, request, frame, link);
                Ok(None)
            }
            Err(TryPushError::Full) => Ok(Some(Unsent {
                frame: frame.to_vec(),
                shared,
                links: vec![link.clone()],
            })),
            Err(TryPushError::Closed) => Err(disconnected(link)),
        };
        let links = std::slice::from_ref(link);
        self.with_frame_for(Kind::Response, E::ID, request.0, &response, links, offer)?
    }
}

fn disconnected(link: &Link) -> Error {
    Error::RemoteDisconnected {
        endpoint: link.name.to_string(),
    }
}

/// Offers one event to every local sink that takes it, without waiting;
/// whether one was full.
fn offer_local(sinks: &[SinkEntry], delivery: &Delivery<'_>) -> bool {
    let answerable = delivery.ticket.is_some();
    let mut full = false;
    for entry in sinks.iter().filter(|e| router::takes(e.kind, answerable)) {
        full |= matches!(entry.sink.try_deliver(delivery), Offer::Full);
    }
    full
}

/// Offers one event to `sinks[from..]` in turn, without waiting; the
/// index of the first that was full.
fn try_local(sinks: &[SinkEntry], from: usize, delivery: &Delivery<'_>) -> Option<usize> {
    let answerable = delivery.ticket.is_some();
    (from..sinks.len()).find(|&i| {
        let entry = &sinks[i];
        router::takes(entry.kind, answerable)
            && matches!(entry.sink.try_deliver(delivery), Offer::Full)
    })
}

/// Waits for room in the full sink `sinks[full]`, then goes on offering
/// to the ones after it in turn, waiting wherever one is full.
async fn finish_local(sinks: &[SinkEntry], mut full: usize, delivery: &Delivery<'_>) {
    loop {
        sinks[full].sink.deliver(delivery).await;
        match try_local(sinks, full + 1, delivery) {
            Some(next) => full = next,
            None => return,
        }
    }
}

/// Offers one event to local sinks in turn, waiting for room in a full
/// one before the next. Used for events read from a peer.
pub(super) async fn deliver_local(sinks: &[SinkEntry], delivery: &Delivery<'_>) {
    if let Some(full) = try_local(sinks, 0, delivery) {
        finish_local(sinks, full, delivery).await;
    }
}
