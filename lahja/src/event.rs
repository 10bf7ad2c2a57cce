//! The [`Event`] and [`Request`] traits and the wire identities:
//! [`EventId`] of a type, [`RequestId`] of one request.

use std::fmt;

/// A type that can travel on the bus.
///
/// Implement it with `#[derive(Event)]`, never by hand: the derive also
/// registers the type in the [`registry`](crate::registry), which is how
/// endpoints check types that arrive from other processes.
///
/// ```
/// use lahja::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// pub struct BlockImported { pub number: u64 }
///
/// assert!(BlockImported::NAME.ends_with("::BlockImported"));
/// assert_eq!(BlockImported::ID, lahja::EventId::of(BlockImported::NAME));
/// ```
///
/// # The schema fingerprint
///
/// [`SCHEMA`](Event::SCHEMA) hashes the type's shape as written: variant
/// and field names, field type tokens, enum discriminants and
/// `#[serde(...)]` attributes, in order. It catches added, removed,
/// renamed, reordered or retyped fields. It does not look inside field
/// types, and it compares tokens, not types (`Vec<u8>` and
/// `std::vec::Vec<u8>` differ).
///
/// A change inside a nested struct is caught by a second, run-time check:
/// each endpoint's hello also carries a fingerprint of every type's whole
/// serde format (traced with `serde-reflection`: the names, order and
/// kinds of all fields and variants of every type it contains), and peers
/// that disagree are refused with `SchemaMismatch` too. A type whose
/// `Deserialize` rejects the tracer's sample values (say, one that
/// validates its input) cannot be traced and is checked by `SCHEMA` alone.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lahja event",
    label = "not an event",
    note = "add `#[derive(lahja::Event)]` (with `Serialize, Deserialize, Clone`) to `{Self}`"
)]
pub trait Event:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Stable wire name: `concat!(module_path!(), "::", stringify!(TypeName))`
    /// unless `#[event(name = "...")]` pins it.
    const NAME: &'static str;
    /// Stable 64-bit wire ID, `EventId::of(NAME)`, computed at compile time.
    const ID: EventId;
    /// Fingerprint of the type's shape as written (see the trait docs).
    const SCHEMA: u64;
}

/// An event that expects an answer of type [`Request::Response`].
///
/// Implemented by `#[derive(Event)]` together with
/// `#[request(response = T)]`:
///
/// ```
/// use lahja::{Event, Request};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[request(response = PeerCount)]
/// pub struct GetPeerCount;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// pub struct PeerCount(pub usize);
///
/// fn response_id<R: Request>() -> lahja::EventId { <R::Response as Event>::ID }
/// assert_eq!(response_id::<GetPeerCount>(), PeerCount::ID);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request",
    label = "`{Self}` has no response type",
    note = "add `#[request(response = YourResponse)]` next to `#[derive(Event)]` on `{Self}`"
)]
pub trait Request: Event {
    /// The type that answers this request.
    type Response: Event;
}

/// The wire identity of an event type: FNV-1a 64 over the UTF-8 bytes of
/// its [`Event::NAME`].
///
/// Any implementation, in any language, gets the same ID for the same name.
///
/// ```
/// use lahja::EventId;
///
/// const ID: EventId = EventId::of("trinity.NewBlock");
/// assert_eq!(ID.as_u64(), 0x3b0c_5150_cb90_3421);
/// assert_eq!(EventId::of("").as_u64(), 0xcbf2_9ce4_8422_2325); // the FNV offset basis
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u64);

impl EventId {
    /// The ID of a wire name (FNV-1a 64, offset basis `0xcbf29ce484222325`,
    /// prime `0x100000001b3`).
    pub const fn of(name: &str) -> EventId {
        EventId(fnv1a64(name.as_bytes()))
    }

    /// The raw 64-bit value, as sent on the wire.
    ///
    /// ```
    /// assert_eq!(lahja::EventId::of("a").as_u64(), 0xaf63_dc4c_8601_ec8c);
    /// ```
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The ID with this raw value, as read from the wire.
    ///
    /// ```
    /// use lahja::EventId;
    /// let id = EventId::of("x");
    /// assert_eq!(EventId::from_u64(id.as_u64()), id);
    /// ```
    pub const fn from_u64(raw: u64) -> EventId {
        EventId(raw)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({:#018x})", self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}

/// FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
pub(crate) const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The identity of one outgoing request, unique per endpoint.
///
/// It appears in [`BroadcastConfig::filter_event_id`](crate::BroadcastConfig::filter_event_id) of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub(crate) u64);

/// One target's answer to a gathered request
/// ([`Endpoint::request_all`](crate::Endpoint::request_all)): the name of
/// the endpoint, and its response or why there is none.
///
/// ```
/// use lahja::{Error, Event, GatheredAnswer};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// # #[request(response = Pong)]
/// # struct Ping;
/// # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// # struct Pong;
/// fn describe(item: &GatheredAnswer<Ping>) -> String {
///     match item {
///         (origin, Ok(Pong)) => format!("{origin} answered"),
///         (origin, Err(Error::RemoteDisconnected { .. })) => format!("{origin} went away"),
///         (origin, Err(error)) => format!("{origin}: {error}"),
///     }
/// }
/// assert_eq!(describe(&("a".into(), Ok(Pong))), "a answered");
/// ```
pub type GatheredAnswer<R> = (std::sync::Arc<str>, crate::Result<<R as Request>::Response>);
