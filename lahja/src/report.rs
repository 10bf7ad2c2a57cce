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
    /// Observers connected to it now (the one asking included).
    pub observers: u64,
    /// Taps open on it now.
    pub taps: u64,
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

/// The built-in request for a live copy of what an endpoint sends and
/// receives: each copy comes back as a [`Tapped`] with this request's ID,
/// until the observer closes.
///
/// ```
/// use lahja::Event;
/// assert_eq!(lahja::introspect::Tap::NAME, "lahja.Tap");
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[event(name = "lahja.Tap")]
#[request(response = Tapped)]
pub struct Tap {
    /// The event IDs to copy; empty: every type.
    pub types: Vec<u64>,
}

/// Which way a tapped frame went, seen from the tapped endpoint.
///
/// ```
/// assert_ne!(lahja::introspect::Direction::Sent, lahja::introspect::Direction::Received);
/// ```
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// It sent the frame to `targets`.
    #[default]
    Sent,
    /// It received the frame from `origin`.
    Received,
}

/// What a tapped frame was.
///
/// ```
/// let kind = lahja::introspect::FrameKind::Response;
/// assert_eq!(format!("{kind:?}"), "Response");
/// ```
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameKind {
    /// A broadcast event.
    #[default]
    Event,
    /// A request (its `request_id` pairs it with its response).
    Request,
    /// A response to the request with the same `request_id`.
    Response,
}

/// One copy of a frame a tapped endpoint sent or received.
///
/// ```
/// let copy = lahja::introspect::Tapped::default();
/// assert_eq!(copy.lost, 0);
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[event(name = "lahja.Tapped")]
pub struct Tapped {
    /// When the endpoint sent or received it, in microseconds since the
    /// Unix epoch.
    pub time_unix_us: u64,
    /// Which way it went.
    pub direction: Direction,
    /// Event, request or response.
    pub kind: FrameKind,
    /// Its type.
    pub event: TypeName,
    /// For requests and responses, the request ID that pairs them.
    pub request_id: u64,
    /// Who sent it.
    pub origin: String,
    /// Who it went to.
    pub targets: Vec<String>,
    /// Its body size in bytes, as on the wire.
    pub size: u64,
    /// Its `Debug` rendering, where the tapped endpoint knows the type and
    /// the type implements `Debug`, cut after 4 KiB; `None` for a body
    /// over 64 KiB (compressed or not).
    pub value: Option<String>,
    /// Where there is no `value`: the first 64 bytes of the body
    /// (decompressed), in hex.
    pub hex: Option<String>,
    /// Copies this tap lost so far because the observer read too slowly.
    pub lost: u64,
}

/// The built-in request to broadcast an event, or send a request, written
/// as JSON: the endpoint that knows the type decodes it and sends it as
/// itself, routed as by `broadcast` or `request`.
///
/// ```
/// use lahja::Event;
/// assert_eq!(lahja::introspect::SendJson::NAME, "lahja.SendJson");
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[event(name = "lahja.SendJson")]
#[request(response = SentJson)]
pub struct SendJson {
    /// The type's wire name.
    pub event: String,
    /// The value, as JSON (serde's representation of the type).
    pub json: String,
    /// How long to wait for a request's answer, in milliseconds.
    pub timeout_ms: u64,
    /// Whether the tool means a request (`lahja request`) or an event
    /// (`lahja send`); the endpoint refuses the other kind unsent.
    pub request: bool,
}

/// The answer to [`SendJson`]: the response as JSON (`null` for an
/// event), or why nothing was sent or answered.
///
/// ```
/// let sent = lahja::introspect::SentJson { outcome: Ok("null".into()) };
/// assert!(sent.outcome.is_ok());
/// ```
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[event(name = "lahja.SentJson")]
pub struct SentJson {
    /// The answer as JSON, or the error.
    pub outcome: Result<String, String>,
}
