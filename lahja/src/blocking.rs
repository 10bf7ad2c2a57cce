//! The second runtime: an endpoint for code that does not run async.
//!
//! [`Endpoint`] has the operations of [`crate::Endpoint`] without `async`:
//! each call blocks the calling thread until it is done. It is backed by
//! a small tokio runtime of its own (one worker thread) and speaks the same
//! wire protocol, so a blocking endpoint and a tokio endpoint in different
//! processes are ordinary peers.
//!
//! ```
//! use lahja::blocking::Endpoint;
//! use lahja::Event;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! #[request(response = Sum)]
//! struct Add(u32, u32);
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! struct Sum(u32);
//!
//! fn main() -> lahja::Result<()> {
//!     let endpoint = Endpoint::run("blocking-doc")?;
//!     // A plain closure answers; it runs on a thread that may block.
//!     endpoint.handle_requests(|Add(a, b)| Sum(a + b)).detach();
//!     assert_eq!(endpoint.request(Add(2, 3))?.0, 5);
//!     endpoint.stop();
//!     Ok(())
//! }
//! ```
//!
//! A blocking call made on a thread that runs a tokio runtime would stall
//! that runtime; it returns [`Error::BlockingInAsyncContext`] instead.
//! Use [`crate::Endpoint`] there.

mod groups;

pub use groups::GatherIter;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    BroadcastConfig, ConnectionConfig, EndpointOptions, Error, Event, EventId, Request, Result,
    Subscription,
};

/// The runtime behind blocking endpoints; shut down with the last user.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Arc<Runtime>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lahja-blocking")
            .enable_all()
            .build()?;
        Ok(Arc::new(Runtime(Some(runtime))))
    }

    fn handle(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }

    /// Runs `future` to completion on this runtime, from a thread that
    /// does not run one.
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        if drives_async_code() {
            return Err(Error::BlockingInAsyncContext);
        }
        // While this thread drives `future` it is inside a runtime: a
        // callback run from here must get the error, not tokio's panic.
        Ok(forbidden_to_block(|| self.handle().block_on(future)))
    }

    /// Like [`block_on`](Self::block_on), giving up after `timeout`.
    fn block_on_timeout<F: Future>(&self, timeout: Duration, future: F) -> Result<F::Output> {
        let _guard = self.handle().enter();
        let bounded = tokio::time::timeout(timeout, future);
        drop(_guard);
        self.block_on(bounded)?.map_err(|_| Error::Timeout)
    }
}

thread_local! {
    /// Set while a blocking request handler runs: a thread of tokio's
    /// blocking pool, which tokio counts as inside the runtime (it has a
    /// current handle) but which drives no async code, so blocking there
    /// is what it is for.
    static MAY_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread may be driving async code (a runtime worker, or
/// inside `block_on`): blocking it could stall or deadlock that runtime.
/// Tokio tells only "a runtime is current here", which is also true on
/// its blocking pool; the handlers of this module mark their threads.
fn drives_async_code() -> bool {
    tokio::runtime::Handle::try_current().is_ok() && !MAY_BLOCK.get()
}

/// Runs `f` marked as allowed to block (see [`MAY_BLOCK`]).
fn allowed_to_block<T>(f: impl FnOnce() -> T) -> T {
    with_may_block(true, f)
}

/// Runs `f` marked as driving async code.
fn forbidden_to_block<T>(f: impl FnOnce() -> T) -> T {
    with_may_block(false, f)
}

fn with_may_block<T>(may_block: bool, f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MAY_BLOCK.set(self.0);
        }
    }
    let _reset = Reset(MAY_BLOCK.replace(may_block));
    f()
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Never blocks: safe even if the last clone goes away on a thread
        // that runs another runtime.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// A blocking endpoint: see the [module docs](self).
///
/// `Clone + Send + Sync`; all clones are the same endpoint. Dropping the
/// last clone stops it, best effort; [`stop`](Self::stop) is the reliable
/// way.
#[derive(Clone)]
pub struct Endpoint {
    inner: crate::Endpoint,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Endpoint")
            .field("name", &self.name())
            .field("running", &self.is_running())
            .finish()
    }
}

impl Endpoint {
    fn start(start: impl AsyncFnOnce() -> Result<crate::Endpoint>) -> Result<Endpoint> {
        if drives_async_code() {
            return Err(Error::BlockingInAsyncContext);
        }
        let runtime = Runtime::new()?;
        let inner = runtime.block_on(start())??;
        Ok(Endpoint { inner, runtime })
    }

    /// Starts a running endpoint that does not listen
    /// ([`crate::Endpoint::run`]).
    pub fn run(name: impl Into<String>) -> Result<Endpoint> {
        Self::run_with(name, EndpointOptions::default())
    }

    /// [`run`](Self::run) with explicit options.
    pub fn run_with(name: impl Into<String>, options: EndpointOptions) -> Result<Endpoint> {
        let name = name.into();
        Self::start(async move || crate::Endpoint::run_with(name, options).await)
    }

    /// Starts an endpoint listening on `config.path`
    /// ([`crate::Endpoint::serve`]).
    ///
    /// ```no_run
    /// let server = lahja::blocking::Endpoint::serve(lahja::ConnectionConfig::from_name("server"))?;
    /// assert!(server.is_serving());
    /// # Ok::<(), lahja::Error>(())
    /// ```
    pub fn serve(config: ConnectionConfig) -> Result<Endpoint> {
        Self::serve_with(config, EndpointOptions::default())
    }

    /// [`serve`](Self::serve) with explicit options.
    pub fn serve_with(config: ConnectionConfig, options: EndpointOptions) -> Result<Endpoint> {
        Self::start(async move || crate::Endpoint::serve_with(config, options).await)
    }

    /// The async endpoint behind this one (usable from the runtime of
    /// your choice, or to hand to async code).
    pub fn as_async(&self) -> &crate::Endpoint {
        &self.inner
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Whether the endpoint runs.
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// Whether the endpoint listens on a socket.
    pub fn is_serving(&self) -> bool {
        self.inner.is_serving()
    }

    /// The socket path it was told to serve on.
    pub fn ipc_path(&self) -> Option<&Path> {
        self.inner.ipc_path()
    }

    /// Connects to each endpoint ([`crate::Endpoint::connect_to_endpoints`]).
    pub fn connect_to_endpoints(
        &self,
        configs: impl IntoIterator<Item = ConnectionConfig>,
    ) -> Result<()> {
        self.runtime
            .block_on(self.inner.connect_to_endpoints(configs))?
    }

    /// Joins a bus on a zenoh network ([`crate::Endpoint::join_zenoh`];
    /// feature `zenoh`).
    ///
    /// ```no_run
    /// use lahja::zenoh::ZenohConfig;
    ///
    /// let endpoint = lahja::blocking::Endpoint::run("blocking-node")?;
    /// endpoint.join_zenoh(ZenohConfig::new("my-bus").connect("tcp/10.0.0.2:7447"))?;
    /// # Ok::<(), lahja::Error>(())
    /// ```
    #[cfg(feature = "zenoh")]
    #[cfg_attr(docsrs, doc(cfg(feature = "zenoh")))]
    pub fn join_zenoh(&self, config: crate::zenoh::ZenohConfig) -> Result<()> {
        self.runtime.block_on(self.inner.join_zenoh(config))?
    }

    /// The peers that were not added, with why
    /// ([`crate::Endpoint::refused_peers`]).
    pub fn refused_peers(&self) -> Vec<(String, String)> {
        self.inner.refused_peers()
    }

    /// Stops the endpoint ([`crate::Endpoint::stop`]). Idempotent. Called
    /// on a thread that runs a tokio runtime, it stops without flushing.
    pub fn stop(&self) {
        if self.runtime.block_on(self.inner.stop()).is_err() {
            // No blocking allowed here: stop at once, without flushing.
            self.inner.stop_now();
        }
    }

    /// Broadcasts, blocking while a target's queue is full
    /// ([`crate::Endpoint::broadcast`]).
    pub fn broadcast<E: Event>(&self, event: E) -> Result<()> {
        self.runtime.block_on(self.inner.broadcast(event))?
    }

    /// [`broadcast`](Self::broadcast) routed by `config`.
    pub fn broadcast_with<E: Event>(&self, event: E, config: BroadcastConfig) -> Result<()> {
        self.runtime
            .block_on(self.inner.broadcast_with(event, config))?
    }

    /// Broadcasts without waiting ([`crate::Endpoint::broadcast_nowait`]);
    /// usable from any thread, async or not.
    pub fn broadcast_nowait<E: Event>(&self, event: E) -> Result<()> {
        self.inner.broadcast_nowait(event)
    }

    /// [`broadcast_nowait`](Self::broadcast_nowait) routed by `config`.
    pub fn broadcast_nowait_with<E: Event>(&self, event: E, config: BroadcastConfig) -> Result<()> {
        self.inner.broadcast_nowait_with(event, config)
    }

    /// Sends a request and blocks until its typed answer
    /// ([`crate::Endpoint::request`]).
    pub fn request<R: Request>(&self, request: R) -> Result<R::Response> {
        self.runtime.block_on(self.inner.request(request))?
    }

    /// [`request`](Self::request) routed by `config`.
    pub fn request_with<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
    ) -> Result<R::Response> {
        self.runtime
            .block_on(self.inner.request_with(request, config))?
    }

    /// [`request`](Self::request), failing with [`Error::Timeout`] (and
    /// cancelling the request) after `timeout`.
    pub fn request_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.runtime
            .block_on_timeout(timeout, self.inner.request(request))?
    }

    /// Calls `handler` with every event of type `E` until the
    /// [`Subscription`] is dropped.
    ///
    /// The callback runs on the endpoint's runtime thread, inline with
    /// delivery (so "when `broadcast` returns, callbacks have been
    /// called" holds): keep it short. Blocking calls on this endpoint made
    /// from inside it return [`Error::BlockingInAsyncContext`]; send from
    /// it with [`broadcast_nowait`](Self::broadcast_nowait), or hand the
    /// work to a thread of your own. Request handlers
    /// ([`handle_requests`](Self::handle_requests)) may block and use the
    /// endpoint.
    pub fn subscribe<E: Event>(&self, handler: impl Fn(E) + Send + Sync + 'static) -> Subscription {
        self.inner.subscribe(handler)
    }

    /// Every event of type `E` from this call on, as a blocking iterator
    /// that ends when the endpoint stops.
    ///
    /// ```
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick(u32);
    /// let endpoint = lahja::blocking::Endpoint::run("blocking-stream-doc")?;
    /// let ticks = endpoint.stream::<Tick>();
    /// endpoint.broadcast(Tick(1))?;
    /// endpoint.broadcast(Tick(2))?;
    /// let got: Vec<u32> = ticks.take(2).map(|Tick(n)| n).collect();
    /// assert_eq!(got, [1, 2]);
    /// # Ok::<(), lahja::Error>(())
    /// ```
    pub fn stream<E: Event>(&self) -> EventIter<E> {
        EventIter {
            stream: self.inner.stream(),
            runtime: self.runtime.clone(),
        }
    }

    /// The next event of type `E`; fails with `Error::Lifecycle` if the
    /// endpoint stops first.
    pub fn wait_for<E: Event>(&self) -> Result<E> {
        self.runtime.block_on(self.inner.wait_for::<E>())?
    }

    /// [`wait_for`](Self::wait_for), failing with [`Error::Timeout`] after
    /// `timeout`.
    pub fn wait_for_timeout<E: Event>(&self, timeout: Duration) -> Result<E> {
        self.runtime
            .block_on_timeout(timeout, self.inner.wait_for::<E>())?
    }

    /// Requests of type `R` to answer, as a blocking iterator.
    pub fn stream_requests<R: Request>(&self) -> RequestIter<R> {
        RequestIter {
            stream: self.inner.stream_requests(),
            runtime: self.runtime.clone(),
        }
    }

    /// Answers every request of type `R` with `handler`, run on tokio's
    /// blocking pool, until the [`Subscription`] is dropped. The handler
    /// may block, and may use this endpoint's blocking calls (a clone of
    /// it): `broadcast`, `request_timeout` and the rest work there. At most
    /// [`EndpointOptions::max_concurrent_handlers`] run at once. A
    /// panicking handler gives the requester `RequestDropped`.
    pub fn handle_requests<R, F>(&self, handler: F) -> Subscription
    where
        R: Request,
        F: Fn(R) -> R::Response + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.inner.handle_requests(move |request: R| {
            let handler = handler.clone();
            async move {
                let answer = move || allowed_to_block(|| handler(request));
                match tokio::task::spawn_blocking(answer).await {
                    Ok(response) => response,
                    // Re-raise in the request's task, where it is contained.
                    Err(error) => std::panic::resume_unwind(error.into_panic()),
                }
            }
        })
    }

    /// The IDs this endpoint subscribes to.
    pub fn get_subscribed_events(&self) -> HashSet<EventId> {
        self.inner.get_subscribed_events()
    }

    /// Every connected endpoint, this one first, with its subscriptions.
    pub fn get_connected_endpoints_and_subscriptions(&self) -> Vec<(String, HashSet<EventId>)> {
        self.inner.get_connected_endpoints_and_subscriptions()
    }

    /// Whether `name` is connected (an endpoint is connected to itself).
    pub fn is_connected_to(&self, name: &str) -> bool {
        self.inner.is_connected_to(name)
    }

    /// Whether endpoint `remote` (possibly this one) subscribes to `E`.
    pub fn is_endpoint_subscribed_to<E: Event>(&self, remote: &str) -> bool {
        self.inner.is_endpoint_subscribed_to::<E>(remote)
    }

    /// Whether any connected endpoint, this one included, subscribes to `E`.
    pub fn is_any_endpoint_subscribed_to<E: Event>(&self) -> bool {
        self.inner.is_any_endpoint_subscribed_to::<E>()
    }

    /// Whether every connected endpoint subscribes to `E`.
    pub fn are_all_endpoints_subscribed_to<E: Event>(&self, include_self: bool) -> bool {
        self.inner
            .are_all_endpoints_subscribed_to::<E>(include_self)
    }

    /// Blocks until `name` is connected.
    pub fn wait_until_connected_to(&self, name: &str) -> Result<()> {
        self.runtime
            .block_on(self.inner.wait_until_connected_to(name))?
    }

    /// Blocks until the next connection or disconnection.
    pub fn wait_until_connections_change(&self) -> Result<()> {
        self.runtime
            .block_on(self.inner.wait_until_connections_change())?
    }

    /// Blocks until endpoint `remote` subscribes to `E`.
    pub fn wait_until_endpoint_subscribed_to<E: Event>(&self, remote: &str) -> Result<()> {
        self.runtime
            .block_on(self.inner.wait_until_endpoint_subscribed_to::<E>(remote))?
    }

    /// Blocks until any connected endpoint subscribes to `E`.
    pub fn wait_until_any_endpoint_subscribed_to<E: Event>(&self) -> Result<()> {
        self.runtime
            .block_on(self.inner.wait_until_any_endpoint_subscribed_to::<E>())?
    }

    /// Blocks until every connected endpoint subscribes to `E`.
    pub fn wait_until_all_endpoints_subscribed_to<E: Event>(
        &self,
        include_self: bool,
    ) -> Result<()> {
        self.runtime.block_on(
            self.inner
                .wait_until_all_endpoints_subscribed_to::<E>(include_self),
        )?
    }

    /// Blocks until the next change of any endpoint's subscriptions.
    pub fn wait_until_endpoint_subscriptions_change(&self) -> Result<()> {
        self.runtime
            .block_on(self.inner.wait_until_endpoint_subscriptions_change())?
    }
}

/// An iterator used on a thread that drives async code: a programming
/// error that `None` would hide as "the stream ended" (the only error
/// `try_next` returns).
#[track_caller]
fn misuse(error: Error) -> ! {
    panic!("{error}: iterate a lahja::blocking stream on a thread of its own, or use try_next")
}

/// A blocking iterator over events, from [`Endpoint::stream`]. It ends
/// when the endpoint stops; dropping it unsubscribes.
///
/// # Panics
///
/// `next` panics on a thread that drives async code (a tokio worker, or
/// inside `block_on`), where blocking would stall that runtime: ending the
/// iteration there would look like a stopped endpoint.
/// [`try_next`](Self::try_next) returns [`Error::BlockingInAsyncContext`]
/// instead.
pub struct EventIter<E> {
    stream: crate::EventStream<E>,
    runtime: Arc<Runtime>,
}

impl<E> EventIter<E> {
    /// The next event, `Ok(None)` once the endpoint stopped.
    pub fn try_next(&mut self) -> Result<Option<E>> {
        self.runtime.block_on(self.stream.next())
    }
}

impl<E> Iterator for EventIter<E> {
    type Item = E;
    fn next(&mut self) -> Option<E> {
        match self.try_next() {
            Ok(event) => event,
            Err(error) => misuse(error),
        }
    }
}

impl<E> fmt::Debug for EventIter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventIter")
            .field("stream", &self.stream)
            .finish()
    }
}

/// A blocking iterator over requests to answer, from
/// [`Endpoint::stream_requests`].
///
/// # Panics
///
/// Like [`EventIter`], `next` panics on a thread that drives async code.
pub struct RequestIter<R> {
    stream: crate::RequestStream<R>,
    runtime: Arc<Runtime>,
}

impl<R> RequestIter<R> {
    /// The next request, `Ok(None)` once the endpoint stopped.
    pub fn try_next(&mut self) -> Result<Option<IncomingRequest<R>>> {
        let request = self.runtime.block_on(self.stream.next())?;
        Ok(request.map(|inner| IncomingRequest {
            inner,
            runtime: self.runtime.clone(),
        }))
    }
}

impl<R> Iterator for RequestIter<R> {
    type Item = IncomingRequest<R>;
    fn next(&mut self) -> Option<IncomingRequest<R>> {
        match self.try_next() {
            Ok(request) => request,
            Err(error) => misuse(error),
        }
    }
}

impl<R> fmt::Debug for RequestIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIter")
            .field("stream", &self.stream)
            .finish()
    }
}

/// A request to answer with a blocking [`respond`](Self::respond). It
/// derefs to the request; dropping it unanswered tells the requester.
///
/// ```
/// # use lahja::Event;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// # #[request(response = Doubled)]
/// # struct Double(u64);
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// # struct Doubled(u64);
/// use lahja::blocking::Endpoint;
///
/// let endpoint = Endpoint::run("blocking-incoming-doc")?;
/// let requests = endpoint.stream_requests::<Double>();
/// let answering = std::thread::spawn(move || {
///     for request in requests.take(1) {
///         let answer = Doubled(request.0 * 2);
///         request.respond(answer).unwrap();
///     }
/// });
/// assert_eq!(endpoint.request(Double(21))?.0, 42);
/// answering.join().unwrap();
/// # Ok::<(), lahja::Error>(())
/// ```
pub struct IncomingRequest<R> {
    inner: crate::IncomingRequest<R>,
    runtime: Arc<Runtime>,
}

impl<R: Request> IncomingRequest<R> {
    /// The name of the endpoint that sent the request.
    pub fn origin(&self) -> &str {
        self.inner.origin()
    }

    /// The config that routes an answer back to the requester.
    pub fn config(&self) -> BroadcastConfig {
        self.inner.config()
    }

    /// Answers the request, blocking while the requester's queue is full.
    pub fn respond(self, response: R::Response) -> Result<()> {
        let IncomingRequest { inner, runtime } = self;
        runtime.block_on(inner.respond(response))?
    }
}

impl<R> Deref for IncomingRequest<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.inner
    }
}

impl<R: fmt::Debug> fmt::Debug for IncomingRequest<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
