//! Request/response inside one process: "Who answers a request".

use crate::support;

use std::sync::{Arc, Mutex};

use lahja::{BroadcastConfig, Endpoint, Error, Event};
use serde::{Deserialize, Serialize};
use support::{unique, within};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Doubled)]
struct Double(u64);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Doubled(u64);

async fn endpoint() -> Endpoint {
    Endpoint::run(unique("request")).await.unwrap()
}

#[tokio::test]
async fn request_response_to_self() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| async move { Doubled(n * 2) });
    let answer = within("answer", endpoint.request(Double(7))).await.unwrap();
    assert_eq!(answer, Doubled(14));
}

#[tokio::test]
async fn request_without_subscriber_throws() {
    let endpoint = endpoint().await;
    assert!(matches!(
        endpoint.request(Double(1)).await,
        Err(Error::NoSubscribers { event }) if event == Double::NAME
    ));
    assert!(matches!(
        endpoint
            .request_with(Double(1), BroadcastConfig::default())
            .await,
        Err(Error::NoSubscribers { .. })
    ));
    assert_eq!(endpoint.pending_requests(), 0);
}

#[tokio::test]
async fn stream_requests_answers_with_the_typed_response() {
    let endpoint = endpoint().await;
    let mut requests = endpoint.stream_requests::<Double>();
    let responder = tokio::spawn(async move {
        let request = requests.next().await.unwrap();
        assert_eq!(*request, Double(4));
        let origin = request.origin().to_owned();
        request.respond(Doubled(8)).await.unwrap();
        origin
    });
    assert_eq!(
        within("answer", endpoint.request(Double(4))).await.unwrap(),
        Doubled(8)
    );
    assert_eq!(responder.await.unwrap(), endpoint.name());
}

#[tokio::test]
async fn an_unanswered_incoming_request_fails_with_request_dropped() {
    let endpoint = endpoint().await;
    let mut requests = endpoint.stream_requests::<Double>();
    let dropper = tokio::spawn(async move {
        let request = requests.next().await.unwrap();
        drop(request);
        requests // keep the subscription: only the one request is dropped
    });
    assert!(matches!(
        within("request", endpoint.request(Double(1))).await,
        Err(Error::RequestDropped { request }) if request == Double::NAME
    ));
    let _requests = dropper.await.unwrap();
    assert_eq!(endpoint.pending_requests(), 0);
}

#[tokio::test]
async fn plain_subscribers_see_a_request_but_do_not_answer_it() {
    let endpoint = endpoint().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _plain = endpoint.subscribe(move |r: Double| sink.lock().unwrap().push(r.0));
    let mut stream = endpoint.stream::<Double>();
    // Subscribed, so no NoSubscribers; but nobody can answer.
    assert!(matches!(
        within("request", endpoint.request(Double(3))).await,
        Err(Error::RequestDropped { .. })
    ));
    assert_eq!(*seen.lock().unwrap(), vec![3]);
    assert_eq!(stream.next().await, Some(Double(3)));
}

#[tokio::test]
async fn the_first_answer_wins_and_later_ones_are_discarded() {
    let endpoint = endpoint().await;
    let mut first = endpoint.stream_requests::<Double>();
    let mut second = endpoint.stream_requests::<Double>();
    let request = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.request(Double(1)).await }
    });
    let a = within("first copy", first.next()).await.unwrap();
    let b = within("second copy", second.next()).await.unwrap();
    assert_eq!(a.id(), b.id());
    b.respond(Doubled(200)).await.unwrap();
    a.respond(Doubled(100)).await.unwrap(); // discarded
    assert_eq!(request.await.unwrap().unwrap(), Doubled(200));
}

#[tokio::test]
async fn one_dropped_copy_does_not_fail_a_request_another_answers() {
    let endpoint = endpoint().await;
    let mut dropping = endpoint.stream_requests::<Double>();
    let mut answering = endpoint.stream_requests::<Double>();
    let request = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.request(Double(5)).await }
    });
    drop(within("copy", dropping.next()).await.unwrap());
    let copy = within("copy", answering.next()).await.unwrap();
    copy.respond(Doubled(10)).await.unwrap();
    assert_eq!(request.await.unwrap().unwrap(), Doubled(10));
}

#[tokio::test]
async fn a_response_goes_only_to_its_request() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| async move { Doubled(n * 2) });
    let mut responses = endpoint.stream::<Doubled>();
    assert_eq!(endpoint.request(Double(1)).await.unwrap(), Doubled(2));
    endpoint.broadcast(Doubled(99)).await.unwrap();
    // Events arrive in order, so had the response reached the stream it
    // would come first: the stream saw only the ordinary broadcast.
    assert_eq!(responses.next().await, Some(Doubled(99)));
}

#[tokio::test]
async fn a_panicking_handler_gives_request_dropped_and_the_endpoint_goes_on() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| async move {
        if n == 0 {
            panic!("no zeroes, on purpose");
        }
        Doubled(n * 2)
    });
    assert!(matches!(
        within("request", endpoint.request(Double(0))).await,
        Err(Error::RequestDropped { .. })
    ));
    assert_eq!(
        within("request", endpoint.request(Double(2)))
            .await
            .unwrap(),
        Doubled(4)
    );
}

#[tokio::test]
async fn a_handler_that_panics_before_its_future_is_contained_too() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| {
        assert!(n != 0, "no zeroes, on purpose");
        async move { Doubled(n) }
    });
    assert!(matches!(
        within("request", endpoint.request(Double(0))).await,
        Err(Error::RequestDropped { .. })
    ));
    assert_eq!(
        within("request", endpoint.request(Double(1)))
            .await
            .unwrap(),
        Doubled(1)
    );
}

#[tokio::test]
async fn dropping_the_handler_subscription_stops_answering() {
    let endpoint = endpoint().await;
    let handler = endpoint.handle_requests(|Double(n)| async move { Doubled(n) });
    assert!(endpoint.get_subscribed_events().contains(&Double::ID));
    handler.unsubscribe();
    assert!(endpoint.get_subscribed_events().is_empty());
    assert!(matches!(
        endpoint.request(Double(1)).await,
        Err(Error::NoSubscribers { .. })
    ));
}

#[tokio::test]
async fn a_request_routed_elsewhere_does_not_reach_local_answerers() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| async move { Doubled(n) });
    assert!(matches!(
        endpoint
            .request_with(Double(1), BroadcastConfig::to("someone-else"))
            .await,
        Err(Error::NoSubscribers { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_answer() {
    let endpoint = endpoint().await;
    let _handler = endpoint.handle_requests(|Double(n)| async move {
        tokio::task::yield_now().await;
        Doubled(n * 2)
    });
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                for i in 0..200u64 {
                    let n = task * 1000 + i;
                    assert_eq!(endpoint.request(Double(n)).await.unwrap(), Doubled(n * 2));
                }
            })
        })
        .collect();
    within("3200 requests", async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    assert_eq!(endpoint.pending_requests(), 0);
}

#[tokio::test]
async fn a_response_to_an_unknown_request_id_is_ignored() {
    let endpoint = endpoint().await;
    let mut requests = endpoint.stream_requests::<Double>();
    let pending = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.request(Double(1)).await }
    });
    let incoming = within("request", requests.next()).await.unwrap();
    // A config claiming another endpoint's request, and a stale one.
    let mut forged = incoming.config();
    forged.filter_endpoint = Some("not-the-requester".into());
    endpoint.broadcast_with(Doubled(0), forged).await.unwrap();
    assert!(!pending.is_finished());
    incoming.respond(Doubled(2)).await.unwrap();
    assert_eq!(pending.await.unwrap().unwrap(), Doubled(2));
}
