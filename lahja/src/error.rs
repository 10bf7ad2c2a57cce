//! The one error type of the crate.

use std::path::PathBuf;

use crate::EventId;

/// `Result<T, lahja::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on the bus.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use lahja::{Endpoint, Error, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct Ping;
///
/// let endpoint = Endpoint::run("errors-doc").await.unwrap();
/// match endpoint.broadcast(Ping).await {
///     Err(Error::NoSubscribers { event }) => assert!(event.ends_with("::Ping")),
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listening on a socket path failed.
    #[error("cannot listen on {}: {reason}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A connection was refused (to self, duplicate, or a peer with another name).
    #[error("connection to `{endpoint}` rejected: {reason}")]
    ConnectionAttemptRejected {
        /// The endpoint we tried to connect to (or that connected to us).
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// `connect_to_endpoints` found nobody listening within `connect_timeout`.
    #[error("no endpoint `{endpoint}` listening at {} in time: {last_error}", path.display())]
    ConnectTimeout {
        /// The endpoint we tried to connect to.
        endpoint: String,
        /// Its socket path.
        path: PathBuf,
        /// The last connection error.
        last_error: String,
    },
    /// The endpoint is not running (it was stopped), or stopped while waiting.
    #[error("endpoint `{endpoint}` is not running: {reason}")]
    Lifecycle {
        /// The endpoint's name.
        endpoint: String,
        /// What could not be done.
        reason: &'static str,
    },
    /// No endpoint the broadcast may reach is subscribed to the event.
    #[error("no subscribers for `{event}`")]
    NoSubscribers {
        /// The event's wire name.
        event: &'static str,
    },
    /// The peer went away before the operation completed.
    #[error("endpoint `{endpoint}` disconnected")]
    RemoteDisconnected {
        /// The peer's name.
        endpoint: String,
    },
    /// A request was answered with a type other than its response type.
    #[error("request `{request}` expects a `{expected}` response but got `{got}`")]
    UnexpectedResponse {
        /// The request's wire name.
        request: &'static str,
        /// The expected response's wire name.
        expected: &'static str,
        /// What came back (its registered name, or its raw ID).
        got: String,
    },
    /// Every endpoint the request reached dropped it without an answer.
    #[error("request `{request}` was dropped without an answer")]
    RequestDropped {
        /// The request's wire name.
        request: &'static str,
    },
    /// Two linked event types share one wire ID.
    #[error(
        "event id {id} is claimed by both `{first}` and `{second}`: pin distinct names with \
         #[event(name = \"...\")] (two semver-incompatible versions of one crate do this too)"
    )]
    DuplicateEventId {
        /// The shared ID.
        id: EventId,
        /// One type (Rust path; the two are sorted).
        first: String,
        /// The other type.
        second: String,
    },
    /// A peer declares the same event ID with another schema.
    #[error(
        "peer `{endpoint}` disagrees on the layout of `{event}`: local schema {local:#018x}, \
         remote {remote:#018x}"
    )]
    SchemaMismatch {
        /// The peer.
        endpoint: String,
        /// The event's wire name.
        event: String,
        /// Our fingerprint.
        local: u64,
        /// The peer's fingerprint.
        remote: u64,
    },
    /// A queue or stream of this target is full (`broadcast_nowait` only).
    #[error("outgoing queue to `{endpoint}` is full")]
    QueueFull {
        /// The first full target's endpoint name.
        endpoint: String,
    },
    /// An event or response is larger than `max_frame_bytes` once encoded
    /// (before compression, since the receiver holds it decompressed):
    /// refused before anything is sent.
    #[error("`{event}` encodes to {bytes} bytes, over max_frame_bytes ({max}); nothing was sent")]
    FrameTooLarge {
        /// The event's wire name.
        event: String,
        /// The frame's size, header included, uncompressed.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// An endpoint or group name breaks the naming rules: 1 to 255 bytes of
    /// UTF-8, without control characters or `/`.
    #[error("invalid name `{}`: {reason}", shorten(name))]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A blocking call's timeout expired.
    #[error("timed out")]
    Timeout,
    /// A blocking call was made on a thread that runs a tokio runtime.
    #[error("a blocking lahja call was made from inside a tokio runtime")]
    BlockingInAsyncContext,
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An event could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The zenoh transport could not start: its session did not open, the
    /// config was invalid, or it was joined from a current-thread runtime
    /// (feature `zenoh`).
    #[error("zenoh: {0}")]
    Zenoh(String),
}

/// A name for a message: at most 64 characters, control characters escaped.
pub(crate) fn shorten(name: &str) -> String {
    let mut short: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().count() > 64 {
        short.push('…');
    }
    short
}
