//! Broadcasting inside one process: lahja's `test_endpoint_local_broadcast.py`
//! and `test_internal.py`, plus the delivery and flow-control rules.

use crate::support;

use std::sync::{Arc, Mutex};

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error, Event};
use serde::{Deserialize, Serialize};
use support::{unique, within};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Numbered(u64);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Other;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Internal(u32);

async fn endpoint() -> Endpoint {
    Endpoint::run(unique("local")).await.unwrap()
}

#[tokio::test]
async fn local_broadcast_is_connected_to_self() {
    let endpoint = endpoint().await;
    assert!(endpoint.is_connected_to(endpoint.name()));
    assert!(!endpoint.is_connected_to("someone-else"));
}

#[tokio::test]
async fn local_broadcast_wait_until_connected_to_self_returns_at_once() {
    let endpoint = endpoint().await;
    within(
        "connected to self",
        endpoint.wait_until_connected_to(endpoint.name()),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn local_broadcast_own_name_is_listed_among_connected() {
    let endpoint = endpoint().await;
    let _stream = endpoint.stream::<Numbered>();
    let all = endpoint.get_connected_endpoints_and_subscriptions();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, endpoint.name());
    assert_eq!(all[0].1, [Numbered::ID].into());
}

#[tokio::test]
async fn subscribe_and_broadcast_to_self() {
    let endpoint = endpoint().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = endpoint.subscribe(move |e: Numbered| sink.lock().unwrap().push(e.0));
    endpoint.broadcast(Numbered(7)).await.unwrap();
    // The callback ran before `broadcast` returned.
    assert_eq!(*seen.lock().unwrap(), vec![7]);
}

#[tokio::test]
async fn wait_for_and_broadcast_to_self() {
    let endpoint = endpoint().await;
    let waiter = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_for::<Numbered>().await }
    });
    within(
        "subscriber",
        endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>(),
    )
    .await
    .unwrap();
    endpoint.broadcast(Numbered(3)).await.unwrap();
    assert_eq!(
        within("wait_for", waiter).await.unwrap().unwrap(),
        Numbered(3)
    );
}

#[tokio::test]
async fn stream_and_broadcast_to_self_in_order() {
    use tokio_stream::StreamExt;
    let endpoint = endpoint().await;
    let stream = endpoint.stream::<Numbered>().take(3);
    for n in 0..3 {
        endpoint.broadcast(Numbered(n)).await.unwrap();
    }
    let got: Vec<_> = within("three events", stream.collect::<Vec<_>>()).await;
    assert_eq!(got, vec![Numbered(0), Numbered(1), Numbered(2)]);
}

#[tokio::test]
async fn every_stream_of_a_type_gets_every_event() {
    let endpoint = endpoint().await;
    let mut a = endpoint.stream::<Numbered>();
    let mut b = endpoint.stream_with_origin::<Numbered>();
    endpoint.broadcast(Numbered(1)).await.unwrap();
    assert_eq!(a.next().await, Some(Numbered(1)));
    let (origin, event) = b.next().await.unwrap();
    assert_eq!((&*origin, event), (endpoint.name(), Numbered(1)));
}

#[tokio::test]
async fn matching_is_by_exact_event_id() {
    let endpoint = endpoint().await;
    let mut numbered = endpoint.stream::<Numbered>();
    let relaxed = BroadcastConfig::default().require_subscriber(false);
    endpoint
        .broadcast_with(Other, relaxed.clone())
        .await
        .unwrap();
    endpoint.broadcast(Numbered(1)).await.unwrap();
    // Only the Numbered event is in the stream: the Other one never was.
    assert_eq!(numbered.next().await, Some(Numbered(1)));
    endpoint.stop().await;
    assert_eq!(numbered.next().await, None);
}

#[tokio::test]
async fn no_subscribers_is_checked_with_and_without_a_config() {
    let endpoint = endpoint().await;
    let expect_no_subscribers = |result: lahja::Result<()>| match result {
        Err(Error::NoSubscribers { event }) => assert_eq!(event, Numbered::NAME),
        other => panic!("expected NoSubscribers, got {other:?}"),
    };
    expect_no_subscribers(endpoint.broadcast(Numbered(1)).await);
    expect_no_subscribers(
        endpoint
            .broadcast_with(Numbered(1), BroadcastConfig::default())
            .await,
    );
    expect_no_subscribers(endpoint.broadcast_nowait(Numbered(1)));
    expect_no_subscribers(endpoint.broadcast_nowait_with(
        Numbered(1),
        BroadcastConfig::default().require_subscriber(true),
    ));
    // Explicitly allowed: succeeds, and reaches nobody.
    endpoint
        .broadcast_with(
            Numbered(1),
            BroadcastConfig::default().require_subscriber(false),
        )
        .await
        .unwrap();
    // A subscriber to another type does not count.
    let _other = endpoint.stream::<Other>();
    expect_no_subscribers(endpoint.broadcast(Numbered(1)).await);
}

#[tokio::test]
async fn filter_endpoint_reaches_only_the_named_endpoint() {
    let endpoint = endpoint().await;
    let mut stream = endpoint.stream::<Numbered>();
    // Named self: delivered.
    endpoint
        .broadcast_with(Numbered(1), BroadcastConfig::to(endpoint.name()))
        .await
        .unwrap();
    // Named someone else: nobody reachable is subscribed.
    assert!(matches!(
        endpoint
            .broadcast_with(Numbered(2), BroadcastConfig::to("elsewhere"))
            .await,
        Err(Error::NoSubscribers { .. })
    ));
    endpoint
        .broadcast_with(
            Numbered(3),
            BroadcastConfig::to("elsewhere").require_subscriber(false),
        )
        .await
        .unwrap();
    endpoint.broadcast(Numbered(4)).await.unwrap();
    assert_eq!(stream.next().await, Some(Numbered(1)));
    assert_eq!(stream.next().await, Some(Numbered(4)));
}

#[tokio::test]
async fn internal_broadcasts_reach_local_subscribers() {
    let endpoint = endpoint().await;
    let mut stream = endpoint.stream::<Internal>();
    for n in 0..5 {
        endpoint
            .broadcast_with(Internal(n), BroadcastConfig::default().internal())
            .await
            .unwrap();
    }
    for n in 0..5 {
        assert_eq!(stream.next().await, Some(Internal(n)));
    }
}

#[tokio::test]
async fn a_full_stream_makes_broadcast_wait_and_nowait_report_queue_full() {
    let options = EndpointOptions {
        stream_capacity: 2,
        ..Default::default()
    };
    let endpoint = Endpoint::run_with(unique("bounded"), options)
        .await
        .unwrap();
    let mut full = endpoint.stream::<Numbered>();
    let mut roomy_events = Vec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _callback = endpoint.subscribe(move |e: Numbered| sink.lock().unwrap().push(e.0));

    endpoint.broadcast_nowait(Numbered(0)).unwrap();
    endpoint.broadcast_nowait(Numbered(1)).unwrap();
    match endpoint.broadcast_nowait(Numbered(2)) {
        Err(Error::QueueFull { endpoint: name }) => assert_eq!(name, endpoint.name()),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // The target with room (the callback) still got it.
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);

    // `broadcast` waits for room instead of dropping.
    let sender = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.broadcast(Numbered(3)).await }
    });
    tokio::task::yield_now().await;
    assert!(
        !sender.is_finished(),
        "broadcast returned while the stream was full"
    );
    roomy_events.push(full.next().await.unwrap());
    within("broadcast after room", sender)
        .await
        .unwrap()
        .unwrap();
    roomy_events.push(full.next().await.unwrap());
    roomy_events.push(full.next().await.unwrap());
    // Event 2 was refused by the full stream, nothing else was lost.
    assert_eq!(roomy_events, vec![Numbered(0), Numbered(1), Numbered(3)]);
}

#[tokio::test]
async fn a_panicking_callback_is_contained() {
    let endpoint = endpoint().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _panics = endpoint.subscribe(|e: Numbered| {
        if e.0 == 1 {
            panic!("boom on purpose");
        }
    });
    let _counts = endpoint.subscribe(move |e: Numbered| sink.lock().unwrap().push(e.0));
    for n in 0..3 {
        endpoint.broadcast(Numbered(n)).await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    assert!(endpoint.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_events_arrive_in_order() {
    let endpoint = endpoint().await;
    let mut stream = endpoint.stream::<Numbered>();
    const COUNT: u64 = 1_000_000;
    let producer = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            for n in 0..COUNT {
                endpoint.broadcast(Numbered(n)).await.unwrap();
            }
        }
    });
    within("a million events", async {
        for n in 0..COUNT {
            assert_eq!(stream.next().await, Some(Numbered(n)));
        }
    })
    .await;
    producer.await.unwrap();
}
