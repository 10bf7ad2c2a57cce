//! Beyond one machine: endpoints that talk over a [zenoh](https://zenoh.io)
//! network (feature `zenoh`).
//!
//! [`Endpoint::join_zenoh`](crate::Endpoint::join_zenoh) makes every other
//! endpoint on the same **bus** a peer, exactly like a socket peer: the
//! same typed `broadcast`, `stream`, `request`, groups, waits and `stop()`,
//! and no line of event code changes. An endpoint may have socket peers
//! and zenoh peers at once.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> lahja::Result<()> {
//! use lahja::Endpoint;
//! use lahja::zenoh::ZenohConfig;
//!
//! // On machine A:
//! let a = Endpoint::run("a").await?;
//! a.join_zenoh(ZenohConfig::new("my-bus").listen("tcp/0.0.0.0:7447")).await?;
//!
//! // On machine B:
//! let b = Endpoint::run("b").await?;
//! b.join_zenoh(ZenohConfig::new("my-bus").connect("tcp/10.0.0.1:7447")).await?;
//! b.wait_until_connected_to("a").await?;
//! # Ok(()) }
//! ```
//!
//! How it maps (the keys are in `docs/PROTOCOL.md`, "Over zenoh"):
//!
//! * Each endpoint holds a liveliness token `lahja/<bus>/ep/<name>/<zid>`
//!   (`<zid>`: its zenoh session); a
//!   token that appears is a peer to greet, one that disappears (the
//!   process ended, or its link was silent for a [lease](ZenohConfig::lease))
//!   is a peer gone: its pending requests fail with
//!   [`Error::RemoteDisconnected`](crate::Error::RemoteDisconnected).
//! * Frames to a peer go on `lahja/<bus>/to/<peer>/<zid>/from/<us>/<zid>`, the same
//!   frames as on a socket, batched, published with
//!   `CongestionControl::Block`: nothing is dropped, and a slow peer slows
//!   its sender through the bounded outgoing queue.
//! * The first frame each way is the hello: a peer whose schema of a
//!   shared type differs, or that has our name, is not added; the reason
//!   is logged and kept in [`Endpoint::refused_peers`](crate::Endpoint::refused_peers).
//!
//! Where zenoh differs from a socket:
//!
//! * A name already on the bus is refused when joining
//!   ([`Error::ConnectionAttemptRejected`](crate::Error::ConnectionAttemptRejected));
//!   joining through a `connect` locator watches for it for 250 ms after
//!   the first link (an endpoint that only listens has nobody to ask). Two that
//!   join with one name at the same moment both get in, and each peer
//!   keeps the first whose hello it accepted: the other is refused (told
//!   so, and listed in `refused_peers`) and admitted once the first goes.
//! * A link cut without a goodbye is noticed within the lease (10 s by
//!   default), not at once.
//! * A consumer that stops reading holds one of zenoh's receive threads
//!   (two by default, shared by every link of the session: two stalled
//!   consumers in one process stop its whole zenoh traffic) until it reads
//!   again: that is the backpressure, and
//!   a producer blocked longer than zenoh's `wait_before_close` (5 s by
//!   default) closes the link, which removes the peer on both sides.
//! * zenoh has no peer authentication here: whoever reaches the bus's
//!   locators can join it. Use zenoh's own access control or TLS config
//!   through [`ZenohConfig::with_zenoh_config`] where that matters.
//!
//! zenoh needs a multi-thread tokio runtime; joining from a current-thread
//! runtime is an [`Error::Zenoh`](crate::Error::Zenoh).

mod config;
mod keys;
mod peering;
mod session;

/// zenoh's own config, for [`ZenohConfig::with_zenoh_config`].
pub use ::zenoh::Config;
pub use config::ZenohConfig;
pub(crate) use peering::join;
