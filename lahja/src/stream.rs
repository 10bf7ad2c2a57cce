//! The receiving ends of local subscriptions: [`EventStream`],
//! [`OriginStream`] and [`RequestStream`]; and of a gathered request:
//! [`GatherStream`].
//!
//! Each subscription stream holds the guard of its subscription: dropping
//! the stream unsubscribes at once. Each ends (yields `None`) when the
//! endpoint stops.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::bus::{Gathering, SinkGuard};
use crate::{GatheredAnswer, IncomingRequest, Request};

/// Events of type `E`, from [`Endpoint::stream`](crate::Endpoint::stream).
///
/// A [`futures_core::Stream`]; `num_events` of lahja is `.take(n)` of
/// `tokio_stream::StreamExt` or `futures::StreamExt`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
/// use lahja::{Endpoint, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Tick(u32);
///
/// let endpoint = Endpoint::run("stream-doc").await?;
/// let mut ticks = endpoint.stream::<Tick>(); // subscribed from here on
/// endpoint.broadcast(Tick(1)).await?;
/// assert_eq!(ticks.next().await, Some(Tick(1)));
/// # Ok(()) }
/// ```
pub struct EventStream<E> {
    inner: Subscribed<(Arc<str>, E)>,
}

impl<E> EventStream<E> {
    pub(crate) fn new(rx: mpsc::Receiver<(Arc<str>, E)>, guard: SinkGuard) -> Self {
        EventStream {
            inner: Subscribed { rx, guard },
        }
    }

    /// The next event, or `None` once the endpoint stopped.
    pub async fn next(&mut self) -> Option<E> {
        self.inner.rx.recv().await.map(|(_, event)| event)
    }

    /// Also yield the name of the endpoint that sent each event.
    pub fn with_origin(self) -> OriginStream<E> {
        OriginStream { inner: self.inner }
    }
}

impl<E> Stream for EventStream<E> {
    type Item = E;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<E>> {
        self.get_mut()
            .inner
            .rx
            .poll_recv(cx)
            .map(|item| item.map(|(_, event)| event))
    }
}

impl<E> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.describe("EventStream", f)
    }
}

/// Events of type `E` with the sending endpoint's name, from
/// [`Endpoint::stream_with_origin`](crate::Endpoint::stream_with_origin).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
/// use lahja::{Endpoint, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct Tick;
///
/// let endpoint = Endpoint::run("origin-doc").await?;
/// let mut ticks = endpoint.stream_with_origin::<Tick>();
/// endpoint.broadcast(Tick).await?;
/// let (origin, _tick) = ticks.next().await.unwrap();
/// assert_eq!(&*origin, "origin-doc");
/// # Ok(()) }
/// ```
pub struct OriginStream<E> {
    inner: Subscribed<(Arc<str>, E)>,
}

impl<E> OriginStream<E> {
    /// The next `(origin, event)`, or `None` once the endpoint stopped.
    pub async fn next(&mut self) -> Option<(Arc<str>, E)> {
        self.inner.rx.recv().await
    }
}

impl<E> Stream for OriginStream<E> {
    type Item = (Arc<str>, E);
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.rx.poll_recv(cx)
    }
}

impl<E> fmt::Debug for OriginStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.describe("OriginStream", f)
    }
}

/// Requests of type `R` to answer, from
/// [`Endpoint::stream_requests`](crate::Endpoint::stream_requests).
///
/// See [`IncomingRequest`] for an example.
pub struct RequestStream<R> {
    inner: Subscribed<IncomingRequest<R>>,
}

impl<R> RequestStream<R> {
    pub(crate) fn new(rx: mpsc::Receiver<IncomingRequest<R>>, guard: SinkGuard) -> Self {
        RequestStream {
            inner: Subscribed { rx, guard },
        }
    }

    /// The next request, or `None` once the endpoint stopped.
    pub async fn next(&mut self) -> Option<IncomingRequest<R>> {
        self.inner.rx.recv().await
    }
}

impl<R> Stream for RequestStream<R> {
    type Item = IncomingRequest<R>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.rx.poll_recv(cx)
    }
}

impl<R> fmt::Debug for RequestStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.describe("RequestStream", f)
    }
}

/// What every stream holds: the channel its sink fills, and the guard
/// that unsubscribes when the stream is dropped.
struct Subscribed<T> {
    rx: mpsc::Receiver<T>,
    guard: SinkGuard,
}

impl<T> Subscribed<T> {
    fn describe(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("event_id", &self.guard.event_id())
            .field("buffered", &self.rx.len())
            .finish()
    }
}

/// Every target's answer to one request, from
/// [`Endpoint::request_all`](crate::Endpoint::request_all): one item per
/// endpoint the request reached, `(origin, answer)`, where the answer is
/// the typed response, `RequestDropped` or `RemoteDisconnected`. The stream
/// ends once every target has answered, dropped the request or gone (if
/// this endpoint stops first, each outstanding target's item is
/// `Lifecycle`). A target that answers twice counts once. Dropping the
/// stream forgets the request here: later answers are discarded (nothing
/// is sent to the targets, whose handlers still run).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lahja::Result<()> {
/// use lahja::{Endpoint, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[request(response = PeerCount)]
/// struct GetPeerCount;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct PeerCount(usize);
///
/// let endpoint = Endpoint::run("gather-doc").await?;
/// endpoint.handle_requests(|_: GetPeerCount| async { PeerCount(3) }).detach();
/// let mut answers = endpoint.request_all(GetPeerCount)?;
/// let (origin, answer) = answers.next().await.unwrap();
/// assert_eq!((&*origin, answer?), ("gather-doc", PeerCount(3)));
/// assert!(answers.next().await.is_none()); // one target, one item
/// # Ok(()) }
/// ```
pub struct GatherStream<R> {
    gathering: Gathering,
    answers: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> GatherStream<R> {
    pub(crate) fn new(gathering: Gathering) -> Self {
        GatherStream {
            gathering,
            answers: std::marker::PhantomData,
        }
    }

    /// The next target's answer, or `None` once every target has ended.
    pub async fn next(&mut self) -> Option<GatheredAnswer<R>> {
        std::future::poll_fn(|cx| self.gathering.poll_next::<R>(cx)).await
    }

    /// Forgets the request; the targets it still waited for.
    pub(crate) fn cancel(&mut self) -> Vec<Arc<str>> {
        self.gathering.cancel()
    }

    /// The targets that have not answered, dropped the request or gone
    /// yet (in no particular order).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::{Endpoint, Event};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # #[request(response = Pong)]
    /// # struct Ping;
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Pong;
    /// let endpoint = Endpoint::run("outstanding-doc").await?;
    /// let _unanswered = endpoint.stream_requests::<Ping>(); // holds, never answers
    /// let answers = endpoint.request_all(Ping)?;
    /// assert_eq!(answers.outstanding(), ["outstanding-doc".into()]);
    /// # Ok(()) }
    /// ```
    pub fn outstanding(&self) -> Vec<Arc<str>> {
        self.gathering.outstanding()
    }
}

impl<R: Request> Stream for GatherStream<R> {
    type Item = GatheredAnswer<R>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().gathering.poll_next::<R>(cx)
    }
}

impl<R> fmt::Debug for GatherStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherStream")
            .field("outstanding", &self.gathering.outstanding())
            .finish()
    }
}
