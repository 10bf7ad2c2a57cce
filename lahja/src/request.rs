//! [`IncomingRequest`]: a request to answer, with the right to answer it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::bus::Ticket;
use crate::{BroadcastConfig, Request, RequestId, Result};

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
