//! A typed, multi-process event bus.
//!
//! Processes run [`Endpoint`]s that broadcast events, subscribe to them
//! (callbacks, streams, `wait_for`) and make typed request/response calls.
//! It is a Rust counterpart of the Python library
//! [lahja](https://github.com/ethereum/lahja), checked at compile time:
//! a request names its response type, and answering with another type does
//! not compile.
//!
//! # Declaring events
//!
//! ```
//! use lahja::Event;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! pub struct BlockImported { pub number: u64 }
//!
//! // A request names its response type; the pair is checked at compile time.
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! #[request(response = PeerCount)]
//! pub struct GetPeerCount;
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! pub struct PeerCount(pub usize);
//!
//! // The wire name can be pinned, so a type can move between modules or
//! // crates without changing its wire ID.
//! #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! #[event(name = "trinity.NewBlock")]
//! pub struct NewBlock { pub hash: [u8; 32] }
//! ```
//!
//! `#[derive(Event)]` implements [`Event`] (a stable wire name and
//! [`EventId`], and a schema fingerprint) and registers the type in the
//! [`registry`]. Structs and enums are accepted; unions and generic types
//! are compile errors. Field types are whatever serde can carry in a
//! non-self-describing format: no `#[serde(flatten)]`, no `untagged` enums.
//!
//! # Using an endpoint
//!
//! ```
//! # use lahja::Event;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! # #[request(response = PeerCount)]
//! # pub struct GetPeerCount;
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! # pub struct PeerCount(pub usize);
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! # pub struct BlockImported { pub number: u64 }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lahja::Result<()> {
//! use lahja::Endpoint;
//!
//! let endpoint = Endpoint::run("node").await?;
//!
//! // Answer requests...
//! let _answers = endpoint.handle_requests(|_: GetPeerCount| async { PeerCount(8) });
//! // ...and make them: the answer is a `PeerCount`, checked by the compiler.
//! let PeerCount(peers) = endpoint.request(GetPeerCount).await?;
//! assert_eq!(peers, 8);
//!
//! // Streams are bounded; a full stream makes `broadcast` wait.
//! let mut blocks = endpoint.stream::<BlockImported>();
//! endpoint.broadcast(BlockImported { number: 1 }).await?;
//! assert_eq!(blocks.next().await.unwrap().number, 1);
//! # Ok(()) }
//! ```
//!
//! # Across processes
//!
//! An endpoint [serves](Endpoint::serve) on a Unix socket and
//! [connects](Endpoint::connect_to_endpoints) to others by name; each
//! connection carries events both ways. Endpoints tell their peers what they
//! subscribe to, so events travel only where they are wanted. There is no
//! broker: an event reaches the endpoints directly connected to its sender.
//!
//! ```no_run
//! # use lahja::Event;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! # #[request(response = PeerCount)]
//! # pub struct GetPeerCount;
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug)]
//! # pub struct PeerCount(pub usize);
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lahja::Result<()> {
//! use lahja::{ConnectionConfig, Endpoint};
//!
//! // In one process:
//! let server = Endpoint::serve(ConnectionConfig::from_name("server")).await?;
//! let _answers = server.handle_requests(|_: GetPeerCount| async { PeerCount(8) });
//!
//! // In another:
//! let client = Endpoint::run("client").await?;
//! client.connect_to_endpoints([ConnectionConfig::from_name("server")]).await?;
//! let PeerCount(peers) = client.request(GetPeerCount).await?;
//! println!("{peers} peers");
//! # Ok(()) }
//! ```
//!
//! Event types used by several programs must have the same wire name in
//! each: define them in a shared crate or pin them with
//! `#[event(name = "...")]`. Peers that disagree on a type's layout are
//! refused at connection time ([`Error::SchemaMismatch`]). The wire format
//! is specified in `docs/PROTOCOL.md` of the repository.
//!
//! For threads that do not run async code, [`blocking::Endpoint`] offers
//! the same operations and is an ordinary peer of async endpoints. With the
//! `testing` feature, `lahja::testing` plays one scenario across every mix
//! of processes and endpoint kinds.
//!
//! # Delivery rules
//!
//! * **Order**: events from one endpoint to another arrive in the order sent.
//! * **When `broadcast` returns**, every local target has the event
//!   (callbacks have been called, streams have it buffered) and every remote
//!   target has it in its outgoing queue; the frame is encoded once for all
//!   peers.
//! * **Bounded everywhere**: each peer's outgoing queue holds at most
//!   [`EndpointOptions::queue_bytes`], each stream at most
//!   [`EndpointOptions::stream_capacity`] events, and `broadcast` waits while
//!   a target is full. A full stream slows its connection's reader, so
//!   backpressure reaches the sender through the socket. Consequence: a task
//!   that awaits a request while leaving a full stream of the same sender
//!   undrained stalls that sender.
//! * [`Endpoint::broadcast_nowait`] never waits: a full target gives
//!   [`Error::QueueFull`] and the targets with room still get the event.
//! * **`NoSubscribers`**: with `require_subscriber` (the default), a
//!   broadcast or request that no reachable endpoint (the sender included)
//!   subscribes to fails. Responses are exempt.
//! * **Requests** go to every subscribed endpoint; only
//!   [`Endpoint::stream_requests`] and [`Endpoint::handle_requests`] answer,
//!   the first answer wins, and when every target dropped it the request
//!   fails with [`Error::RequestDropped`] (or [`Error::RemoteDisconnected`]
//!   when the targets went away) instead of hanging. A response goes only
//!   to its request, not to ordinary subscribers of its type.
//! * **Groups**: an endpoint belongs to any number of process groups
//!   ([`EndpointOptions::groups`], [`Endpoint::join_group`]); peers learn
//!   them like subscriptions. [`BroadcastConfig::to_group`] reaches the
//!   subscribed members of one group (the sender too when it is a member).
//! * **Gathered requests**: [`Endpoint::request_all`] yields one item per
//!   target (its answer, `RequestDropped` or `RemoteDisconnected`) and
//!   then ends; a target that dies does not hang it.
//! * **`stop()`** sends what is queued, then closes connections, ends
//!   streams, fails pending requests and waits, and removes the socket file.
//! * **Cancellation**: dropping a stream, a `wait_for` or a `request` future
//!   removes its subscription or pending entry at once.
//! * A panicking callback or handler is logged and contained.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(unreachable_pub, missing_debug_implementations)]
#![doc(test(attr(deny(warnings))))]

// Lets the derive's `::lahja::...` paths resolve in this crate (its own
// built-in types, and its tests).
extern crate self as lahja;

// The layers, bottom up (imports only go down; see docs/ARCHITECTURE.md):
// the vocabulary; the body codec and the registry; the wire; links; the
// bus core; the transport; the typed facade.
mod config;
mod error;
mod event;
mod report;

mod codec;
pub mod registry;

mod shared_memory;
mod wire;

mod link;

mod bus;

mod transport;

pub mod blocking;
mod endpoint;
pub mod introspect;
mod request;
mod sinks;
mod stream;
mod subscription;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "zenoh")]
#[cfg_attr(docsrs, doc(cfg(feature = "zenoh")))]
pub mod zenoh;

pub use config::{
    BroadcastConfig, ConnectionConfig, EndpointOptions, MAX_NAME_BYTES, validate_name,
};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use event::{Event, EventId, GatheredAnswer, Request, RequestId};
pub use request::IncomingRequest;
pub use stream::{EventStream, GatherStream, OriginStream, RequestStream};
pub use subscription::Subscription;

/// `#[derive(Event)]`: implements [`Event`] (and [`Request`] with
/// `#[request(response = T)]`) and registers the type.
///
/// Helper attributes:
/// * `#[event(name = "...")]` pins the wire name (and so the [`EventId`]).
/// * `#[request(response = T)]` makes the type a request answered by `T`.
///
/// ```
/// use lahja::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// #[event(name = "example.Ping")]
/// #[request(response = Pong)]
/// struct Ping;
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// enum Pong { Ok, Busy { retry_ms: u32 } }
///
/// assert_eq!(Ping::NAME, "example.Ping");
/// ```
pub use lahja_derive::Event;

/// Byte buffers that encode in one copy: put
/// `#[serde(with = "lahja::serde_bytes")]` on a `Vec<u8>` field (or use
/// [`serde_bytes::ByteBuf`]). A plain `Vec<u8>` goes through serde one
/// element at a time, which for a megabyte is a million calls each way;
/// the wire format is the same (a length, then the bytes), but the schema
/// says "bytes", so both ends must declare the field alike.
///
/// With
/// [`EndpointOptions::shared_memory_above`](crate::EndpointOptions::shared_memory_above)
/// set, bodies of at least that many bytes go to peers on this machine
/// through shared memory rather than the socket (off by default).
///
/// ```
/// use lahja::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug)]
/// struct Chunk {
///     offset: u64,
///     #[serde(with = "lahja::serde_bytes")]
///     data: Vec<u8>,
/// }
/// # let _ = Chunk { offset: 0, data: vec![1, 2, 3] };
/// ```
pub use serde_bytes;

/// What the derive's generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{
        EventInfo, FormatTracer, JsonSend, JsonSender, Renderer, format_tracer,
    };
    pub use inventory;

    type Answer = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<String, String>> + Send>,
    >;

    fn core_of(
        core: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    ) -> std::result::Result<std::sync::Arc<crate::bus::Core>, String> {
        core.downcast()
            .map_err(|_| "not an endpoint's core".to_owned())
    }

    /// Broadcasts an `E` written as JSON (for `lahja send`).
    pub fn send_json<E: crate::Event>(
        core: std::sync::Arc<dyn std::any::Any + Send + Sync>,
        json: String,
    ) -> Answer {
        Box::pin(async move {
            let core = core_of(core)?;
            let event: E =
                serde_json::from_str(&json).map_err(|e| format!("not a `{}`: {e}", E::NAME))?;
            core.broadcast(event, &crate::BroadcastConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok("null".to_owned())
        })
    }

    /// Sends a request `R` written as JSON and answers with its response
    /// as JSON (for `lahja request`).
    pub fn request_json<R: crate::Request>(
        core: std::sync::Arc<dyn std::any::Any + Send + Sync>,
        json: String,
    ) -> Answer {
        Box::pin(async move {
            let core = core_of(core)?;
            let request: R =
                serde_json::from_str(&json).map_err(|e| format!("not a `{}`: {e}", R::NAME))?;
            let response = core
                .request(request, &crate::BroadcastConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_string(&response).map_err(|e| e.to_string())
        })
    }

    /// Decodes a body, for a type's renderer.
    pub fn decode<E: crate::Event>(body: &[u8]) -> Option<E> {
        crate::codec::decode(body).ok()
    }

    /// A value to render (see the derive's renderer).
    #[derive(Debug)]
    pub struct Render<'a, T>(pub &'a T);

    /// Chosen for a type with `Debug`: `Render<T>` matches before `&Render<T>`.
    pub trait RenderDebug {
        /// The `Debug` rendering.
        fn lahja_render(&self) -> Option<String>;
    }

    /// A rendering is cut after this many bytes (and ends with `…`).
    pub const RENDER_MAX: usize = 4096;

    /// A `fmt::Write` that refuses to grow past [`RENDER_MAX`], so that
    /// formatting a huge value stops early.
    struct Capped(String);

    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = RENDER_MAX.saturating_sub(self.0.len());
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            Err(std::fmt::Error)
        }
    }

    impl<T: std::fmt::Debug> RenderDebug for Render<'_, T> {
        fn lahja_render(&self) -> Option<String> {
            let mut out = Capped(String::new());
            if std::fmt::Write::write_fmt(&mut out, format_args!("{:?}", self.0)).is_err() {
                out.0.push('…');
            }
            Some(out.0)
        }
    }

    /// Chosen for a type without `Debug`: nothing to show.
    pub trait RenderNothing {
        /// `None`.
        fn lahja_render(&self) -> Option<String>;
    }

    impl<T> RenderNothing for &Render<'_, T> {
        fn lahja_render(&self) -> Option<String> {
            None
        }
    }

    /// The registry entry of an event.
    pub const fn event_info<E: crate::Event>(rust_type: &'static str) -> EventInfo {
        crate::registry::event_info::<E>(rust_type)
    }

    /// The registry entry of a request.
    pub const fn request_info<R: crate::Request>(rust_type: &'static str) -> EventInfo {
        crate::registry::request_info::<R>(rust_type)
    }
}
