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

use tokio::sync::{mpsc, oneshot};

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

/// A request waiting for its answers.
pub(crate) struct Pending {
    pub(crate) waiter: Waiter,
    /// The endpoints that received it and have not answered or given up
    /// yet (few: a list beats a set).
    pub(crate) targets: Vec<Arc<str>>,
    pub(crate) any_dropped: bool,
    /// The request's type and when it was sent, for introspection.
    pub(crate) event: crate::EventId,
    pub(crate) since: std::time::Instant,
}

/// Who waits for a request, and for what.
pub(crate) enum Waiter {
    /// `request()`: the first answer, or how the request failed.
    First(oneshot::Sender<Outcome>),
    /// `request_all()`: how each target ended. Its capacity is the number
    /// of targets, and each target ends once, so a send never finds it full.
    Each(mpsc::Sender<(Arc<str>, Outcome)>),
}

impl Waiter {
    /// Tells the waiter that this endpoint stopped; `targets` had not ended.
    pub(crate) fn stopped(self, targets: Vec<Arc<str>>) {
        match self {
            Waiter::First(tx) => {
                let _ = tx.send(Outcome::Stopped);
            }
            Waiter::Each(tx) => {
                for target in targets {
                    let _ = tx.try_send((target, Outcome::Stopped));
                }
            }
        }
    }
}

/// What to tell a waiter, sent once the lock is released.
enum Notice {
    First(oneshot::Sender<Outcome>, Outcome),
    Each(mpsc::Sender<(Arc<str>, Outcome)>, (Arc<str>, Outcome)),
}

impl Notice {
    fn send(self) {
        match self {
            Notice::First(tx, outcome) => {
                let _ = tx.send(outcome);
            }
            Notice::Each(tx, item) => {
                let _ = tx.try_send(item);
            }
        }
    }
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
        let (tx, answer) = oneshot::channel();
        let id = self.register_request(R::ID, route.endpoints(&self.name), Waiter::First(tx))?;
        let _pending = PendingGuard { core: self, id };
        let ticket = route
            .local
            .is_some()
            .then(|| Ticket::new(id, Requester::Here, self));
        self.deliver(&route, &request, ticket.clone(), Some(id))
            .await?;
        // From here on only the answerers hold the ticket: when the last one
        // drops it unanswered, the request fails with RequestDropped.
        drop(ticket);
        match answer.await {
            Ok(outcome) => into_response::<R>(outcome, &self.name),
            Err(_) => Err(self.lifecycle("stopped while a request was pending")),
        }
    }

    /// Registers a request waiting on `targets`; refused once stopped
    /// (checked under the lock that the stop clears `running` under, so a
    /// request never lands in the table of a stopped endpoint).
    pub(super) fn register_request(
        &self,
        event: crate::EventId,
        targets: Vec<Arc<str>>,
        waiter: Waiter,
    ) -> Result<RequestId> {
        // fetch_add wraps: starting anywhere is fine.
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let pending = Pending {
            waiter,
            targets,
            any_dropped: false,
            event,
            since: std::time::Instant::now(),
        };
        let mut state = self.state();
        if !self.is_running() {
            return Err(self.lifecycle("stopped while a request was sent"));
        }
        state.pending.insert(id, pending);
        Ok(id)
    }

    /// Forgets a pending request (its caller went away); the targets it
    /// still waited for.
    pub(super) fn forget_request(&self, id: RequestId) -> Vec<Arc<str>> {
        let removed = self.state().pending.remove(&id);
        removed.map(|pending| pending.targets).unwrap_or_default()
    }

    /// Completes a pending request with an answer from `from`, if `from` is
    /// one of the endpoints it was sent to and has not answered yet;
    /// anything else is discarded.
    pub(super) fn complete(&self, id: RequestId, from: &str, outcome: Outcome) {
        let notice = {
            let mut state = self.state();
            match state.pending.get_mut(&id) {
                Some(p) if router::may_answer(&p.targets, from) => match &p.waiter {
                    Waiter::First(_) => match state.pending.remove(&id) {
                        Some(Pending {
                            waiter: Waiter::First(tx),
                            ..
                        }) => Some(Notice::First(tx, outcome)),
                        _ => None,
                    },
                    Waiter::Each(tx) => {
                        let tx = tx.clone();
                        let index = p.targets.iter().position(|t| **t == *from);
                        let from = p.targets.swap_remove(index.unwrap_or_default());
                        if p.targets.is_empty() {
                            state.pending.remove(&id);
                        }
                        Some(Notice::Each(tx, (from, outcome)))
                    }
                },
                _ => None,
            }
        };
        match notice {
            Some(notice) => notice.send(),
            None => tracing::debug!(
                endpoint = %self.name,
                ?id,
                from,
                "discarding a response: already answered, cancelled, or never sent there"
            ),
        }
    }

    /// Target `from` will not answer request `id`: a gathered request
    /// says so for that target; a plain one fails when no target is left.
    pub(crate) fn target_gave_up(&self, id: RequestId, from: &Arc<str>, how: GaveUp) {
        let notice = {
            let mut state = self.state();
            let Some(pending) = state.pending.get_mut(&id) else {
                return;
            };
            let Some(index) = pending.targets.iter().position(|t| t == from) else {
                return;
            };
            pending.targets.swap_remove(index);
            pending.any_dropped |= how == GaveUp::Dropped;
            let last = pending.targets.is_empty();
            let notice = match &pending.waiter {
                Waiter::Each(tx) => {
                    let outcome = match how {
                        GaveUp::Dropped => Outcome::Dropped,
                        GaveUp::Disconnected => Outcome::Disconnected(from.clone()),
                    };
                    Some(Notice::Each(tx.clone(), (from.clone(), outcome)))
                }
                Waiter::First(_) => None,
            };
            let finished = if last {
                state.pending.remove(&id)
            } else {
                None
            };
            match (notice, finished) {
                (Some(notice), _) => Some(notice),
                (
                    None,
                    Some(Pending {
                        waiter: Waiter::First(tx),
                        any_dropped,
                        ..
                    }),
                ) => {
                    let outcome = if any_dropped {
                        Outcome::Dropped
                    } else {
                        Outcome::Disconnected(from.clone())
                    };
                    Some(Notice::First(tx, outcome))
                }
                (None, _) => None,
            }
        };
        if let Some(notice) = notice {
            notice.send();
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
pub(super) fn into_response<R: Request>(outcome: Outcome, endpoint: &str) -> Result<R::Response> {
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
        self.core.forget_request(self.id);
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
