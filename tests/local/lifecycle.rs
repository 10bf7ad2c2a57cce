//! Running and stopping (lahja's `test_run_and_serve.py`, run half), and
//! what stopping does to everything that waits.

use crate::support;

use lahja::{BroadcastConfig, Endpoint, Error, Event};
use serde::{Deserialize, Serialize};
use support::{unique, within};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Beat;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Beat)]
struct AskBeat;

fn is_lifecycle<T: std::fmt::Debug>(result: lahja::Result<T>) -> bool {
    matches!(result, Err(Error::Lifecycle { .. }))
}

#[tokio::test]
async fn endpoint_run_and_stop() {
    let endpoint = Endpoint::run(unique("run")).await.unwrap();
    assert!(endpoint.is_running());
    assert!(!endpoint.is_serving());
    assert!(endpoint.ipc_path().is_none());
    endpoint.stop().await;
    assert!(!endpoint.is_running());
    endpoint.stop().await; // idempotent
    assert!(!endpoint.is_running());
}

#[tokio::test]
async fn stop_ends_streams_and_fails_everything_that_waits() {
    let endpoint = Endpoint::run(unique("stop")).await.unwrap();
    let mut stream = endpoint.stream::<Beat>();
    let mut requests = endpoint.stream_requests::<AskBeat>();
    let wait_for = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_for::<Beat>().await }
    });
    let request = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            let unrouted = BroadcastConfig::to("nobody").require_subscriber(false);
            endpoint.request_with(AskBeat, unrouted).await
        }
    });
    let connections = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_until_connected_to("never-connects").await }
    });
    let changes = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_until_connections_change().await }
    });
    within("wait_for subscribed", async {
        while endpoint.get_subscribed_events().len() < 2 || endpoint.pending_requests() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    endpoint.stop().await;

    assert_eq!(within("stream end", stream.next()).await, None);
    assert!(
        within("request stream end", requests.next())
            .await
            .is_none()
    );
    assert!(is_lifecycle(within("wait_for", wait_for).await.unwrap()));
    assert!(is_lifecycle(within("request", request).await.unwrap()));
    assert!(is_lifecycle(
        within("connected", connections).await.unwrap()
    ));
    assert!(is_lifecycle(within("changes", changes).await.unwrap()));
    assert_eq!(endpoint.pending_requests(), 0);
}

#[tokio::test]
async fn a_stopped_endpoint_refuses_work() {
    let endpoint = Endpoint::run(unique("stopped")).await.unwrap();
    endpoint.stop().await;
    assert!(is_lifecycle(endpoint.broadcast(Beat).await));
    assert!(is_lifecycle(endpoint.broadcast_nowait(Beat)));
    assert!(is_lifecycle(endpoint.request(AskBeat).await));
    assert!(is_lifecycle(endpoint.wait_for::<Beat>().await));
    assert!(is_lifecycle(
        endpoint
            .wait_until_any_endpoint_subscribed_to::<Beat>()
            .await
    ));
    // A stream made after stop ends at once and subscribes nothing.
    assert_eq!(endpoint.stream::<Beat>().next().await, None);
    let _sub = endpoint.subscribe(|_: Beat| {});
    assert!(endpoint.get_subscribed_events().is_empty());
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_endpoint() {
    let endpoint = Endpoint::run(unique("dropped")).await.unwrap();
    let clone = endpoint.clone();
    let mut stream = endpoint.stream::<Beat>();
    drop(endpoint);
    clone.broadcast(Beat).await.unwrap(); // one clone left: still running
    assert_eq!(stream.next().await, Some(Beat));
    drop(clone);
    assert_eq!(within("stream end", stream.next()).await, None);
}

#[tokio::test]
async fn a_callback_capturing_its_endpoint_is_released_by_its_subscription() {
    let endpoint = Endpoint::run(unique("captured")).await.unwrap();
    let mut stream = endpoint.stream::<Beat>();
    let inner = endpoint.clone();
    let subscription = endpoint.subscribe(move |_: AskBeat| {
        let _ = inner.broadcast_nowait(Beat);
    });
    drop(subscription); // drops the captured clone
    drop(endpoint);
    assert_eq!(within("stream end", stream.next()).await, None);
}

#[test]
fn an_endpoint_works_on_a_multi_thread_runtime_from_spawned_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = Endpoint::run(unique("mt")).await.unwrap();
        let _answers = endpoint.handle_requests(|_: AskBeat| async { Beat });
        let task = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.request(AskBeat).await }
        });
        assert_eq!(within("request", task).await.unwrap().unwrap(), Beat);
    });
}
