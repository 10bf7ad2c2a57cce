//! Every event type linked into the binary, by wire ID.
//!
//! `#[derive(Event)]` registers each type with the `inventory` crate before
//! `main` runs. The registry is how an endpoint names an ID that arrived
//! from the wire and checks that a response has the type its request
//! expects.
//!
//! ```
//! use lahja::{Event, registry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! #[event(name = "docs.Hello")]
//! struct Hello;
//!
//! let info = registry::lookup(Hello::ID).expect("registered");
//! assert_eq!(info.name, "docs.Hello");
//! assert!(info.rust_type.ends_with("::Hello"));
//! assert!(registry::all().any(|i| i.id == Hello::ID));
//! ```
//!
//! # Types from other crates
//!
//! A type registered in a dependency crate is only linked, and so only
//! registered, when the binary references that crate. A process that only
//! forwards IDs of a crate's types should still write `use that_crate as _;`.
//!
//! # Duplicate IDs
//!
//! Two linked types with the same ID (two types pinned to one name, two
//! semver-incompatible versions of one crate, or a 64-bit hash collision)
//! make every endpoint creation fail with
//! [`Error::DuplicateEventId`].

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::{Error, Event, EventId, Request, Result};

/// What the registry knows of one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventInfo {
    /// The wire ID, `EventId::of(name)`.
    pub id: EventId,
    /// The wire name ([`Event::NAME`]).
    pub name: &'static str,
    /// The Rust path of the type, even when the wire name is pinned.
    pub rust_type: &'static str,
    /// The schema fingerprint ([`Event::SCHEMA`]).
    pub schema: u64,
    /// For a request, the ID of its response type.
    pub response: Option<EventId>,
}

inventory::collect!(EventInfo);

/// Every registered event type, in no particular order.
///
/// ```
/// // lahja registers no events of its own, so this lists the user's types.
/// for info in lahja::registry::all() {
///     println!("{} = {}", info.name, info.id);
/// }
/// ```
pub fn all() -> impl Iterator<Item = &'static EventInfo> {
    inventory::iter::<EventInfo>.into_iter()
}

/// The registered type with this ID (with duplicates, one of them).
///
/// ```
/// assert!(lahja::registry::lookup(lahja::EventId::of("no.such.Event")).is_none());
/// ```
pub fn lookup(id: EventId) -> Option<&'static EventInfo> {
    table().by_id.get(&id).copied()
}

/// How to trace the serde format of one registered type, submitted by the
/// derive next to its [`EventInfo`] (a function, since tracing runs serde
/// code and cannot be `const`).
#[doc(hidden)]
#[derive(Debug)]
pub struct FormatTracer {
    id: EventId,
    trace: fn() -> u64,
}

inventory::collect!(FormatTracer);

/// The tracer for `E`.
#[doc(hidden)]
pub const fn format_tracer<E: Event>() -> FormatTracer {
    FormatTracer {
        id: E::ID,
        trace: format_fingerprint::<E>,
    }
}

/// A fingerprint of the whole serde format of `E`: the layout of every
/// type it contains, as `serde-reflection` traces it (names, order and
/// kinds of fields and variants, down to the primitives). 0 when the type
/// cannot be traced (a `Deserialize` that rejects the tracer's sample
/// values); such a type is checked by its outer [`Event::SCHEMA`] alone.
fn format_fingerprint<E: Event>() -> u64 {
    // Tracing runs the type's own Deserialize on sample values: a panic
    // there means "cannot be traced", not a failed handshake.
    std::panic::catch_unwind(trace_format::<E>).unwrap_or(0)
}

fn trace_format<E: Event>() -> u64 {
    let mut tracer = serde_reflection::Tracer::new(serde_reflection::TracerConfig::default());
    let Ok((format, _)) = tracer.trace_simple_type::<E>() else {
        return 0;
    };
    let Ok(registry) = tracer.registry() else {
        return 0;
    };
    let mut bytes = b"lahja-format/1\0".to_vec();
    if crate::codec::encode_into(&(format, registry), &mut bytes).is_err() {
        return 0;
    }
    // 0 means "not traced": a real fingerprint never collides with it.
    crate::event::fnv1a64(&bytes).max(1)
}

/// Every registered type's format fingerprint, traced once per process
/// (by [`check`], at the first endpoint's start, so never under a lock).
fn formats() -> &'static HashMap<EventId, u64> {
    static FORMATS: OnceLock<HashMap<EventId, u64>> = OnceLock::new();
    FORMATS.get_or_init(|| {
        inventory::iter::<FormatTracer>
            .into_iter()
            .map(|tracer| (tracer.id, (tracer.trace)()))
            .collect()
    })
}

/// The format fingerprint of a registered type (0: unknown or untraced).
pub(crate) fn format_of(id: EventId) -> u64 {
    formats().get(&id).copied().unwrap_or(0)
}

/// How to show a value of one registered type to a person, submitted by
/// the derive: its `Debug` rendering, or `None` where it has none.
#[doc(hidden)]
#[derive(Debug)]
pub struct Renderer {
    id: EventId,
    render: fn(&[u8]) -> Option<String>,
}

inventory::collect!(Renderer);

impl Renderer {
    /// The renderer of the type with this ID.
    #[doc(hidden)]
    pub const fn new(id: EventId, render: fn(&[u8]) -> Option<String>) -> Renderer {
        Renderer { id, render }
    }
}

/// A person's view of an encoded body of type `id`: its `Debug` rendering
/// if this process knows the type and the type implements `Debug`.
pub(crate) fn render(id: EventId, body: &[u8]) -> Option<String> {
    type Render = fn(&[u8]) -> Option<String>;
    static RENDERERS: OnceLock<HashMap<EventId, Render>> = OnceLock::new();
    let renderers = RENDERERS.get_or_init(|| {
        inventory::iter::<Renderer>
            .into_iter()
            .map(|r| (r.id, r.render))
            .collect()
    });
    // A type's own Debug may panic: that is "cannot show", not a crash.
    let render = renderers.get(&id)?;
    std::panic::catch_unwind(|| render(body)).ok().flatten()
}

/// What sending a value written as JSON takes: the endpoint's core
/// (erased: the registry sits below the bus) and the JSON; the answer as
/// JSON (`null` for a plain event).
#[doc(hidden)]
pub type JsonSend = fn(
    std::sync::Arc<dyn std::any::Any + Send + Sync>,
    String,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<String, String>> + Send>,
>;

/// How to send one registered type from JSON, submitted by the derive.
#[doc(hidden)]
#[derive(Debug)]
pub struct JsonSender {
    id: EventId,
    send: JsonSend,
}

inventory::collect!(JsonSender);

impl JsonSender {
    /// The sender of the type with this ID.
    #[doc(hidden)]
    pub const fn new(id: EventId, send: JsonSend) -> JsonSender {
        JsonSender { id, send }
    }
}

/// How to send a value of type `id` written as JSON, if this process
/// knows the type.
pub(crate) fn json_sender(id: EventId) -> Option<JsonSend> {
    static SENDERS: OnceLock<HashMap<EventId, JsonSend>> = OnceLock::new();
    let senders = SENDERS.get_or_init(|| {
        inventory::iter::<JsonSender>
            .into_iter()
            .map(|s| (s.id, s.send))
            .collect()
    });
    senders.get(&id).copied()
}

struct Table {
    by_id: HashMap<EventId, &'static EventInfo>,
    /// The first collision found, names sorted so the message is stable.
    duplicate: Option<(EventId, &'static str, &'static str)>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_id = HashMap::new();
        let mut duplicate = None;
        for info in all() {
            if let Some(first) = by_id.insert(info.id, info) {
                let (a, b) = if first.rust_type <= info.rust_type {
                    (first.rust_type, info.rust_type)
                } else {
                    (info.rust_type, first.rust_type)
                };
                duplicate.get_or_insert((info.id, a, b));
            }
        }
        Table { by_id, duplicate }
    })
}

/// Fails with [`Error::DuplicateEventId`] if two linked types share an ID.
pub(crate) fn check() -> Result<()> {
    formats();
    match table().duplicate {
        Some((id, first, second)) => Err(Error::DuplicateEventId {
            id,
            first: first.to_owned(),
            second: second.to_owned(),
        }),
        None => Ok(()),
    }
}

/// A human name for an ID: the registered wire name, else the raw ID.
pub(crate) fn describe(id: EventId) -> String {
    match lookup(id) {
        Some(info) => info.name.to_owned(),
        None => format!("unregistered event {id}"),
    }
}

/// The registry entry of an event (used by the derive).
pub(crate) const fn event_info<E: Event>(rust_type: &'static str) -> EventInfo {
    EventInfo {
        id: E::ID,
        name: E::NAME,
        rust_type,
        schema: E::SCHEMA,
        response: None,
    }
}

/// The registry entry of a request (used by the derive).
pub(crate) const fn request_info<R: Request>(rust_type: &'static str) -> EventInfo {
    EventInfo {
        response: Some(<R::Response as Event>::ID),
        ..event_info::<R>(rust_type)
    }
}
