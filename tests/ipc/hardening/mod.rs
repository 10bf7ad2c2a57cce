//! Outside the friendly path: frames that lie, programs the size of real
//! ones, peers that never read, names that are not names, other users'
//! sockets, and a fuzzer speaking the protocol to a live endpoint.
//!
//! Victims are `lahja-peer` processes that abort on any panic, so a crash
//! shows in their exit status; after each abuse an ordinary client still
//! gets answers from them.

mod access;
mod frames;
mod fuzz;
mod observers;
mod resources;

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error, Event};
use lahja_workspace::events::{
    Blob, Double, Doubled, Echo, Nested, Numbered, Rich, Tag, WhoAreYou,
};
use support::{Peer, TempDir, raw, subscribed, unique, within};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// A length prefix claiming 2^62 bytes (or elements), with nothing behind it.
fn lie() -> Vec<u8> {
    let mut claim = vec![253];
    claim.extend_from_slice(&(1u64 << 62).to_le_bytes());
    claim
}

/// A raw connection to `path` that completed the handshake as `name`,
/// subscribed to `subscriptions`.
async fn handshaken(path: &std::path::Path, name: &str, subscriptions: &[u64]) -> UnixStream {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(&raw::hello(name, &[], subscriptions, raw::VERSION))
        .await
        .unwrap();
    let (kind, ..) = within("the victim's hello", raw::read_frame(&mut stream))
        .await
        .expect("a hello");
    assert_eq!(kind, raw::HELLO);
    stream
}

/// Sends `blob` to `peer` (which never reads) until its queue is full.
async fn fill_queue(endpoint: &Endpoint, peer: &str, blob: Blob) {
    let to = BroadcastConfig::to(peer);
    within("a full queue", async {
        while endpoint
            .broadcast_nowait_with(blob.clone(), to.clone())
            .is_ok()
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The victim is alive and answers an ordinary client's request.
async fn still_answers(victim: &mut Peer, dir: &TempDir) {
    victim.assert_alive();
    let client = Endpoint::run(unique("client")).await.unwrap();
    within(
        "connecting to the victim",
        client.connect_to_endpoints([dir.config(&victim.name)]),
    )
    .await
    .unwrap();
    let to = BroadcastConfig::to(victim.name.clone());
    let answer = within("the victim's answer", client.request_with(Double(21), to)).await;
    assert_eq!(answer.unwrap(), Doubled(42));
    client.stop().await;
    victim.assert_alive();
}
