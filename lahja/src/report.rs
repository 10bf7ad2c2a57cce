//! What an endpoint says about itself when a tool asks: the built-in
//! request [`Introspect`] and its answer [`Report`].
//!
//! Their wire names start with `lahja.`, a prefix reserved for the
//! library's own types. They are registered like any event, so every
//! endpoint knows them, but only a tool that connects as an observer (see
//! [`Observer`](crate::introspect::Observer)) asks for them, and its
//! questions never reach the endpoint's own sinks.

use serde::{Deserialize, Serialize};

use crate::Event;

/// The built-in request every endpoint answers with a [`Report`].
///
/// ```
/// use lahja::Event;
/// use lahja::introspect::Introspect;
///
/// assert_eq!(Introspect::NAME, "lahja.Introspect");
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[event(name = "lahja.Introspect")]
#[request(response = Report)]
pub struct Introspect {}

/// Everything an endpoint tells a tool about itself.
///
/// ```
/// use lahja::introspect::Report;
///
/// let report = Report::default();
/// assert!(report.peers.is_empty());
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[event(name = "lahja.Report")]
pub struct Report {
    /// The endpoint's name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// The path of its executable (empty if unknown).
    pub executable: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The version of the `lahja` crate it runs.
    pub version: String,
    /// How it can be reached: `socket PATH`, `zenoh BUS`.
    pub transports: Vec<String>,
    /// The groups it belongs to.
    pub groups: Vec<String>,
    /// Its connected peers, by name.
    pub peers: Vec<PeerReport>,
    /// The event types its own sinks subscribe to, by wire name.
    pub subscriptions: Vec<TypeName>,
    /// Traffic per event type: every type it sent or received.
    pub traffic: Vec<TypeTraffic>,
    /// Its requests still waiting for answers, oldest first.
    pub pending: Vec<PendingRequest>,
    /// Peers it refused, oldest first: (name, reason).
    pub refused: Vec<(String, String)>,
}

/// One connected peer, as the reporting endpoint sees it.
///
/// ```
/// let peer = lahja::introspect::PeerReport::default();
/// assert_eq!(peer.frames_out, 0);
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerReport {
    /// The peer's name.
    pub name: String,
    /// When it connected, in milliseconds since the Unix epoch.
    pub connected_unix_ms: u64,
    /// Bytes waiting in the outgoing queue to it.
    pub queued_bytes: u64,
    /// The bound of that queue (`EndpointOptions::queue_bytes`).
    pub queue_limit: u64,
    /// Frames received from it.
    pub frames_in: u64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Frames queued to it.
    pub frames_out: u64,
    /// Bytes queued to it.
    pub bytes_out: u64,
    /// The event types it subscribes to (by wire name where known).
    pub subscriptions: Vec<TypeName>,
    /// The groups it belongs to.
    pub groups: Vec<String>,
}

/// An event type: its wire ID and, where the registry knows it, its name.
///
/// ```
/// let t = lahja::introspect::TypeName::of(lahja::EventId::of("no.such.Type"));
/// assert_eq!(t.name, None);
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypeName {
    /// The wire ID.
    pub id: u64,
    /// The wire name, if the reporting endpoint knows the type.
    pub name: Option<String>,
}

impl TypeName {
    /// The name of `id` in this process's registry.
    pub fn of(id: crate::EventId) -> TypeName {
        TypeName {
            id: id.as_u64(),
            name: crate::registry::lookup(id).map(|info| info.name.to_owned()),
        }
    }
}

/// The traffic of one event type through one endpoint, since it started.
///
/// ```
/// let t = lahja::introspect::TypeTraffic::default();
/// assert_eq!(t.sent + t.received, 0);
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeTraffic {
    /// The type (an ID the registry does not know has no name).
    pub event: TypeName,
    /// Events (and requests, responses) of this type it sent to peers:
    /// one per broadcast, however many peers got it.
    pub sent: u64,
    /// Bytes of those, encoded, counted once per broadcast.
    pub bytes_sent: u64,
    /// Events of this type it received from peers.
    pub received: u64,
    /// Bytes of those, as they arrived.
    pub bytes_received: u64,
    /// `broadcast_nowait` calls refused with `QueueFull`.
    pub dropped_full: u64,
}

/// One request waiting for answers.
///
/// ```
/// let p = lahja::introspect::PendingRequest::default();
/// assert!(p.targets.is_empty());
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingRequest {
    /// The request's type.
    pub event: TypeName,
    /// How long it has waited, in milliseconds.
    pub age_ms: u64,
    /// The endpoints that have not answered yet.
    pub targets: Vec<String>,
}
