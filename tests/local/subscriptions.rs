//! The subscription queries and waits in one process (section 3.1-3.3 of
//! the behaviour notes, as far as one endpoint goes).

use crate::support;

use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};
use support::{unique, within};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Watched(u8);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Watched)]
struct AskWatched;

async fn endpoint() -> Endpoint {
    Endpoint::run(unique("subscriptions")).await.unwrap()
}

#[tokio::test]
async fn every_kind_of_subscription_shows_and_goes_away() {
    let endpoint = endpoint().await;
    let subscribed = |e: &Endpoint| e.get_subscribed_events().contains(&Watched::ID);
    assert!(!subscribed(&endpoint));

    let stream = endpoint.stream::<Watched>();
    assert!(subscribed(&endpoint));
    drop(stream);
    assert!(!subscribed(&endpoint));

    let callback = endpoint.subscribe(|_: Watched| {});
    assert!(subscribed(&endpoint));
    drop(callback);
    assert!(!subscribed(&endpoint));

    let requests = endpoint.stream_requests::<AskWatched>();
    assert!(endpoint.get_subscribed_events().contains(&AskWatched::ID));
    drop(requests);
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn the_type_stays_while_any_subscriber_is_left() {
    let endpoint = endpoint().await;
    let a = endpoint.stream::<Watched>();
    let b = endpoint.subscribe(|_: Watched| {});
    drop(a);
    assert!(endpoint.is_any_endpoint_subscribed_to::<Watched>());
    b.unsubscribe();
    assert!(!endpoint.is_any_endpoint_subscribed_to::<Watched>());
}

#[tokio::test]
async fn detached_subscriptions_last_until_stop() {
    let endpoint = endpoint().await;
    endpoint.subscribe(|_: Watched| {}).detach();
    assert!(endpoint.is_endpoint_subscribed_to::<Watched>(endpoint.name()));
    endpoint.stop().await;
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn queries_count_the_endpoint_itself() {
    let endpoint = endpoint().await;
    let name = endpoint.name().to_owned();
    assert!(!endpoint.is_endpoint_subscribed_to::<Watched>(&name));
    assert!(!endpoint.is_any_endpoint_subscribed_to::<Watched>());
    assert!(!endpoint.are_all_endpoints_subscribed_to::<Watched>(true));
    // Vacuously true: no peers, self excluded.
    assert!(endpoint.are_all_endpoints_subscribed_to::<Watched>(false));

    let _stream = endpoint.stream::<Watched>();
    assert!(endpoint.is_endpoint_subscribed_to::<Watched>(&name));
    assert!(!endpoint.is_endpoint_subscribed_to::<Watched>("someone-else"));
    assert!(endpoint.is_any_endpoint_subscribed_to::<Watched>());
    assert!(endpoint.are_all_endpoints_subscribed_to::<Watched>(true));
}

#[tokio::test]
async fn a_local_subscribe_releases_a_subscriptions_change_waiter() {
    let endpoint = endpoint().await;
    let waiter = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_until_endpoint_subscriptions_change().await }
    });
    // The waiter subscribes to changes when first polled; wait until it is.
    tokio::task::yield_now().await;
    let _sub = endpoint.subscribe(|_: Watched| {});
    within("subscriptions change", waiter)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn subscription_waits_return_once_the_condition_holds() {
    let endpoint = endpoint().await;
    let name = endpoint.name().to_owned();
    let specific = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            endpoint
                .wait_until_endpoint_subscribed_to::<Watched>(&name)
                .await
        }
    });
    let any = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            endpoint
                .wait_until_any_endpoint_subscribed_to::<Watched>()
                .await
        }
    });
    let all = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            endpoint
                .wait_until_all_endpoints_subscribed_to::<Watched>(true)
                .await
        }
    });
    tokio::task::yield_now().await;
    assert!(!specific.is_finished() && !any.is_finished() && !all.is_finished());
    let _other = endpoint.stream::<AskWatched>();
    tokio::task::yield_now().await;
    assert!(!specific.is_finished() && !any.is_finished() && !all.is_finished());
    let _stream = endpoint.stream::<Watched>();
    within("specific", specific).await.unwrap().unwrap();
    within("any", any).await.unwrap().unwrap();
    within("all", all).await.unwrap().unwrap();
    // Already true: return at once.
    within(
        "again",
        endpoint.wait_until_any_endpoint_subscribed_to::<Watched>(),
    )
    .await
    .unwrap();
}
