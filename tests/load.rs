//! Ordering and loss under load, with memory bounded by the queues.
//! A test binary of its own, so the producer's RSS is its own.

mod support;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions};
use lahja_workspace::events::{Double, Doubled, Numbered};
use support::{Peer, TempDir, unique, within};

/// What a consumer process may hold beyond its starting RSS: its stream
/// (`stream_capacity` events), its socket read buffer and the allocator's
/// slack. Keeping a million events would take tens of MiB.
const CONSUMER_GROWTH_KIB: u64 = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_events_reach_three_consumers_in_order_with_bounded_memory() {
    const COUNT: u64 = 1_000_000;
    let dir = TempDir::new();
    let name = unique("producer");
    let options = EndpointOptions::default();
    let queue_kib = (options.queue_bytes / 1024) as u64;
    let producer = Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap();
    let mut consumers = Vec::new();
    let mut baselines = Vec::new();
    for i in 0..3 {
        let mut consumer = Peer::running(&unique(&format!("consumer{i}"))).await;
        consumer
            .ok(&format!("connect {name} {}", dir.socket(&name).display()))
            .await;
        baselines.push(consumer.ok("rss").await.parse::<u64>().unwrap());
        consumer.ok(&format!("stream-check {COUNT}")).await;
        consumers.push(consumer);
    }
    within(
        "all subscribed",
        producer.wait_until_all_endpoints_subscribed_to::<Numbered>(false),
    )
    .await
    .unwrap();
    let producer_before = lahja_workspace::rss_kib().unwrap();
    let mut producer_peak = producer_before;
    within("a million broadcasts", async {
        for n in 0..COUNT {
            producer.broadcast(Numbered(n)).await.unwrap();
            if n % 100_000 == 0 {
                producer_peak = producer_peak.max(lahja_workspace::rss_kib().unwrap());
            }
        }
    })
    .await;
    for (consumer, baseline) in consumers.iter_mut().zip(baselines) {
        let report = consumer.line("in-order").await;
        // "in-order COUNT peak-rss-kib KIB"
        let words: Vec<&str> = report.split_whitespace().collect();
        assert_eq!(words[1], COUNT.to_string(), "{report}");
        let peak: u64 = words[3].parse().unwrap();
        assert!(
            peak < baseline + CONSUMER_GROWTH_KIB,
            "{}: RSS grew from {baseline} to {peak} KiB",
            consumer.name
        );
    }
    // Three queues of queue_bytes, plus the same slack.
    let bound = producer_before + 3 * queue_kib + CONSUMER_GROWTH_KIB;
    assert!(
        producer_peak < bound,
        "producer RSS {producer_peak} KiB, bound {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_from_sixteen_tasks_against_two_responders() {
    let dir = TempDir::new();
    let name = unique("requester");
    let requester = Endpoint::serve(dir.config(&name)).await.unwrap();
    let mut responders = Vec::new();
    for i in 0..2 {
        let mut responder = Peer::running(&unique(&format!("responder{i}"))).await;
        responder
            .ok(&format!("connect {name} {}", dir.socket(&name).display()))
            .await;
        responder.ok("answer").await;
        within(
            "responder",
            requester.wait_until_endpoint_subscribed_to::<Double>(&responder.name),
        )
        .await
        .unwrap();
        responders.push(responder);
    }
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let requester = requester.clone();
            tokio::spawn(async move {
                for i in 0..625u64 {
                    let n = task * 1_000_000 + i;
                    let answer = requester.request(Double(n)).await.unwrap();
                    assert_eq!(
                        answer,
                        Doubled(n * 2),
                        "the answer to somebody else's request"
                    );
                }
            })
        })
        .collect();
    within("10,000 requests", async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert_eq!(requester.pending_requests(), 0);
    // And aimed at each responder alone.
    for responder in &responders {
        let to = BroadcastConfig::to(responder.name.clone());
        assert_eq!(
            requester.request_with(Double(5), to).await.unwrap(),
            Doubled(10)
        );
    }
}
