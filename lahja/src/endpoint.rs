//! [`Endpoint`]: the typed API over the bus core.

mod groups;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{Semaphore, mpsc};

use crate::bus::{Condition, Core, Signal, SinkKind};
use crate::sinks::{CallbackSink, RequestSink, StreamSink};
use crate::{
    BroadcastConfig, ConnectionConfig, EndpointOptions, Error, Event, EventId, EventStream,
    GatherStream, OriginStream, Request, RequestStream, Result, Subscription, registry, transport,
};

/// A named participant of the bus.
///
/// Cheap to clone: all clones are the same endpoint. Use it from inside a
/// tokio runtime (current-thread or multi-thread); it is `Send + Sync` and
/// every future it returns is `Send`. Dropping the last clone stops it, best
/// effort; [`stop`](Self::stop) is the reliable way. A clone captured by
/// one of its own callbacks keeps it alive until that subscription is
/// dropped.
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
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct PeerCount(usize);
///
/// let endpoint = Endpoint::run("endpoint-doc").await?;
/// endpoint.handle_requests(|_: GetPeerCount| async { PeerCount(3) }).detach();
/// let PeerCount(n) = endpoint.request(GetPeerCount).await?; // typed: a `PeerCount`
/// assert_eq!(n, 3);
/// endpoint.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    handle: Arc<Handle>,
}

/// The user-facing owner: when the last clone goes, the endpoint stops.
/// Internal guards and tasks hold the `Core`, never this.
struct Handle {
    core: Arc<Core>,
    ipc_path: Option<PathBuf>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.core.shutdown());
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name())
            .field("running", &self.is_running())
            .finish()
    }
}

impl Endpoint {
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// Starts a running endpoint that does not listen for connections.
    ///
    /// Fails with [`Error::DuplicateEventId`](crate::Error::DuplicateEventId) if two linked event types
    /// share a wire ID.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("run-doc").await?;
    /// assert!(endpoint.is_running());
    /// endpoint.stop().await;
    /// assert!(!endpoint.is_running());
    /// # Ok(()) }
    /// ```
    pub async fn run(name: impl Into<String>) -> Result<Endpoint> {
        Self::run_with(name, EndpointOptions::default()).await
    }

    /// [`run`](Self::run) with explicit options. A `stream_capacity` of 0
    /// is taken as 1.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, EndpointOptions};
    ///
    /// let options = EndpointOptions { stream_capacity: 16, ..Default::default() };
    /// let endpoint = Endpoint::run_with("run-with-doc", options).await?;
    /// assert_eq!(endpoint.name(), "run-with-doc");
    /// # Ok(()) }
    /// ```
    pub async fn run_with(name: impl Into<String>, options: EndpointOptions) -> Result<Endpoint> {
        Self::start(name.into(), options, None).await
    }

    async fn start(
        name: String,
        mut options: EndpointOptions,
        serve_at: Option<PathBuf>,
    ) -> Result<Endpoint> {
        crate::validate_name(&name)?;
        registry::check()?;
        for group in &options.groups {
            crate::validate_name(group)?;
        }
        options.stream_capacity = options.stream_capacity.max(1);
        options.max_concurrent_handlers = options.max_concurrent_handlers.max(1);
        let core = Core::new(name.into(), options);
        if let Some(path) = &serve_at {
            transport::serve(&core, path.clone()).await?;
        }
        Ok(Endpoint {
            handle: Arc::new(Handle {
                core,
                ipc_path: serve_at,
            }),
        })
    }

    /// Starts an endpoint that listens on `config.path` for connections.
    ///
    /// A leftover socket file with nobody listening is reclaimed; a path
    /// where a live endpoint listens, a missing folder, or a path too long
    /// for a Unix socket is [`Error::Bind`]. The socket file is made mode
    /// 0600 (and the folder of [`ConnectionConfig::from_name`] 0700), so
    /// only the same user can connect. It is removed when the endpoint
    /// stops.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{ConnectionConfig, Endpoint};
    ///
    /// let server = Endpoint::serve(ConnectionConfig::from_name("server")).await?;
    /// assert!(server.is_serving());
    /// # Ok(()) }
    /// ```
    pub async fn serve(config: ConnectionConfig) -> Result<Endpoint> {
        Self::serve_with(config, EndpointOptions::default()).await
    }

    /// [`serve`](Self::serve) with explicit options.
    pub async fn serve_with(
        config: ConnectionConfig,
        options: EndpointOptions,
    ) -> Result<Endpoint> {
        Self::start(config.name, options, Some(config.path)).await
    }

    /// Connects to each endpoint (concurrently) and returns once every
    /// handshake is done and each peer's subscriptions are known.
    ///
    /// Missing or refusing sockets are retried up to
    /// [`EndpointOptions::connect_timeout`] ([`Error::ConnectTimeout`]).
    /// Connecting to itself, to a name twice, to an endpoint already
    /// connected (in either direction), or to a socket whose endpoint has
    /// another name is [`Error::ConnectionAttemptRejected`]; a peer that
    /// declares one of our event types with another layout is
    /// [`Error::SchemaMismatch`]. Connections are full duplex: the server
    /// can send to us as well.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{ConnectionConfig, Endpoint};
    ///
    /// let client = Endpoint::run("client").await?;
    /// client.connect_to_endpoints([ConnectionConfig::from_name("server")]).await?;
    /// assert!(client.is_connected_to("server"));
    /// # Ok(()) }
    /// ```
    pub async fn connect_to_endpoints(
        &self,
        configs: impl IntoIterator<Item = ConnectionConfig>,
    ) -> Result<()> {
        let core = self.core();
        if !core.is_running() {
            return Err(core.lifecycle("cannot connect"));
        }
        let configs: Vec<ConnectionConfig> = configs.into_iter().collect();
        let rejected = |config: &ConnectionConfig, reason: &str| Error::ConnectionAttemptRejected {
            endpoint: config.name.clone(),
            reason: reason.to_owned(),
        };
        for (i, config) in configs.iter().enumerate() {
            if config.name == self.name() {
                return Err(rejected(config, "an endpoint cannot connect to itself"));
            }
            if configs[..i].iter().any(|c| c.name == config.name) {
                return Err(rejected(config, "named twice in one call"));
            }
            if self.is_connected_to(&config.name) {
                return Err(rejected(config, "already connected"));
            }
        }
        let mut connecting = tokio::task::JoinSet::new();
        for config in configs {
            connecting.spawn_on(transport::connect(core.clone(), config), &core.runtime);
        }
        let mut first_error = None;
        while let Some(result) = connecting.join_next().await {
            let result = result.unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(e))));
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Joins a bus on a zenoh network (feature `zenoh`): every endpoint on
    /// the bus that it discovers becomes a peer like a socket peer. See
    /// [`crate::zenoh`] for how it maps and where it differs.
    ///
    /// With `connect` locators it first waits (up to
    /// [`EndpointOptions::connect_timeout`](crate::EndpointOptions::connect_timeout))
    /// for a link to one of them; zenoh keeps retrying after that. Fails
    /// with [`Error::ConnectionAttemptRejected`] if an endpoint with this
    /// name is already on the bus, and with [`Error::Zenoh`] if the
    /// session cannot open or the runtime is a current-thread one (zenoh
    /// needs a multi-thread runtime).
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::zenoh::ZenohConfig;
    ///
    /// let endpoint = lahja::Endpoint::run("node-a").await?;
    /// endpoint
    ///     .join_zenoh(ZenohConfig::new("my-bus").connect("tcp/10.0.0.2:7447"))
    ///     .await?;
    /// endpoint.wait_until_connected_to("node-b").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "zenoh")]
    #[cfg_attr(docsrs, doc(cfg(feature = "zenoh")))]
    pub async fn join_zenoh(&self, config: crate::zenoh::ZenohConfig) -> Result<()> {
        crate::zenoh::join(self.core(), config).await
    }

    /// The peers that were not added, with why (name, reason): the latest
    /// refusal of each, for the last 64 peers, oldest first. A socket
    /// client that we refused because its schema differs is here too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("refused-doc").await?;
    /// assert!(endpoint.refused_peers().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn refused_peers(&self) -> Vec<(String, String)> {
        self.core().refused()
    }

    /// The endpoint's name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("name-doc").await?;
    /// assert_eq!(endpoint.name(), "name-doc");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.core().name
    }

    /// Whether the endpoint runs (false once stopped).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("running-doc").await?;
    /// assert!(endpoint.is_running());
    /// endpoint.stop().await;
    /// assert!(!endpoint.is_running());
    /// # Ok(()) }
    /// ```
    pub fn is_running(&self) -> bool {
        self.core().is_running()
    }

    /// Whether the endpoint listens on a socket (false once stopped).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("serving-doc").await?;
    /// assert!(!endpoint.is_serving()); // `run` does not listen
    /// assert!(endpoint.ipc_path().is_none());
    /// # Ok(()) }
    /// ```
    pub fn is_serving(&self) -> bool {
        self.core().is_serving()
    }

    /// The socket path it was told to serve on.
    pub fn ipc_path(&self) -> Option<&Path> {
        self.handle.ipc_path.as_deref()
    }

    /// Stops at once, without flushing (what `Drop` does).
    pub(crate) fn stop_now(&self) {
        drop(self.core().shutdown());
    }

    /// Stops the endpoint: first sends what is already queued to peers (so
    /// "broadcast, then stop" delivers; a stalled peer is given up to
    /// `handshake_timeout`), then closes every connection, ends its
    /// streams, fails its pending requests and waits with
    /// `Error::Lifecycle`, and removes its socket file. Idempotent.
    pub async fn stop(&self) {
        let core = self.core();
        let patience = core.options.handshake_timeout;
        if core.is_running() {
            core.flush_peers(patience).await;
        }
        // Then a zenoh session, say, closes.
        for stopping in core.shutdown() {
            let _ = tokio::time::timeout(patience, stopping).await;
        }
    }

    // ----- broadcasting -------------------------------------------------

    /// Broadcasts to every subscribed endpoint, itself included.
    ///
    /// Returns once every local target has the event (callbacks called,
    /// streams buffered), waiting while a target stream is full. Fails with
    /// [`Error::NoSubscribers`](crate::Error::NoSubscribers) when nobody is subscribed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct BlockImported { number: u64 }
    ///
    /// let endpoint = Endpoint::run("broadcast-doc").await?;
    /// endpoint.subscribe(|e: BlockImported| println!("block {}", e.number)).detach();
    /// endpoint.broadcast(BlockImported { number: 1 }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn broadcast<E: Event>(&self, event: E) -> Result<()> {
        self.broadcast_with(event, BroadcastConfig::default()).await
    }

    /// [`broadcast`](Self::broadcast) routed by `config`. A config with
    /// `filter_event_id` sends a response to its request (see
    /// [`IncomingRequest::config`](crate::IncomingRequest::config)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{BroadcastConfig, Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Note;
    ///
    /// let endpoint = Endpoint::run("broadcast-with-doc").await?;
    /// // Nobody listens, and that is fine here.
    /// endpoint.broadcast_with(Note, BroadcastConfig::default().require_subscriber(false)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn broadcast_with<E: Event>(&self, event: E, config: BroadcastConfig) -> Result<()> {
        self.core().broadcast(event, &config).await
    }

    /// Broadcasts without waiting. Where a target's stream is full it
    /// returns [`Error::QueueFull`](crate::Error::QueueFull) naming it; the targets with room still
    /// get the event.
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
    /// let endpoint = Endpoint::run("nowait-doc").await?;
    /// let mut ticks = endpoint.stream::<Tick>();
    /// endpoint.broadcast_nowait(Tick)?;
    /// assert!(ticks.next().await.is_some());
    /// # Ok(()) }
    /// ```
    pub fn broadcast_nowait<E: Event>(&self, event: E) -> Result<()> {
        self.broadcast_nowait_with(event, BroadcastConfig::default())
    }

    /// [`broadcast_nowait`](Self::broadcast_nowait) routed by `config`.
    pub fn broadcast_nowait_with<E: Event>(&self, event: E, config: BroadcastConfig) -> Result<()> {
        self.core().broadcast_nowait(event, &config)
    }

    // ----- requests -----------------------------------------------------

    /// Sends a request and waits for its typed answer.
    ///
    /// It is routed like a broadcast; the first answer wins. It fails with
    /// [`Error::RequestDropped`](crate::Error::RequestDropped) when every endpoint it reached dropped it
    /// (or has no `stream_requests`/`handle_requests` for it), with
    /// [`Error::UnexpectedResponse`](crate::Error::UnexpectedResponse) when answered with another type, and
    /// with [`Error::Lifecycle`](crate::Error::Lifecycle) if this endpoint stops. Dropping the
    /// future cancels the request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// #[request(response = Pong)]
    /// struct Ping(u32);
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Pong(u32);
    ///
    /// let endpoint = Endpoint::run("request-doc").await?;
    /// let _answers = endpoint.handle_requests(|Ping(n)| async move { Pong(n + 1) });
    /// let Pong(n) = endpoint.request(Ping(1)).await?;
    /// assert_eq!(n, 2);
    /// # Ok(()) }
    /// ```
    pub async fn request<R: Request>(&self, request: R) -> Result<R::Response> {
        self.request_with(request, BroadcastConfig::default()).await
    }

    /// [`request`](Self::request) routed by `config` (`filter_endpoint`,
    /// `filter_group`, `internal`, `require_subscriber`; `filter_event_id`
    /// is ignored).
    /// With `require_subscriber(false)` and no target at all, it waits until
    /// cancelled or the endpoint stops.
    pub async fn request_with<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
    ) -> Result<R::Response> {
        self.core().request(request, &config).await
    }

    /// Sends a request to every subscribed endpoint (routed like
    /// [`request`](Self::request)) and gathers every answer: one item per
    /// target, then the stream ends. Fails at once with
    /// [`Error::NoSubscribers`](crate::Error::NoSubscribers) when nobody
    /// subscribes. What can be sent without waiting is sent before this
    /// returns; where a queue or stream is full, a task sends the rest, so
    /// a frame sent after this returns may reach that target first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// #[request(response = Version)]
    /// struct GetVersion;
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Version(String);
    ///
    /// let endpoint = Endpoint::run("request-all-doc").await?;
    /// endpoint.handle_requests(|_: GetVersion| async { Version("1.0".into()) }).detach();
    /// let mut answers = endpoint.request_all(GetVersion)?;
    /// while let Some((origin, answer)) = answers.next().await {
    ///     let Version(version) = answer?; // typed: a `Version`
    ///     println!("{origin} runs {version}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn request_all<R: Request>(&self, request: R) -> Result<GatherStream<R>> {
        self.request_all_with(request, BroadcastConfig::default())
    }

    /// [`request_all`](Self::request_all) routed by `config` (as in
    /// [`request_with`](Self::request_with)); with `require_subscriber(false)`
    /// and no target the stream is empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{BroadcastConfig, Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// #[request(response = Pong)]
    /// struct Ping;
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Pong;
    ///
    /// let endpoint = Endpoint::run("gather-with-doc").await?;
    /// let nobody = BroadcastConfig::default().require_subscriber(false);
    /// let mut answers = endpoint.request_all_with(Ping, nobody)?;
    /// assert!(answers.next().await.is_none());
    /// # Ok(()) }
    /// ```
    pub fn request_all_with<R: Request>(
        &self,
        request: R,
        config: BroadcastConfig,
    ) -> Result<GatherStream<R>> {
        let gathering = self.core().request_all(request, &config)?;
        Ok(GatherStream::new(gathering))
    }

    /// Requests of type `R` to answer, subscribed from this call on.
    ///
    /// See [`IncomingRequest`](crate::IncomingRequest) for an example.
    pub fn stream_requests<R: Request>(&self) -> RequestStream<R> {
        let (tx, rx) = mpsc::channel(self.core().options.stream_capacity);
        let guard = self
            .core()
            .add_sink(R::ID, SinkKind::Requests, Arc::new(RequestSink { tx }));
        RequestStream::new(rx, guard)
    }

    /// Answers every request of type `R` with `handler`, until the
    /// returned [`Subscription`] is dropped.
    ///
    /// Each answer is first polled in the subscription's own task, and
    /// one that is not ready then goes on in a task of its own (up to
    /// `max_concurrent_handlers` at once). So an answer that is ready at
    /// once costs no task, but a handler that computes for long before
    /// its first `.await` holds up the requests behind it: give such work
    /// to `tokio::task::spawn_blocking`.
    ///
    /// A handler that panics is contained: the requester gets
    /// [`Error::RequestDropped`](crate::Error::RequestDropped) (once no other endpoint can answer).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// #[request(response = Sum)]
    /// struct Add(u32, u32);
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Sum(u32);
    ///
    /// let endpoint = Endpoint::run("handle-doc").await?;
    /// let subscription = endpoint.handle_requests(|Add(a, b)| async move { Sum(a + b) });
    /// assert_eq!(endpoint.request(Add(2, 3)).await?.0, 5);
    /// drop(subscription);
    /// assert!(endpoint.request(Add(2, 3)).await.is_err()); // nobody answers now
    /// # Ok(()) }
    /// ```
    pub fn handle_requests<R, F, Fut>(&self, handler: F) -> Subscription
    where
        R: Request,
        F: Fn(R) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R::Response> + Send + 'static,
    {
        let core = self.core();
        let (tx, mut requests) = mpsc::channel(core.options.stream_capacity);
        let sink = Arc::new(RequestSink::<R> { tx });
        let guard = core.add_sink(R::ID, SinkKind::Requests, sink);
        let runtime = core.runtime.clone();
        let in_flight = Arc::new(Semaphore::new(core.options.max_concurrent_handlers));
        // Ends when the subscription is dropped (the sink, and so the
        // channel's sender, goes away) or the endpoint stops.
        core.runtime.spawn(async move {
            loop {
                // At most `max_concurrent_handlers` at once; past it the
                // requests wait in the stream (backpressure).
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let Some(incoming) = requests.recv().await else {
                    return;
                };
                let (request, ticket) = incoming.into_parts();
                let Ok(answer) = catch_unwind(AssertUnwindSafe(|| handler(request))) else {
                    tracing::warn!(
                        request = R::NAME,
                        "a request handler panicked; the request is dropped"
                    );
                    continue;
                };
                // A failed answer is logged by the ticket.
                let mut answering = Box::pin(async move {
                    let _ = ticket.answer(answer.await).await;
                    drop(permit);
                });
                // Most handlers answer at once: then this task sends the
                // answer, and only one that has to wait gets a task of its
                // own (a task per request cost a spawn and a wake-up).
                // A panic in `answer` drops the ticket unanswered: the
                // requester is told, the endpoint goes on.
                let first_poll = std::future::poll_fn(|cx| {
                    Poll::Ready(catch_unwind(AssertUnwindSafe(|| {
                        answering.as_mut().poll(cx)
                    })))
                })
                .await;
                match first_poll {
                    Ok(Poll::Ready(())) => {}
                    Ok(Poll::Pending) => {
                        runtime.spawn(answering);
                    }
                    Err(_) => tracing::warn!(
                        request = R::NAME,
                        "a request handler panicked; the request is dropped"
                    ),
                }
            }
        });
        Subscription::new(guard)
    }

    // ----- subscribing --------------------------------------------------

    /// Calls `handler` with every event of type `E`, inline during the
    /// broadcast that delivers it, until the [`Subscription`] is dropped. A
    /// panicking handler is logged and contained.
    ///
    /// See [`Subscription`] for an example.
    pub fn subscribe<E: Event>(&self, handler: impl Fn(E) + Send + Sync + 'static) -> Subscription {
        let sink = CallbackSink {
            callback: Box::new(handler),
        };
        Subscription::new(
            self.core()
                .add_sink(E::ID, SinkKind::Events, Arc::new(sink)),
        )
    }

    /// Every event of type `E` from this call on, buffered up to
    /// `stream_capacity`; a full stream makes `broadcast` wait.
    ///
    /// See [`EventStream`] for an example.
    pub fn stream<E: Event>(&self) -> EventStream<E> {
        let (tx, rx) = mpsc::channel(self.core().options.stream_capacity);
        let guard = self
            .core()
            .add_sink(E::ID, SinkKind::Events, Arc::new(StreamSink { tx }));
        EventStream::new(rx, guard)
    }

    /// Like [`stream`](Self::stream), yielding `(origin, event)`.
    ///
    /// See [`OriginStream`] for an example.
    pub fn stream_with_origin<E: Event>(&self) -> OriginStream<E> {
        self.stream::<E>().with_origin()
    }

    /// The next event of type `E` (subscribed when first polled). Fails
    /// with [`Error::Lifecycle`](crate::Error::Lifecycle) if the endpoint stops first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// use lahja::{Endpoint, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// struct Ready;
    ///
    /// let endpoint = Endpoint::run("wait-for-doc").await?;
    /// let waiter = tokio::spawn({
    ///     let endpoint = endpoint.clone();
    ///     async move { endpoint.wait_for::<Ready>().await }
    /// });
    /// endpoint.wait_until_any_endpoint_subscribed_to::<Ready>().await?;
    /// endpoint.broadcast(Ready).await?;
    /// waiter.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for<E: Event>(&self) -> Result<E> {
        let mut events = self.stream::<E>();
        events
            .next()
            .await
            .ok_or_else(|| self.core().lifecycle("stopped while waiting for an event"))
    }

    // ----- connections and subscriptions --------------------------------

    /// The IDs this endpoint is subscribed to (by any stream, callback,
    /// `wait_for` or request handler).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("subscribed-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// assert_eq!(endpoint.get_subscribed_events(), [Tick::ID].into());
    /// # Ok(()) }
    /// ```
    pub fn get_subscribed_events(&self) -> HashSet<EventId> {
        self.core().subscribed_ids()
    }

    /// Every connected endpoint, this one first, with its subscriptions.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("connected-doc").await?;
    /// let all = endpoint.get_connected_endpoints_and_subscriptions();
    /// assert_eq!(all[0].0, "connected-doc"); // an endpoint counts itself
    /// # Ok(()) }
    /// ```
    pub fn get_connected_endpoints_and_subscriptions(&self) -> Vec<(String, HashSet<EventId>)> {
        self.core().connected()
    }

    /// Whether `name` is connected (an endpoint is connected to itself).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("connected-to-doc").await?;
    /// assert!(endpoint.is_connected_to("connected-to-doc"));
    /// assert!(!endpoint.is_connected_to("elsewhere"));
    /// # Ok(()) }
    /// ```
    pub fn is_connected_to(&self, name: &str) -> bool {
        self.core().holds(Condition::Connected(name))
    }

    /// Waits until `name` is connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("wait-connected-doc").await?;
    /// endpoint.wait_until_connected_to("wait-connected-doc").await?; // itself: at once
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_connected_to(&self, name: &str) -> Result<()> {
        self.core().wait_until(Condition::Connected(name)).await
    }

    /// Waits for the next connection or disconnection (from the first poll
    /// on). To wait for a condition, check it in a loop around this, or
    /// better use a condition wait such as
    /// [`wait_until_connected_to`](Self::wait_until_connected_to): a change
    /// between your check and this call's first poll is not seen.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// let endpoint = lahja::Endpoint::run("changes-doc").await?;
    /// let watcher = tokio::spawn({
    ///     let endpoint = endpoint.clone();
    ///     async move { endpoint.wait_until_connections_change().await }
    /// });
    /// tokio::task::yield_now().await; // let it start waiting
    /// endpoint.stop().await; // stopping wakes every wait, with an error
    /// assert!(watcher.await.unwrap().is_err());
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_connections_change(&self) -> Result<()> {
        self.core().wait_next(Signal::Connections).await
    }

    /// Whether endpoint `remote` (possibly this one) subscribes to `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("endpoint-subscribed-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// assert!(endpoint.is_endpoint_subscribed_to::<Tick>("endpoint-subscribed-doc"));
    /// assert!(!endpoint.is_endpoint_subscribed_to::<Tick>("elsewhere"));
    /// # Ok(()) }
    /// ```
    pub fn is_endpoint_subscribed_to<E: Event>(&self, remote: &str) -> bool {
        self.core()
            .holds(Condition::EndpointSubscribed(remote, E::ID))
    }

    /// Whether any connected endpoint, this one included, subscribes to `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("any-subscribed-doc").await?;
    /// assert!(!endpoint.is_any_endpoint_subscribed_to::<Tick>());
    /// let _ticks = endpoint.stream::<Tick>();
    /// assert!(endpoint.is_any_endpoint_subscribed_to::<Tick>());
    /// # Ok(()) }
    /// ```
    pub fn is_any_endpoint_subscribed_to<E: Event>(&self) -> bool {
        self.core().holds(Condition::AnySubscribed(E::ID))
    }

    /// Whether every connected endpoint subscribes to `E` (this one only
    /// with `include_self`; vacuously true without peers and without self).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("all-subscribed-doc").await?;
    /// assert!(endpoint.are_all_endpoints_subscribed_to::<Tick>(false)); // no peers
    /// assert!(!endpoint.are_all_endpoints_subscribed_to::<Tick>(true));
    /// # Ok(()) }
    /// ```
    pub fn are_all_endpoints_subscribed_to<E: Event>(&self, include_self: bool) -> bool {
        self.core()
            .holds(Condition::AllSubscribed(E::ID, include_self))
    }

    /// Waits until endpoint `remote` subscribes to `E`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("wait-endpoint-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// endpoint.wait_until_endpoint_subscribed_to::<Tick>("wait-endpoint-doc").await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_endpoint_subscribed_to<E: Event>(&self, remote: &str) -> Result<()> {
        self.core()
            .wait_until(Condition::EndpointSubscribed(remote, E::ID))
            .await
    }

    /// Waits until any connected endpoint, this one included, subscribes to `E`.
    pub async fn wait_until_any_endpoint_subscribed_to<E: Event>(&self) -> Result<()> {
        self.core()
            .wait_until(Condition::AnySubscribed(E::ID))
            .await
    }

    /// Waits until every connected endpoint subscribes to `E` (see
    /// [`are_all_endpoints_subscribed_to`](Self::are_all_endpoints_subscribed_to)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("wait-all-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// endpoint.wait_until_all_endpoints_subscribed_to::<Tick>(true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_all_endpoints_subscribed_to<E: Event>(
        &self,
        include_self: bool,
    ) -> Result<()> {
        self.core()
            .wait_until(Condition::AllSubscribed(E::ID, include_self))
            .await
    }

    /// Waits for the next change of any endpoint's subscriptions or groups,
    /// this one's included, or of the connections (from the first poll on; see
    /// [`wait_until_connections_change`](Self::wait_until_connections_change)
    /// for the pitfall of checking first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("subscriptions-change-doc").await?;
    /// let watcher = tokio::spawn({
    ///     let endpoint = endpoint.clone();
    ///     async move { endpoint.wait_until_endpoint_subscriptions_change().await }
    /// });
    /// tokio::task::yield_now().await; // let it start waiting
    /// let _ticks = endpoint.stream::<Tick>(); // a local change counts too
    /// watcher.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_endpoint_subscriptions_change(&self) -> Result<()> {
        self.core().wait_next(Signal::Subscriptions).await
    }

    /// How many of this endpoint's requests are waiting for an answer
    /// (for tests and diagnostics).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::Event;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = lahja::Endpoint::run("pending-doc").await?;
    /// assert_eq!(endpoint.pending_requests(), 0);
    /// # Ok(()) }
    /// ```
    pub fn pending_requests(&self) -> usize {
        self.core().pending_count()
    }
}
