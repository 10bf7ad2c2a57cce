//! lahja's `test_basics.py`, in one process: cancellation of streams,
//! `wait_for` and requests, and errors in handlers.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lahja::{BroadcastConfig, Endpoint, Error, Event};
use serde::{Deserialize, Serialize};
use support::{eventually, unique, within};
use tokio_stream::StreamExt;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Numbered(u64);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Answer)]
struct Question;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Answer(String);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct WrongAnswer;

async fn endpoint() -> Endpoint {
    Endpoint::run(unique("basics")).await.unwrap()
}

#[tokio::test]
async fn request_can_get_cancelled() {
    let endpoint = endpoint().await;
    let unrouted = BroadcastConfig::default().require_subscriber(false);
    let result = tokio::time::timeout(
        Duration::from_millis(1),
        endpoint.request_with(Question, unrouted),
    )
    .await;
    assert!(result.is_err(), "a request nobody received must wait");
    assert_eq!(endpoint.pending_requests(), 0, "the pending entry is freed");
}

#[tokio::test]
async fn response_must_match() {
    let endpoint = endpoint().await;
    let mut requests = endpoint.stream_requests::<Question>();
    let responder = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            let request = requests.next().await.unwrap();
            endpoint.broadcast_with(WrongAnswer, request.config()).await
        }
    });
    match within("request", endpoint.request(Question)).await {
        Err(Error::UnexpectedResponse {
            request,
            expected,
            got,
        }) => {
            assert_eq!(request, Question::NAME);
            assert_eq!(expected, Answer::NAME);
            assert_eq!(got, WrongAnswer::NAME);
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
    responder.await.unwrap().unwrap();
}

#[tokio::test]
async fn stream_with_break_unsubscribes() {
    let endpoint = endpoint().await;
    let mut stream = endpoint.stream::<Numbered>();
    for n in 0..5 {
        endpoint.broadcast(Numbered(n)).await.unwrap();
    }
    let mut counted = 0;
    while let Some(_event) = stream.next().await {
        counted += 1;
        if counted == 2 {
            break;
        }
    }
    assert_eq!(counted, 2);
    drop(stream);
    assert!(!endpoint.get_subscribed_events().contains(&Numbered::ID));
}

#[tokio::test]
async fn stream_with_num_events_takes_exactly_that_many() {
    let endpoint = endpoint().await;
    let stream = endpoint.stream::<Numbered>().take(2);
    for n in 0..3 {
        endpoint
            .broadcast_with(
                Numbered(n),
                BroadcastConfig::default().require_subscriber(false),
            )
            .await
            .unwrap();
    }
    let got: Vec<_> = stream.collect().await;
    assert_eq!(got, vec![Numbered(0), Numbered(1)]);
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn stream_of_zero_events_yields_nothing() {
    let endpoint = endpoint().await;
    let got: Vec<_> = endpoint.stream::<Numbered>().take(0).collect().await;
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cancels_when_its_task_is_aborted() {
    let endpoint = endpoint().await;
    let counted = Arc::new(Mutex::new(0));
    let consumer = tokio::spawn({
        let mut stream = endpoint.stream::<Numbered>();
        let counted = counted.clone();
        async move {
            while stream.next().await.is_some() {
                *counted.lock().unwrap() += 1;
            }
        }
    });
    endpoint.broadcast(Numbered(0)).await.unwrap();
    endpoint.broadcast(Numbered(1)).await.unwrap();
    eventually("two events consumed", || *counted.lock().unwrap() == 2).await;
    consumer.abort();
    let _ = consumer.await;
    assert!(endpoint.get_subscribed_events().is_empty());
    let relaxed = BroadcastConfig::default().require_subscriber(false);
    for n in 2..10 {
        endpoint
            .broadcast_with(Numbered(n), relaxed.clone())
            .await
            .unwrap();
    }
    assert_eq!(*counted.lock().unwrap(), 2);
}

#[tokio::test]
async fn wait_for_receives_the_event() {
    let endpoint = endpoint().await;
    let waiter = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_for::<Numbered>().await }
    });
    within(
        "subscription",
        endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>(),
    )
    .await
    .unwrap();
    endpoint.broadcast(Numbered(5)).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), Numbered(5));
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn wait_for_can_get_cancelled() {
    let endpoint = endpoint().await;
    let result =
        tokio::time::timeout(Duration::from_millis(1), endpoint.wait_for::<Numbered>()).await;
    assert!(result.is_err());
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn wait_for_is_lazy_until_polled() {
    let endpoint = endpoint().await;
    let waiting = endpoint.wait_for::<Numbered>();
    assert!(endpoint.get_subscribed_events().is_empty());
    drop(waiting);
    // `stream` is not lazy: subscribed from the call.
    let _stream = endpoint.stream::<Numbered>();
    assert!(endpoint.get_subscribed_events().contains(&Numbered::ID));
}

#[tokio::test]
async fn exceptions_dont_stop_processing() {
    let endpoint = endpoint().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = endpoint.subscribe(move |e: Numbered| {
        if e.0 == 1 {
            panic!("the second event fails on purpose");
        }
        sink.lock().unwrap().push(e.0);
    });
    for n in 0..3 {
        endpoint.broadcast(Numbered(n)).await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![0, 2]);
}

#[test]
fn endpoint_futures_are_send_and_endpoint_is_send_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Endpoint>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = endpoint().await;
        send(&endpoint.broadcast(Numbered(0)));
        send(&endpoint.request(Question));
        send(&endpoint.wait_for::<Numbered>());
        send(&endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>());
        send(&endpoint.wait_until_connections_change());
        send(&endpoint.stop());
    });
}
