//! Requests in flight: the requester's pending entries and the answering
//! side's [`IncomingRequest`].
//!
//! Each endpoint that receives a request makes one [`Ticket`] for it, shared
//! by every local answerer. The first answer wins; when the last copy is
//! dropped unanswered, the ticket tells the requester that this endpoint
//! dropped it. The requester keeps the set of endpoints that could still
//! answer and fails at once when it runs empty.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use crate::connection::Connection;
use crate::shared::Shared;
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

/// Turns the outcome of a request for `R` into its typed result.
pub(crate) fn into_response<R: Request>(outcome: Outcome, endpoint: &str) -> Result<R::Response> {
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

/// One receiving endpoint's hold on one request.
pub(crate) struct Ticket {
    id: RequestId,
    requester: Arc<str>,
    /// The requester's connection; `None` when it is this endpoint.
    via: Option<Arc<Connection>>,
    responder: Weak<Shared>,
    answered: AtomicBool,
}

impl Ticket {
    /// A ticket for a request this endpoint made to itself.
    pub(crate) fn local(id: RequestId, responder: &Arc<Shared>) -> Arc<Self> {
        Self::new(id, responder.name.clone(), None, responder)
    }

    /// A ticket for a request that arrived over `connection`.
    pub(crate) fn remote(
        id: RequestId,
        connection: &Arc<Connection>,
        responder: &Arc<Shared>,
    ) -> Arc<Self> {
        Self::new(
            id,
            connection.name.clone(),
            Some(connection.clone()),
            responder,
        )
    }

    fn new(
        id: RequestId,
        requester: Arc<str>,
        via: Option<Arc<Connection>>,
        responder: &Arc<Shared>,
    ) -> Arc<Self> {
        Arc::new(Ticket {
            id,
            requester,
            via,
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
        let shared = self.responder.upgrade().ok_or_else(|| Error::Lifecycle {
            endpoint: String::new(),
            reason: "the answering endpoint was dropped",
        })?;
        let sent = match &self.via {
            Some(connection) => {
                if !shared.is_running() {
                    return Err(shared.lifecycle("cannot respond"));
                }
                shared
                    .send_response_via(connection, &response, self.id)
                    .await
            }
            None => shared.send_response(response, None, self.id).await,
        };
        match &sent {
            Ok(()) => self.answered.store(true, Ordering::Release),
            Err(error) => tracing::warn!(
                endpoint = %shared.name,
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
        if let Some(shared) = self.responder.upgrade() {
            match &self.via {
                Some(connection) => shared.send_dropped(connection, self.id),
                None => shared.request_dropped_here(self.id),
            }
        }
    }
}

/// A request to answer, from [`Endpoint::stream_requests`](crate::Endpoint::stream_requests).
///
/// It derefs to the request. Answer it with [`respond`](Self::respond);
/// dropping it unanswered tells the requester (`Error::RequestDropped` once
/// no other endpoint can answer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
/// use lahja::{Endpoint, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[request(response = Doubled)]
/// struct Double(u64);
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct Doubled(u64);
///
/// let endpoint = Endpoint::run("incoming-doc").await?;
/// let mut requests = endpoint.stream_requests::<Double>();
/// tokio::spawn(async move {
///     while let Some(request) = requests.next().await {
///         let answer = Doubled(request.0 * 2); // `request` derefs to `Double`
///         request.respond(answer).await.ok();
///     }
/// });
/// assert_eq!(endpoint.request(Double(21)).await?.0, 42);
/// # Ok(()) }
/// ```
pub struct IncomingRequest<R> {
    request: R,
    origin: Arc<str>,
    ticket: Arc<Ticket>,
}

impl<R: Request> IncomingRequest<R> {
    pub(crate) fn new(request: R, origin: Arc<str>, ticket: Arc<Ticket>) -> Self {
        IncomingRequest {
            request,
            origin,
            ticket,
        }
    }

    /// The name of the endpoint that sent the request.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The identity of the request at its requester.
    pub fn id(&self) -> RequestId {
        self.ticket.id
    }

    /// The config that routes an answer back to the requester, for
    /// answering with `broadcast_with` (which, unlike [`respond`](Self::respond),
    /// accepts any type and so can produce `UnexpectedResponse`).
    pub fn config(&self) -> BroadcastConfig {
        BroadcastConfig {
            filter_endpoint: Some(self.ticket.requester.to_string()),
            filter_event_id: Some(self.ticket.id),
            ..BroadcastConfig::default()
        }
    }

    /// Answers the request. Only the first answer reaches the requester.
    pub async fn respond(self, response: R::Response) -> Result<()> {
        self.ticket.answer(response).await
    }

    /// The request and the ticket that answers it.
    pub(crate) fn into_parts(self) -> (R, Arc<Ticket>) {
        (self.request, self.ticket)
    }

    /// Takes the request out, dropping the right to answer it.
    pub fn into_inner(self) -> R {
        self.request
    }
}

impl<R> Deref for IncomingRequest<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.request
    }
}

impl<R: fmt::Debug> fmt::Debug for IncomingRequest<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("request", &self.request)
            .field("origin", &self.origin)
            .field("id", &self.ticket.id)
            .finish()
    }
}
