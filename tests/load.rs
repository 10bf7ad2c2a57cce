//! Ordering and loss under load, with memory bounded by the queues, over
//! sockets and over zenoh. A test binary of its own, so the producer's RSS
//! is its own (and the tests that measure it take turns).

mod support;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions};
use lahja_workspace::events::{Double, Doubled, Numbered};
use support::{Peer, TempDir, unique, within};

/// Held by the tests that measure this process's RSS: run together they
/// would count each other's memory.
/// (A tokio mutex: each test runs its own runtime, and holds it across
/// awaits.)
static MEASURING_RSS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn measuring_rss() -> tokio::sync::MutexGuard<'static, ()> {
    MEASURING_RSS.lock().await
}

/// What a consumer process may hold beyond its starting RSS: its stream
/// (`stream_capacity` events), its socket read buffer and the allocator's
/// slack. Keeping a million events would take tens of MiB.
const CONSUMER_GROWTH_KIB: u64 = 8 * 1024;

/// Broadcasts Numbered(0..count); returns this process's RSS before and
/// its peak meanwhile (sampled every 100,000 events).
async fn broadcast_counting_rss(producer: &Endpoint, count: u64) -> (u64, u64) {
    let before = lahja_workspace::rss_kib().unwrap();
    let mut peak = before;
    within("a million broadcasts", async {
        for n in 0..count {
            producer.broadcast(Numbered(n)).await.unwrap();
            if n % 100_000 == 0 {
                peak = peak.max(lahja_workspace::rss_kib().unwrap());
            }
        }
    })
    .await;
    (before, peak)
}

/// Each consumer (running `stream-check count`) reports all `count`
/// events in order, its RSS within `growth_kib` of its `baselines` entry.
async fn each_got_all_in_order(
    consumers: &mut [Peer],
    baselines: &[u64],
    count: u64,
    growth_kib: u64,
) {
    for (consumer, &baseline) in consumers.iter_mut().zip(baselines) {
        let report = consumer.line("in-order").await;
        // "in-order COUNT peak-rss-kib KIB"
        let words: Vec<&str> = report.split_whitespace().collect();
        assert_eq!(words[1], count.to_string(), "{report}");
        let peak: u64 = words[3].parse().unwrap();
        assert!(
            peak < baseline + growth_kib,
            "{}: RSS grew from {baseline} to {peak} KiB",
            consumer.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_events_reach_three_consumers_in_order_with_bounded_memory() {
    let _measuring = measuring_rss().await;
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
    let (producer_before, producer_peak) = broadcast_counting_rss(&producer, COUNT).await;
    each_got_all_in_order(&mut consumers, &baselines, COUNT, CONSUMER_GROWTH_KIB).await;
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

/// The same over zenoh (loopback TCP, multicast off).
#[cfg(feature = "zenoh")]
mod over_zenoh {
    use super::*;
    use support::{TestBus, disconnected, subscribed};

    /// Over zenoh, what a consumer may hold beyond its starting RSS: its stream, its inbox
    /// (four messages of at most one queue each), zenoh's receive buffers and
    /// the allocator's slack. Keeping a million events would take tens of MiB.
    const ZENOH_CONSUMER_GROWTH_KIB: u64 = 12 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_million_events_reach_two_consumers_in_order_with_bounded_memory() {
        let _measuring = measuring_rss().await;
        const COUNT: u64 = 1_000_000;
        let bus = TestBus::new();
        let options = EndpointOptions::default();
        let queue_kib = (options.queue_bytes / 1024) as u64;
        let producer = bus.hub_with(options).await;
        let mut consumers = Vec::new();
        let mut baselines = Vec::new();
        for i in 0..2 {
            let mut consumer = bus.member(&format!("consumer{i}")).await;
            baselines.push(consumer.ok("rss").await.parse::<u64>().unwrap());
            consumer.ok(&format!("stream-check {COUNT}")).await;
            within("the consumer to subscribe", async {
                producer
                    .wait_until_endpoint_subscribed_to::<Numbered>(&consumer.name)
                    .await
            })
            .await
            .unwrap();
            consumers.push(consumer);
        }
        let (producer_before, producer_peak) = broadcast_counting_rss(&producer, COUNT).await;
        let growth = ZENOH_CONSUMER_GROWTH_KIB;
        each_got_all_in_order(&mut consumers, &baselines, COUNT, growth).await;
        // Two queues, zenoh's send queues (a few batches each), and slack.
        let bound = producer_before + 2 * queue_kib + ZENOH_CONSUMER_GROWTH_KIB;
        assert!(
            producer_peak < bound,
            "producer RSS {producer_peak} KiB, bound {bound}"
        );
        producer.stop().await;
    }

    /// What a process may grow by while a consumer stalls: its queues,
    /// zenoh's buffers and the allocator's slack.
    const GROWTH_KIB: u64 = 12 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_consumer_bounds_the_producer_then_loses_its_link_visibly() {
        let _measuring = measuring_rss().await;
        let bus = TestBus::new();
        let options = EndpointOptions {
            queue_bytes: 64 * 1024,
            ..EndpointOptions::default()
        };
        let producer = bus.hub_with(options).await;
        let name = unique("stalled");
        let mut stalled = Peer::spawn(&name);
        stalled.ok(&format!("run {name} capacity=4")).await;
        stalled.ok(&bus.member_command()).await;
        stalled.ok("stall").await;
        let mut healthy = bus.member("healthy").await;
        healthy.ok("subscribe-blob").await;
        subscribed::<Numbered>(&producer, &name).await;
        subscribed::<lahja_workspace::events::Blob>(&producer, &healthy.name).await;

        // The stalled peer's stream, inbox and zenoh's buffers fill, then our
        // bounded queue: `broadcast_nowait` says so instead of growing.
        let (sent, full) = support::fill_until_full(&producer).await;
        assert_eq!(full, name);
        // `broadcast` waits instead of dropping or growing the queue: a
        // million more events (some 30 MB of frames) cannot fit in the bounded
        // queue, zenoh's and the sockets' buffers while the peer stalls...
        let before = lahja_workspace::rss_kib().unwrap();
        let waiting = support::broadcast_a_million_more(&producer, sent);
        // ...while events it does not subscribe to reach the healthy peer.
        for _ in 0..50 {
            producer
                .broadcast(lahja_workspace::events::Blob(vec![7; 100]))
                .await
                .unwrap();
        }
        for _ in 0..50 {
            assert_eq!(healthy.line("blob").await, "blob 100");
        }
        assert!(
            !waiting.is_finished(),
            "a million broadcasts passed a stalled peer"
        );
        // zenoh closes a link blocked longer than `wait_before_close` (5 s):
        // the peer is removed, which the waiting broadcasts see. Nothing is
        // dropped quietly, and memory stayed bounded meanwhile.
        disconnected(&producer, &name).await;
        within("the broadcasts to end", waiting)
            .await
            .unwrap()
            .unwrap();
        let after = lahja_workspace::rss_kib().unwrap();
        assert!(
            after < before + GROWTH_KIB,
            "producer RSS grew from {before} to {after} KiB"
        );
        assert!(producer.is_connected_to(&healthy.name));
        // Once the stalled peer reads again, it sees that the link is gone.
        stalled.ok("unsubscribe").await;
        stalled
            .until("connected", |names| !names.contains(producer.name()))
            .await;
        producer.stop().await;
    }
}
