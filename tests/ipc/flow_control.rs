//! Bounded queues across processes: a peer that stops reading slows its
//! sender (`broadcast` waits, `broadcast_nowait` says `QueueFull`) without
//! holding up other peers.

use crate::support;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions};
use lahja_workspace::events::{Blob, Numbered};
use support::{Peer, TempDir, unique, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_blocks_only_its_own_traffic() {
    let dir = TempDir::new();
    let name = unique("producer");
    let options = EndpointOptions {
        queue_bytes: 64 * 1024,
        ..Default::default()
    };
    let producer = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    let socket = dir.socket(&name);

    let mut stalled = Peer::spawn(&unique("stalled"));
    stalled
        .ok(&format!("run {} capacity=4", stalled.name))
        .await;
    stalled
        .ok(&format!("connect {name} {}", socket.display()))
        .await;
    stalled.ok("stall").await;
    let mut healthy = Peer::running(&unique("healthy")).await;
    healthy
        .ok(&format!("connect {name} {}", socket.display()))
        .await;
    healthy.ok("subscribe-blob").await;
    within("subscriptions", async {
        producer
            .wait_until_endpoint_subscribed_to::<Numbered>(&stalled.name)
            .await?;
        producer
            .wait_until_endpoint_subscribed_to::<Blob>(&healthy.name)
            .await
    })
    .await
    .unwrap();

    // Fill the stalled peer's stream, socket buffers and our queue.
    let (sent, full) = support::fill_until_full(&producer).await;
    assert_eq!(full, stalled.name);

    // `broadcast` waits instead of dropping or growing the queue: a
    // million more events (about 24 MB of frames) cannot fit in the bounded
    // queue and socket buffers, so this cannot finish while the peer stalls...
    let waiting = support::broadcast_a_million_more(&producer, sent);
    // ...while events the stalled peer does not subscribe to keep flowing.
    for _ in 0..200 {
        producer.broadcast(Blob(vec![7; 100])).await.unwrap();
    }
    for _ in 0..200 {
        assert_eq!(healthy.line("blob").await, "blob 100");
    }
    assert!(
        !waiting.is_finished(),
        "a million broadcasts passed a stalled peer"
    );

    // Once the stalled peer is gone, everything resumes.
    let stalled_name = stalled.name.clone();
    stalled.kill().await;
    within("the waiting broadcast", waiting)
        .await
        .unwrap()
        .unwrap();
    within("disconnect", async {
        while producer.is_connected_to(&stalled_name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    producer
        .broadcast_nowait_with(
            Numbered(0),
            BroadcastConfig::default().require_subscriber(false),
        )
        .unwrap();
    producer.broadcast(Blob(vec![1; 10])).await.unwrap();
    assert_eq!(healthy.line("blob").await, "blob 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_slows_the_producer_and_nothing_is_lost() {
    let dir = TempDir::new();
    let name = unique("producer");
    let options = EndpointOptions {
        queue_bytes: 16 * 1024,
        ..Default::default()
    };
    let producer = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    let mut consumer = Peer::spawn(&unique("consumer"));
    consumer
        .ok(&format!("run {} capacity=2", consumer.name))
        .await;
    consumer
        .ok(&format!("connect {name} {}", dir.socket(&name).display()))
        .await;
    consumer.ok("stream-check 200000").await;
    within(
        "subscribed",
        producer.wait_until_any_endpoint_subscribed_to::<Numbered>(),
    )
    .await
    .unwrap();
    for n in 0..200_000 {
        producer.broadcast(Numbered(n)).await.unwrap();
    }
    let report = consumer.line("in-order").await;
    assert!(report.starts_with("in-order 200000"), "{report}");
}
