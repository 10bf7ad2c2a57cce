//! Looking at a running endpoint from outside: what the `lahja` tool
//! uses, and what any program can use too.
//!
//! Every endpoint answers the built-in request [`Introspect`] with a
//! [`Report`]: who it is, its peers and their queues, what it subscribes
//! to (by wire name), its traffic per event type and its pending
//! requests. An [`Observer`] asks it over the endpoint's socket without
//! becoming a peer, so observing changes nothing on the bus.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lahja::Result<()> {
//! use lahja::ConnectionConfig;
//! use lahja::introspect::Observer;
//!
//! let mut observer = Observer::connect(ConnectionConfig::from_name("trinity").path).await?;
//! for peer in observer.report().await?.peers {
//!     println!("{}: {} of {} bytes queued", peer.name, peer.queued_bytes, peer.queue_limit);
//! }
//! # Ok(()) }
//! ```
//!
//! The counters cost the hot path a table lookup and relaxed atomic adds:
//! no lock and no allocation.

pub use crate::report::{
    Direction, FrameKind, Introspect, PeerReport, PendingRequest, Report, SendJson, SentJson, Tap,
    Tapped, TypeName, TypeTraffic,
};
pub use crate::transport::Observer;

/// Removes the socket file at `path` if nobody serves it any more (its
/// endpoint crashed), with its lock file; returns whether it did.
///
/// It never removes a live socket, one an endpoint is binding right now,
/// or a file that is not a socket (those return `Ok(false)`).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("lahja-doc-clean-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("not-a-socket.sock");
/// std::fs::write(&file, b"").unwrap();
/// assert!(!lahja::introspect::remove_stale_socket(&file).unwrap());
/// assert!(file.exists());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn remove_stale_socket(path: impl AsRef<std::path::Path>) -> crate::Result<bool> {
    Ok(crate::transport::remove_if_stale(path.as_ref())?)
}
