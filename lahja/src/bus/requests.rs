//! Requests in flight: the requester's pending table, and the answering
//! side's [`Ticket`].
//!
//! Each endpoint that receives a request makes one ticket for it, shared
//! by every local answerer. The first answer wins; when the last copy is
//! dropped unanswered, the ticket tells the requester that this endpoint
//! dropped it. The requester keeps the set of endpoints that could still
//! answer and fails at once when it runs empty.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use super::Core;
use super::router::{self, Requester};
use crate::link::Link;
use crate::wire::{self, Kind};
use crate::{BroadcastConfig, Error, Event, EventId, Request, RequestId, Result, codec, registry};

/// A response on its way to the requester.
pub(crate) struct Reply {
    pub(crate) event_id: EventId,
    pub(crate) value: ReplyValue,
}

/// A local response is handed over as is; a remote one is decoded by the
/// requester, which knows the type.
pub(crate) enum ReplyValue {
    Local(Box<dyn Any + Send>),
    Remote(Vec<u8>),
}

/// How a request ended, as told to the waiting `request()` call.
pub(crate) enum Outcome {
    Reply(Reply),
    /// Every target gave up and at least one dropped it.
    Dropped,
    /// Every target gave up by disconnecting; the last one is named.
    Disconnected(Arc<str>),
    /// The requesting endpoint stopped.
    Stopped,
}

/// A request waiting for its answer.
pub(crate) struct Pending {
    pub(crate) tx: oneshot::Sender<Outcome>,
    /// The endpoints that received it and have not given up yet (few:
    /// a list beats a set).
    pub(crate) targets: Vec<Arc<str>>,
    pub(crate) any_dropped: bool,
}

/// How a target gave up on a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum GaveUp {
    Dropped,
    Disconnected,
}

impl Core {
    /// Sends a request routed by `config` (`filter_event_id` is ignored)
    /// and waits for its typed answer.
    pub(crate) async fn request<R: Request>(
        self: &Arc<Self>,
        request: R,
        config: &BroadcastConfig,
    ) -> Result<R::Response> {
        let route = self.route::<R>(config)?;
        let (id, answer) = self.register_request(route.endpoints(&self.name));
        let _pending = PendingGuard { core: self, id };
        let ticket = route
            .local
            .is_some()
            .then(|| Ticket::new(id, Requester::Here, self));
        self.deliver(&route, &request, ticket.as_ref(), Some(id))
            .await?;
        // From here on only the answerers hold the ticket: when the last one
        // drops it unanswered, the request fails with RequestDropped.
        drop(ticket);
        match answer.await {
            Ok(outcome) => into_response::<R>(outcome, &self.name),
            Err(_) => Err(self.lifecycle("stopped while a request was pending")),
        }
    }

    /// Registers a request waiting on `targets`.
    fn register_request(&self, targets: Vec<Arc<str>>) -> (RequestId, oneshot::Receiver<Outcome>) {
        // fetch_add wraps: starting anywhere is fine.
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            tx,
            targets,
            any_dropped: false,
        };
        self.state().pending.insert(id, pending);
        (id, rx)
    }

    /// Completes a pending request with an answer from `from`, if `from` is
    /// one of the endpoints it was sent to; anything else is discarded.
    pub(super) fn complete(&self, id: RequestId, from: &str, outcome: Outcome) {
        let pending = {
            let mut state = self.state();
            match state.pending.get(&id) {
                Some(p) if router::may_answer(&p.targets, from) => state.pending.remove(&id),
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

    /// Tells `peer` that this endpoint will not answer its request `id`.
    /// A peer that let these replies pile up past the hard cap is not
    /// reading: its connection is closed (memory stays bounded).
    pub(super) fn send_dropped(&self, peer: &Arc<Link>, id: RequestId) {
        let mut frame = Vec::new();
        let zero = EventId::from_u64(0);
        let built =
            wire::append_frame(&mut frame, Kind::Dropped, zero, id.0, self.limits(), |_| {
                Ok(())
            });
        if built.is_ok() && peer.send_control(&frame).is_err() {
            tracing::warn!(
                endpoint = %self.name,
                peer = %peer.name,
                "closing the connection: the peer does not read its replies"
            );
            self.remove_peer(peer);
        }
    }
}

/// Turns the outcome of a request for `R` into its typed result.
fn into_response<R: Request>(outcome: Outcome, endpoint: &str) -> Result<R::Response> {
    match outcome {
        Outcome::Reply(reply) if reply.event_id == <R::Response as Event>::ID => {
            match reply.value {
                ReplyValue::Local(value) => value
                    .downcast::<R::Response>()
                    .map(|boxed| *boxed)
                    .map_err(|_| {
                        Error::Codec(format!("response to `{}` has a foreign type", R::NAME))
                    }),
                ReplyValue::Remote(body) => codec::decode(&body),
            }
        }
        Outcome::Reply(reply) => Err(Error::UnexpectedResponse {
            request: R::NAME,
            expected: <R::Response as Event>::NAME,
            got: registry::describe(reply.event_id),
        }),
        Outcome::Dropped => Err(Error::RequestDropped { request: R::NAME }),
        Outcome::Disconnected(peer) => Err(Error::RemoteDisconnected {
            endpoint: peer.to_string(),
        }),
        Outcome::Stopped => Err(Error::Lifecycle {
            endpoint: endpoint.to_owned(),
            reason: "stopped while a request was pending",
        }),
    }
}

/// Forgets a pending request when its `request()` future ends or is dropped.
struct PendingGuard<'a> {
    core: &'a Core,
    id: RequestId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let removed = self.core.state().pending.remove(&self.id);
        drop(removed);
    }
}

/// One receiving endpoint's hold on one request.
pub(crate) struct Ticket {
    pub(crate) id: RequestId,
    /// The requester's endpoint name.
    pub(crate) requester: Arc<str>,
    /// Where the answer goes.
    to: Requester,
    responder: Weak<Core>,
    answered: AtomicBool,
}

impl Ticket {
    pub(super) fn new(id: RequestId, to: Requester, responder: &Arc<Core>) -> Arc<Self> {
        let requester = match &to {
            Requester::Here => responder.name.clone(),
            Requester::Peer(link) => link.name.clone(),
        };
        Arc::new(Ticket {
            id,
            requester,
            to,
            responder: Arc::downgrade(responder),
            answered: AtomicBool::new(false),
        })
    }

    /// Sends `response` to the requester (a second answer is discarded
    /// there). The ticket counts as answered only once the answer is
    /// queued: an answer that cannot be sent (too large, the call
    /// cancelled while waiting for room) leaves it unanswered, so dropping
    /// it tells the requester at once instead of leaving it waiting.
    pub(crate) async fn answer<E: Event>(&self, response: E) -> Result<()> {
        let core = self.responder.upgrade().ok_or_else(|| Error::Lifecycle {
            endpoint: String::new(),
            reason: "the answering endpoint was dropped",
        })?;
        let sent = core.respond(&self.to, response, self.id).await;
        match &sent {
            Ok(()) => self.answered.store(true, Ordering::Release),
            Err(error) => tracing::warn!(
                endpoint = %core.name,
                requester = %self.requester,
                %error,
                "could not send an answer; the requester is told it was dropped"
            ),
        }
        sent
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.answered.load(Ordering::Acquire) {
            return;
        }
        if let Some(core) = self.responder.upgrade() {
            match &self.to {
                Requester::Peer(link) => core.send_dropped(link, self.id),
                Requester::Here => {
                    let me = core.name.clone();
                    core.target_gave_up(self.id, &me, GaveUp::Dropped);
                }
            }
        }
    }
}
