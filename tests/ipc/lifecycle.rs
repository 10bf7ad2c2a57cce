//! Stopping across processes: what is queued is delivered, what waits is
//! failed, peers notice at once.

use crate::support;

use lahja::{BroadcastConfig, Error};
use lahja_workspace::events::{Double, Numbered};
use support::{BOTH_WAYS, Direction, TempDir, pair, subscribed, within};

#[tokio::test]
async fn broadcast_then_stop_delivers_everything() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("stream-check 20000").await;
        subscribed::<Numbered>(&endpoint, &peer.name).await;
        for n in 0..20_000 {
            endpoint.broadcast(Numbered(n)).await.unwrap();
        }
        endpoint.stop().await;
        let report = peer.line("in-order").await;
        assert!(
            report.starts_with("in-order 20000"),
            "{direction:?}: {report}"
        );
    }
}

#[tokio::test]
async fn stop_fails_remote_requests_and_ends_streams_and_the_peer_notices() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, Direction::TestServes).await;
    peer.ok("hold-requests").await;
    peer.ok("stream").await;
    within(
        "subscribed",
        endpoint.wait_until_any_endpoint_subscribed_to::<Double>(),
    )
    .await
    .unwrap();
    let mut local = endpoint.stream::<Numbered>();
    let request = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.request(Double(1)).await }
    });
    peer.line("holding 1").await;
    let socket = endpoint.ipc_path().unwrap().to_owned();
    endpoint.stop().await;
    assert!(matches!(
        within("request", request).await.unwrap(),
        Err(Error::Lifecycle { .. })
    ));
    assert_eq!(local.next().await, None);
    assert!(!socket.exists());
    // The peer sees the connection go.
    let gone = endpoint.name().to_owned();
    peer.until("connected", |names| !names.contains(&gone))
        .await;
}

#[tokio::test]
async fn a_request_to_a_peer_that_stops_cleanly_fails_instead_of_hanging() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("hold-requests").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        let request = tokio::spawn({
            let endpoint = endpoint.clone();
            async move {
                endpoint
                    .request_with(Double(2), BroadcastConfig::default())
                    .await
            }
        });
        peer.line("holding 1").await;
        peer.ok("stop").await;
        // The held request is dropped with the peer's streams, or the peer
        // is gone first: either way the request fails at once.
        let outcome = within("request", request).await.unwrap();
        assert!(
            matches!(
                outcome,
                Err(Error::RequestDropped { .. } | Error::RemoteDisconnected { .. })
            ),
            "{direction:?}: {outcome:?}"
        );
    }
}
