//! Configuration values: where an endpoint listens, how it buffers, and how
//! one broadcast is routed.

use std::path::PathBuf;
use std::time::Duration;

use crate::RequestId;

/// Where an endpoint listens: its name and its Unix socket path.
///
/// ```
/// use lahja::ConnectionConfig;
///
/// let explicit = ConnectionConfig::new("db", "/tmp/my-app/db.sock");
/// assert_eq!(explicit.path.to_str(), Some("/tmp/my-app/db.sock"));
///
/// let by_name = ConnectionConfig::from_name("db");
/// assert!(by_name.path.ends_with("db.sock"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionConfig {
    /// The endpoint's name.
    pub name: String,
    /// The socket path.
    pub path: PathBuf,
}

impl ConnectionConfig {
    /// A config with an explicit socket path.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        ConnectionConfig {
            name: name.into(),
            path: path.into(),
        }
    }

    /// `<dir>/<name>.sock`, where `<dir>` is `$XDG_RUNTIME_DIR/lahja`, else
    /// `<temp dir>/lahja-<uid>`. Serving creates the folder with mode 0700.
    pub fn from_name(name: impl Into<String>) -> Self {
        let name = name.into();
        let path = runtime_dir().join(format!("{name}.sock"));
        ConnectionConfig { name, path }
    }
}

/// The longest endpoint or group name, in bytes.
///
/// ```
/// use lahja::{MAX_NAME_BYTES, validate_name};
///
/// assert!(validate_name(&"n".repeat(MAX_NAME_BYTES)).is_ok());
/// assert!(validate_name(&"n".repeat(MAX_NAME_BYTES + 1)).is_err());
/// ```
pub const MAX_NAME_BYTES: usize = 255;

/// Checks an endpoint or group name: 1 to [`MAX_NAME_BYTES`] bytes of
/// UTF-8, without control characters or `/` (names become file names and
/// appear in logs).
///
/// ```
/// use lahja::{Error, validate_name};
///
/// assert!(validate_name("trinity.networking-1").is_ok());
/// assert!(matches!(validate_name("a/b"), Err(Error::InvalidName { .. })));
/// assert!(matches!(validate_name(""), Err(Error::InvalidName { .. })));
/// ```
pub fn validate_name(name: &str) -> crate::Result<()> {
    let reason = if name.is_empty() {
        "a name cannot be empty"
    } else if name.len() > MAX_NAME_BYTES {
        "a name is at most 255 bytes"
    } else if name.contains('/') {
        "a name cannot contain `/`"
    } else if name.chars().any(char::is_control) {
        "a name cannot contain control characters"
    } else {
        return Ok(());
    };
    Err(crate::Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// The per-user folder that [`ConnectionConfig::from_name`] uses.
pub(crate) fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("lahja"),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => std::env::temp_dir().join(format!("lahja-{}", unsafe { libc::getuid() })),
    }
}

/// Buffer sizes and timeouts of one endpoint.
///
/// ```
/// use lahja::EndpointOptions;
///
/// let options = EndpointOptions { queue_bytes: 1 << 20, ..Default::default() };
/// assert_eq!(options.max_frame_bytes, 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOptions {
    /// Outgoing bytes buffered per peer before `broadcast` waits (a single
    /// larger frame is still sent, alone). Default 256 KiB: under a
    /// saturating producer, queueing latency is about this many bytes over
    /// the consumer's rate, so bigger is not faster.
    pub queue_bytes: usize,
    /// Events buffered per local stream before `broadcast` waits. Default 1024.
    pub stream_capacity: usize,
    /// The largest frame accepted or sent. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Event bodies of at least this many bytes are compressed with snappy.
    /// Default 1 KiB.
    pub compress_above: usize,
    /// Event, request and response bodies of at least this many bytes go
    /// to peers on this machine (over the Unix socket) through shared
    /// memory instead of the socket: one sealed `memfd` per body, shared
    /// by every such peer of a broadcast, whose descriptor travels over
    /// the socket. They are not compressed, and each counts against the
    /// peer's `queue_bytes` until the peer has decoded it. Peers over
    /// zenoh, and any where it fails, get the body on the wire as usual.
    /// `None`: never, the default: measured here, one memfd per body moves
    /// 1 MiB events at about half the socket's rate (1.2–1.4 GB/s against
    /// 2.4–3.0), the cost of making, mapping and freeing a file per event;
    /// reused segments would be needed to beat the socket.
    ///
    /// The body is still bounded by `max_frame_bytes`: the receiver
    /// decodes it into its own memory, and that is the bound on how much
    /// one event may make it hold.
    ///
    /// ```
    /// use lahja::EndpointOptions;
    ///
    /// let shared = EndpointOptions { shared_memory_above: Some(256 * 1024), ..Default::default() };
    /// assert_eq!(EndpointOptions::default().shared_memory_above, None);
    /// # let _ = shared;
    /// ```
    pub shared_memory_above: Option<usize>,
    /// How long a new connection may take to say hello. Default 10 s.
    pub handshake_timeout: Duration,
    /// How long `connect_to_endpoints` retries a missing, refusing or
    /// busy socket. Default 10 s.
    pub connect_timeout: Duration,
    /// How many requests one `handle_requests` subscription answers at
    /// once. Past it the request stream stays undrained, so requesters
    /// wait (backpressure) instead of the handlers piling up. Default 64;
    /// 0 is taken as 1.
    pub max_concurrent_handlers: usize,
    /// The process groups this endpoint belongs to from the start (see
    /// [`Endpoint::join_group`](crate::Endpoint::join_group)); named like
    /// endpoints. Default none.
    pub groups: Vec<String>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            queue_bytes: 256 * 1024,
            stream_capacity: 1024,
            max_frame_bytes: 16 << 20,
            compress_above: 1024,
            shared_memory_above: None,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_concurrent_handlers: 64,
            groups: Vec::new(),
        }
    }
}

/// How one broadcast is routed.
///
/// The default reaches every subscribed endpoint, the sender included, and
/// fails with [`Error::NoSubscribers`](crate::Error::NoSubscribers) when
/// there is none.
///
/// ```
/// use lahja::BroadcastConfig;
///
/// let to_one = BroadcastConfig::to("client-a");
/// assert_eq!(to_one.filter_endpoint.as_deref(), Some("client-a"));
///
/// let local_only = BroadcastConfig::default().internal().require_subscriber(false);
/// assert!(local_only.internal && !local_only.require_subscriber);
///
/// let to_group = BroadcastConfig::to_group("sync");
/// assert_eq!(to_group.filter_group.as_deref(), Some("sync"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastConfig {
    /// Deliver only to the endpoint with this name (which may be the sender).
    pub filter_endpoint: Option<String>,
    /// Deliver only to members of this process group (the sender too, when
    /// it is a member). With `filter_endpoint` as well, both must hold.
    pub filter_group: Option<String>,
    /// Marks a response: it goes to this request's pending entry at the
    /// endpoint named by `filter_endpoint` (this endpoint when unset),
    /// regardless of subscriptions, and never to ordinary subscribers. Use
    /// [`IncomingRequest::config`](crate::IncomingRequest::config).
    ///
    /// Despite its name (kept from lahja) it holds a *request* ID, not an
    /// event ID.
    pub filter_event_id: Option<RequestId>,
    /// Never leave this process.
    pub internal: bool,
    /// Fail with `NoSubscribers` when no reachable endpoint subscribes.
    pub require_subscriber: bool,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig {
            filter_endpoint: None,
            filter_group: None,
            filter_event_id: None,
            internal: false,
            require_subscriber: true,
        }
    }
}

impl BroadcastConfig {
    /// Deliver only to `endpoint_name`.
    pub fn to(endpoint_name: impl Into<String>) -> Self {
        BroadcastConfig {
            filter_endpoint: Some(endpoint_name.into()),
            ..Self::default()
        }
    }

    /// Deliver only to the subscribed members of group `group_name`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> lahja::Result<()> {
    /// # use lahja::{BroadcastConfig, Endpoint, Error, Event};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    /// # struct Tick;
    /// let endpoint = Endpoint::run("to-group-doc").await?;
    /// let _ticks = endpoint.stream::<Tick>();
    /// let to_sync = BroadcastConfig::to_group("sync");
    /// let refused = endpoint.broadcast_with(Tick, to_sync.clone()).await;
    /// assert!(matches!(refused, Err(Error::NoSubscribers { .. }))); // not a member
    /// endpoint.join_group("sync").await?;
    /// endpoint.broadcast_with(Tick, to_sync).await?;
    /// # Ok(()) }
    /// ```
    pub fn to_group(group_name: impl Into<String>) -> Self {
        BroadcastConfig {
            filter_group: Some(group_name.into()),
            ..Self::default()
        }
    }

    /// Keep the broadcast inside this process.
    pub fn internal(mut self) -> Self {
        self.internal = true;
        self
    }

    /// Whether to fail with `NoSubscribers` when nobody would receive it.
    pub fn require_subscriber(mut self, require: bool) -> Self {
        self.require_subscriber = require;
        self
    }
}
