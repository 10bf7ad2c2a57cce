//! Request/response across processes: lahja's request tests in both
//! directions, "Who answers a request", and what happens when the
//! responder dies.

use crate::support;

use std::time::Duration;

use lahja::{BroadcastConfig, Endpoint, Error};
use lahja_workspace::events::{Double, Doubled, Echo, WhoAreYou};
use support::{BOTH_WAYS, Direction, Peer, TempDir, pair, subscribed, unique, within};

#[tokio::test]
async fn request_response_to_the_other_process() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("answer").await;
        within(
            "peer answers",
            endpoint.wait_until_endpoint_subscribed_to::<Double>(&peer.name),
        )
        .await
        .unwrap();
        let answer = within("answer", endpoint.request(Double(21)))
            .await
            .unwrap();
        assert_eq!(answer, Doubled(42), "{direction:?}");
        assert_eq!(endpoint.pending_requests(), 0);
    }
}

#[tokio::test]
async fn request_response_from_the_other_process() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let _answers = endpoint.handle_requests(|Double(n)| async move { Doubled(n * 2) });
        peer.ok(&format!("wait-subscribed {} double", endpoint.name()))
            .await;
        assert_eq!(peer.ok("request 4").await, "answer 8", "{direction:?}");
    }
}

#[tokio::test]
async fn request_without_subscriber_throws() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, Direction::PeerServes).await;
    assert!(matches!(
        endpoint.request(Double(1)).await,
        Err(Error::NoSubscribers { .. })
    ));
    let reply = peer.reply("request 1").await;
    assert!(reply.starts_with("err NoSubscribers"), "{reply}");
}

#[tokio::test]
async fn a_wrong_response_type_is_unexpected_response() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("answer-wrong").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        match within("request", endpoint.request(Double(1))).await {
            Err(Error::UnexpectedResponse { expected, got, .. }) => {
                assert!(expected.ends_with("Doubled"));
                assert!(got.ends_with("WrongAnswer"), "{got}");
            }
            other => panic!("{direction:?}: expected UnexpectedResponse, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_request_dropped_remotely_fails_at_once() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("drop-requests").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        assert!(matches!(
            within("request", endpoint.request(Double(1))).await,
            Err(Error::RequestDropped { .. })
        ));
        // A plain subscriber of the request type cannot answer either.
        peer.ok("unsubscribe").await;
        within("unsubscribed", async {
            while endpoint.is_any_endpoint_subscribed_to::<Double>() {
                // Yield, not "wait for the next change": a change between the
                // check and the wait would be missed.
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(matches!(
            endpoint.request(Double(1)).await,
            Err(Error::NoSubscribers { .. })
        ));
    }
}

#[tokio::test]
async fn a_request_with_only_plain_remote_subscribers_is_dropped() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("stream-double").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        assert!(matches!(
            within("request", endpoint.request(Double(3))).await,
            Err(Error::RequestDropped { .. })
        ));
        // The peer saw it as an ordinary event.
        assert_eq!(peer.line("plain").await, "plain 3", "{direction:?}");
    }
}

#[tokio::test]
async fn requests_to_a_specific_endpoint_get_its_answer() {
    let dir = TempDir::new();
    let name = unique("server");
    let server = Endpoint::serve(dir.config(&name)).await.unwrap();
    let mut clients = Vec::new();
    for tag in ["handler-a", "handler-b"] {
        let mut peer = Peer::running(&unique(tag)).await;
        peer.ok(&format!("connect {name} {}", dir.socket(&name).display()))
            .await;
        peer.ok(&format!("answer-tag {tag}")).await;
        within(
            "subscribed",
            server.wait_until_endpoint_subscribed_to::<WhoAreYou>(&peer.name),
        )
        .await
        .unwrap();
        clients.push(peer);
    }
    for (peer, tag) in clients.iter().zip(["handler-a", "handler-b"]) {
        let answer = server
            .request_with(WhoAreYou, BroadcastConfig::to(peer.name.clone()))
            .await
            .unwrap();
        assert_eq!(answer.0, tag);
    }
    // Unfiltered, both are asked and the first answer wins.
    let answer = within("request", server.request(WhoAreYou)).await.unwrap();
    assert!(answer.0 == "handler-a" || answer.0 == "handler-b");
    assert_eq!(server.pending_requests(), 0);
}

#[tokio::test]
async fn a_cancelled_request_frees_its_entry_and_a_late_answer_is_discarded() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("hold-requests").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        let result =
            tokio::time::timeout(Duration::from_millis(1), endpoint.request(Double(1))).await;
        assert!(result.is_err());
        assert_eq!(endpoint.pending_requests(), 0);
        // The peer still holds it; the connection and later requests are fine.
        peer.line("holding 1").await;
        peer.ok("unsubscribe").await;
        peer.ok("answer").await;
        within("answers again", async {
            loop {
                match endpoint.request(Double(5)).await {
                    Ok(answer) => return assert_eq!(answer, Doubled(10)),
                    // The hold-requests subscription may still be seen, then drop.
                    Err(Error::RequestDropped { .. } | Error::NoSubscribers { .. }) => {
                        // Yield, not "wait for the next change": a change between the
                        // check and the wait would be missed.
                        tokio::task::yield_now().await;
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_responder_killed_mid_request_fails_every_pending_request() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("hold-requests").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        let requests: Vec<_> = (0..100)
            .map(|n| {
                let endpoint = endpoint.clone();
                tokio::spawn(async move { endpoint.request(Double(n)).await })
            })
            .collect();
        peer.line("holding 100").await;
        let peer_name = peer.name.clone();
        peer.kill().await;
        for request in requests {
            match within("failed request", request).await.unwrap() {
                Err(Error::RemoteDisconnected { endpoint }) => assert_eq!(endpoint, peer_name),
                other => panic!("{direction:?}: expected RemoteDisconnected, got {other:?}"),
            }
        }
        assert_eq!(endpoint.pending_requests(), 0);
        assert!(!endpoint.is_connected_to(&peer_name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_answer() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, Direction::TestServes).await;
    peer.ok("answer").await;
    within(
        "subscribed",
        endpoint.wait_until_any_endpoint_subscribed_to::<Double>(),
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                for i in 0..250u64 {
                    let n = task * 10_000 + i;
                    assert_eq!(endpoint.request(Double(n)).await.unwrap(), Doubled(n * 2));
                }
            })
        })
        .collect();
    within("4000 requests", async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    // And the other way round, many in flight from the peer.
    let _answers = endpoint.handle_requests(|Double(n)| async move { Doubled(n * 2) });
    peer.ok(&format!("wait-subscribed {} double", endpoint.name()))
        .await;
    assert_eq!(peer.ok("request-many 2000").await, "errors []");
}

#[tokio::test]
async fn a_ten_megabyte_request_and_response_round_trip() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, Direction::PeerServes).await;
    peer.ok("answer").await;
    within(
        "subscribed",
        endpoint.wait_until_any_endpoint_subscribed_to::<Echo>(),
    )
    .await
    .unwrap();
    for payload in [vec![3u8; 10 << 20], lahja_workspace::noise(10 << 20, 1)] {
        let answer = within("echo", endpoint.request(Echo(payload.clone())))
            .await
            .unwrap();
        assert!(answer.0 == payload);
    }
}

#[tokio::test]
async fn a_remote_handler_that_panics_gives_request_dropped_and_its_endpoint_goes_on() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("answer-panicky").await;
        subscribed::<Double>(&endpoint, &peer.name).await;
        assert!(matches!(
            within("request", endpoint.request(Double(0))).await,
            Err(Error::RequestDropped { .. })
        ));
        assert_eq!(
            within("request", endpoint.request(Double(3)))
                .await
                .unwrap(),
            Doubled(6)
        );
        assert!(endpoint.is_connected_to(&peer.name), "{direction:?}");
    }
}
