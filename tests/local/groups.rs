//! Groups and gathered requests within one process: names, lifecycle,
//! and what a gathered request yields for each way a target can end.

use crate::support;

use std::time::Duration;

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error, Event};
use serde::{Deserialize, Serialize};
use support::{unique, within};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[request(response = Count)]
struct HowMany(u32);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Count(u32);

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Note(u32);

#[tokio::test]
async fn group_names_follow_the_endpoint_name_rules() {
    let endpoint = Endpoint::run(unique("names")).await.unwrap();
    for bad in ["", "a/b", "tab\there", &"x".repeat(256)] {
        match endpoint.join_group(bad).await {
            Err(Error::InvalidName { .. }) => {}
            other => panic!("joining {bad:?}: {other:?}"),
        }
    }
    assert!(endpoint.groups().is_empty());
    let options = EndpointOptions {
        groups: vec!["fine".into(), "not/fine".into()],
        ..EndpointOptions::default()
    };
    let refused = Endpoint::run_with(unique("bad-groups"), options).await;
    assert!(
        matches!(refused, Err(Error::InvalidName { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn joining_twice_or_leaving_a_group_not_joined_changes_nothing() {
    let options = EndpointOptions {
        groups: vec!["sync".into()],
        ..EndpointOptions::default()
    };
    let endpoint = Endpoint::run_with(unique("idempotent"), options)
        .await
        .unwrap();
    endpoint.join_group("sync").await.unwrap();
    endpoint.leave_group("elsewhere").await.unwrap();
    assert_eq!(endpoint.groups(), ["sync"]);
    assert_eq!(endpoint.group_members("sync"), [endpoint.name()]);
    endpoint.stop().await;
    assert!(matches!(
        endpoint.join_group("late").await,
        Err(Error::Lifecycle { .. })
    ));
}

/// A group broadcast reaches this endpoint only while it is a member.
#[tokio::test]
async fn a_group_broadcast_reaches_this_endpoint_while_it_is_a_member() {
    let endpoint = Endpoint::run(unique("member")).await.unwrap();
    let mut notes = endpoint.stream::<Note>();
    let to_sync = BroadcastConfig::to_group("sync");
    assert!(matches!(
        endpoint.broadcast_with(Note(1), to_sync.clone()).await,
        Err(Error::NoSubscribers { .. })
    ));
    endpoint.join_group("sync").await.unwrap();
    assert!(endpoint.is_group_subscribed_to::<Note>("sync"));
    endpoint
        .broadcast_with(Note(2), to_sync.clone())
        .await
        .unwrap();
    assert_eq!(notes.next().await, Some(Note(2)));
    endpoint.leave_group("sync").await.unwrap();
    assert!(!endpoint.is_group_subscribed_to::<Note>("sync"));
    let quiet = to_sync.require_subscriber(false);
    endpoint.broadcast_with(Note(3), quiet).await.unwrap();
    endpoint.broadcast(Note(4)).await.unwrap();
    assert_eq!(notes.next().await, Some(Note(4)), "Note(3) arrived");
}

/// Two answerers on one endpoint: one target, so one item (the second
/// answer is discarded).
#[tokio::test]
async fn a_target_that_answers_twice_counts_once() {
    let endpoint = Endpoint::run(unique("twice")).await.unwrap();
    let _first = endpoint.handle_requests(|HowMany(n)| async move { Count(n) });
    let _second = endpoint.handle_requests(|HowMany(n)| async move { Count(n + 100) });
    let mut answers = endpoint.request_all(HowMany(1)).unwrap();
    let (origin, answer) = within("the answer", answers.next()).await.unwrap();
    assert_eq!(&*origin, endpoint.name());
    assert!(matches!(answer, Ok(Count(1 | 101))), "{answer:?}");
    assert!(within("the end", answers.next()).await.is_none());
    assert_eq!(endpoint.pending_requests(), 0);
}

#[tokio::test]
async fn a_dropped_request_is_an_item_of_its_own() {
    let endpoint = Endpoint::run(unique("dropped")).await.unwrap();
    let _handler = endpoint.handle_requests(|HowMany(_)| async move {
        panic!("this handler panics, on purpose");
        #[allow(unreachable_code)]
        Count(0)
    });
    let mut answers = endpoint.request_all(HowMany(1)).unwrap();
    let (_, answer) = within("the item", answers.next()).await.unwrap();
    assert!(
        matches!(answer, Err(Error::RequestDropped { .. })),
        "{answer:?}"
    );
    assert!(within("the end", answers.next()).await.is_none());
}

#[tokio::test]
async fn dropping_the_stream_cancels_what_is_outstanding() {
    let endpoint = Endpoint::run(unique("cancel")).await.unwrap();
    let mut held = endpoint.stream_requests::<HowMany>();
    let answers = endpoint.request_all(HowMany(1)).unwrap();
    assert_eq!(endpoint.pending_requests(), 1);
    assert_eq!(answers.outstanding().len(), 1);
    let request = within("the request", held.next()).await.unwrap();
    drop(answers);
    assert_eq!(endpoint.pending_requests(), 0);
    // A late answer completes nothing and fails nothing.
    request.respond(Count(1)).await.unwrap();
}

/// A local target whose stream is full: the rest of the delivery waits
/// in a task, which dropping the gathering stops.
#[tokio::test]
async fn dropping_the_stream_stops_a_delivery_that_waits_for_room() {
    let options = EndpointOptions {
        stream_capacity: 1,
        ..EndpointOptions::default()
    };
    let endpoint = Endpoint::run_with(unique("full"), options).await.unwrap();
    let mut held = endpoint.stream_requests::<HowMany>();
    let first = endpoint.request_all(HowMany(1)).unwrap();
    let second = endpoint.request_all(HowMany(2)).unwrap(); // waits for room
    assert_eq!(endpoint.pending_requests(), 2);
    drop(second);
    assert_eq!(endpoint.pending_requests(), 1);
    let request = within("the first request", held.next()).await.unwrap();
    assert_eq!(*request, HowMany(1));
    drop(first);
    // The second never reaches the stream: the first answer to a new
    // request shows that nothing was queued in between.
    let third = endpoint.request_all(HowMany(3)).unwrap();
    let request = within("the third request", held.next()).await.unwrap();
    assert_eq!(*request, HowMany(3));
    drop(third);
}

#[tokio::test]
async fn stopping_ends_the_gathering_with_a_lifecycle_item_per_target() {
    let endpoint = Endpoint::run(unique("stopping")).await.unwrap();
    let mut held = endpoint.stream_requests::<HowMany>();
    let mut answers = endpoint.request_all(HowMany(1)).unwrap();
    let _request = within("the request", held.next()).await.unwrap();
    endpoint.stop().await;
    let (origin, answer) = within("the item", answers.next()).await.unwrap();
    assert_eq!(&*origin, endpoint.name());
    assert!(matches!(answer, Err(Error::Lifecycle { .. })), "{answer:?}");
    assert!(within("the end", answers.next()).await.is_none());
}

#[tokio::test]
async fn gathering_from_nobody() {
    let endpoint = Endpoint::run(unique("nobody")).await.unwrap();
    let refused = endpoint.request_all(HowMany(1));
    assert!(matches!(refused, Err(Error::NoSubscribers { .. })));
    let allowed = BroadcastConfig::default().require_subscriber(false);
    let mut answers = endpoint.request_all_with(HowMany(1), allowed).unwrap();
    assert!(within("the end", answers.next()).await.is_none());
    assert_eq!(endpoint.pending_requests(), 0);
}

/// The blocking iterator with a deadline: a target that never answers
/// yields `Timeout` once the deadline passes, and the request is cancelled.
#[test]
fn a_blocking_gathering_with_a_deadline_reports_who_did_not_answer() {
    let endpoint = lahja::blocking::Endpoint::run(unique("deadline")).unwrap();
    let held = endpoint.stream_requests::<HowMany>();
    let mut answers = endpoint
        .request_all_timeout(HowMany(1), Duration::from_millis(200))
        .unwrap();
    let (origin, answer) = answers.next().unwrap();
    assert_eq!(&*origin, endpoint.name());
    assert!(matches!(answer, Err(Error::Timeout)), "{answer:?}");
    assert!(answers.next().is_none());
    assert_eq!(endpoint.as_async().pending_requests(), 0);
    drop(held);
}
