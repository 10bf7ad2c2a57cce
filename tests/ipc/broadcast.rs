//! Broadcasting across processes, in both directions of a pair: lahja's
//! common broadcast tests, test_internal.py, test_broadcast_config.py,
//! and order, size and volume.

use crate::support;

use lahja::{BroadcastConfig, Endpoint, Error, Event};
use lahja_workspace::events::{Blob, Numbered, Unheard};
use support::{BOTH_WAYS, Peer, TempDir, pair, unique, within};

#[tokio::test]
async fn broadcast_from_this_process_to_the_other() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("subscribe").await;
        within(
            "peer subscribed",
            endpoint.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
        )
        .await
        .unwrap();
        endpoint.broadcast(Numbered(42)).await.unwrap();
        assert_eq!(peer.line("got").await, "got 42", "{direction:?}");
    }
}

#[tokio::test]
async fn broadcast_from_the_other_process_to_this_one() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let mut stream = endpoint.stream_with_origin::<Numbered>();
        peer.ok(&format!("wait-subscribed {} numbered", endpoint.name()))
            .await;
        peer.ok("broadcast 7").await;
        let (origin, event) = within("event", stream.next()).await.unwrap();
        assert_eq!(
            (&*origin, event),
            (peer.name.as_str(), Numbered(7)),
            "{direction:?}"
        );
    }
}

#[tokio::test]
async fn wait_for_receives_a_remote_event_and_unsubscribes_on_both_sides() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let waiter = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.wait_for::<Numbered>().await }
        });
        peer.ok(&format!("wait-subscribed {} numbered", endpoint.name()))
            .await;
        assert_eq!(
            peer.ok(&format!("is-subscribed {}", endpoint.name())).await,
            "true"
        );
        peer.ok("broadcast 5").await;
        assert_eq!(
            within("wait_for", waiter).await.unwrap().unwrap(),
            Numbered(5)
        );
        assert!(endpoint.get_subscribed_events().is_empty());
        // The peer hears of the unsubscription too.
        peer.sees_subscribed(endpoint.name(), false).await;
    }
}

#[tokio::test]
async fn broadcast_without_listeners_throws_unless_allowed() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        assert!(matches!(
            endpoint.broadcast(Numbered(1)).await,
            Err(Error::NoSubscribers { .. })
        ));
        endpoint
            .broadcast_with(
                Numbered(1),
                BroadcastConfig::default().require_subscriber(false),
            )
            .await
            .unwrap();
        let reply = peer.reply("broadcast 1").await;
        assert!(reply.starts_with("err NoSubscribers"), "{reply}");
    }
}

#[tokio::test]
async fn internal_events_never_leave_the_process() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let mut local = endpoint.stream::<Numbered>();
        peer.ok("subscribe").await;
        within(
            "peer subscribed",
            endpoint.wait_until_all_endpoints_subscribed_to::<Numbered>(true),
        )
        .await
        .unwrap();
        for n in 0..5 {
            endpoint
                .broadcast_with(Numbered(n), BroadcastConfig::default().internal())
                .await
                .unwrap();
        }
        endpoint.broadcast(Numbered(100)).await.unwrap();
        for n in 0..5 {
            assert_eq!(local.next().await, Some(Numbered(n)));
        }
        // Per-sender order: the first event the peer sees is the non-internal one.
        assert_eq!(peer.line("got").await, "got 100", "{direction:?}");
    }
}

#[tokio::test]
async fn matching_is_by_exact_id_across_processes() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("subscribe").await;
        within(
            "subscribed",
            endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>(),
        )
        .await
        .unwrap();
        assert!(!endpoint.is_any_endpoint_subscribed_to::<Unheard>());
        endpoint
            .broadcast_with(
                Unheard,
                BroadcastConfig::default().require_subscriber(false),
            )
            .await
            .unwrap();
        endpoint.broadcast(Numbered(9)).await.unwrap();
        assert_eq!(peer.line("got").await, "got 9");
    }
}

/// A server with two client processes (lahja's `server_with_two_clients`).
async fn server_with_two_clients(dir: &TempDir) -> (Endpoint, Peer, Peer) {
    let name = unique("server");
    let server = Endpoint::serve(dir.config(&name)).await.unwrap();
    let mut clients = Vec::new();
    for client in ["client-a", "client-b"] {
        let mut peer = Peer::running(&unique(client)).await;
        peer.ok(&format!("connect {name} {}", dir.socket(&name).display()))
            .await;
        within(
            "client connected",
            server.wait_until_connected_to(&peer.name),
        )
        .await
        .unwrap();
        clients.push(peer);
    }
    let b = clients.pop().unwrap();
    let a = clients.pop().unwrap();
    (server, a, b)
}

#[tokio::test]
async fn broadcasts_reach_all_clients_or_only_the_named_one() {
    let dir = TempDir::new();
    let (server, mut a, mut b) = server_with_two_clients(&dir).await;
    a.ok("subscribe").await;
    b.ok("subscribe").await;
    within(
        "both subscribed",
        server.wait_until_all_endpoints_subscribed_to::<Numbered>(false),
    )
    .await
    .unwrap();
    assert!(server.are_all_endpoints_subscribed_to::<Numbered>(false));
    assert!(!server.are_all_endpoints_subscribed_to::<Numbered>(true));

    server.broadcast(Numbered(1)).await.unwrap();
    server
        .broadcast_with(Numbered(2), BroadcastConfig::to(a.name.clone()))
        .await
        .unwrap();
    server.broadcast(Numbered(3)).await.unwrap();
    assert_eq!(a.line("got").await, "got 1");
    assert_eq!(a.line("got").await, "got 2");
    assert_eq!(a.line("got").await, "got 3");
    assert_eq!(b.line("got").await, "got 1");
    // b never got 2: its next event is 3.
    assert_eq!(b.line("got").await, "got 3");
}

#[tokio::test]
async fn a_panicking_remote_subscriber_does_not_stop_its_endpoint() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("subscribe-panicky").await;
        within(
            "subscribed",
            endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>(),
        )
        .await
        .unwrap();
        for n in 0..4 {
            endpoint.broadcast(Numbered(n)).await.unwrap();
        }
        assert_eq!(peer.line("got").await, "got 0");
        assert_eq!(peer.line("got").await, "got 2");
        assert!(endpoint.is_connected_to(&peer.name));
    }
}

#[tokio::test]
async fn large_events_round_trip_compressed_and_not() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let mut blobs = endpoint.stream::<Blob>();
        peer.ok(&format!("wait-subscribed {} blob", endpoint.name()))
            .await;
        let ten_mb = 10 * 1024 * 1024;
        peer.ok(&format!("broadcast-blob {ten_mb} kind=zeros"))
            .await;
        peer.ok(&format!("broadcast-blob {ten_mb} kind=noise"))
            .await;
        let zeros = within("zeros", blobs.next()).await.unwrap();
        assert_eq!(zeros.0.len(), ten_mb);
        assert!(zeros.0.iter().all(|&b| b == 0));
        let noise = within("noise", blobs.next()).await.unwrap();
        assert_eq!(noise.0, lahja_workspace::noise(ten_mb, 7), "{direction:?}");
    }
}

#[tokio::test]
async fn an_event_over_the_frame_limit_reaches_nobody_and_says_why() {
    let dir = TempDir::new();
    let options = lahja::EndpointOptions {
        max_frame_bytes: 1024,
        compress_above: usize::MAX,
        ..Default::default()
    };
    let (endpoint, mut peer) =
        support::pair_with(&dir, support::Direction::PeerServes, options).await;
    let mut local = endpoint.stream::<Blob>();
    peer.ok("subscribe-blob").await;
    within(
        "subscribed",
        endpoint.wait_until_endpoint_subscribed_to::<Blob>(&peer.name),
    )
    .await
    .unwrap();
    match endpoint.broadcast(Blob(vec![1; 4096])).await {
        Err(error @ Error::FrameTooLarge { .. }) => {
            assert!(error.to_string().contains("max_frame_bytes"), "{error}")
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    endpoint.broadcast(Blob(vec![2; 100])).await.unwrap();
    // Neither side saw the oversized event: the next one is the small one.
    assert_eq!(peer.line("blob").await, "blob 100");
    assert_eq!(local.next().await.unwrap().0.len(), 100);
    assert!(endpoint.is_connected_to(&peer.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_small_events_arrive_in_order_with_none_lost() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, support::Direction::TestServes).await;
    const COUNT: u64 = 1_000_000;
    peer.ok(&format!("stream-check {COUNT}")).await;
    within(
        "subscribed",
        endpoint.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
    )
    .await
    .unwrap();
    within("a million broadcasts", async {
        for n in 0..COUNT {
            endpoint.broadcast(Numbered(n)).await.unwrap();
        }
    })
    .await;
    let report = peer.line("in-order").await;
    assert!(report.starts_with(&format!("in-order {COUNT}")), "{report}");
}

#[test]
fn event_types_are_shared_by_name() {
    assert_eq!(Numbered::NAME, "lahja_workspace::events::Numbered");
}
