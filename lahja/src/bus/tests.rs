//! Races inside the core, with links that no transport carries.

use std::sync::Arc;

use super::*;
use crate::link::{Link, TryPushError, Unconnected};
use crate::{BroadcastConfig, Endpoint, Event};

#[derive(crate::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[request(response = Answer)]
struct Question;

#[derive(crate::Event, serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Answer;

fn unconnected(name: &str) -> Arc<Link> {
    Link::new(name.into(), 1024, Arc::new(Unconnected))
}

/// A peer `peer` subscribed to `ids`, registered as a client would be.
fn registered(core: &Core, ids: &[u64]) -> Arc<Link> {
    let link = unconnected("peer");
    core.register_peer(&link, info(ids), Greeting::Announcements)
        .unwrap();
    link
}

/// Removing a peer closes its queue in the same critical section: a
/// request that was routed to it just before meets a closed queue and
/// fails at once, instead of queueing to a connection nobody reads (the
/// queue used to be closed only after the lock was released).
#[tokio::test]
async fn a_removed_peer_s_queue_is_closed_before_the_lock_is_released() {
    let endpoint = Endpoint::run("removal").await.unwrap();
    let core = endpoint.core();
    let link = registered(core, &[Question::ID.as_u64()]);
    let route = core.route::<Question>(&BroadcastConfig::default()).unwrap();
    let mut state = core.state();
    assert!(state.remove_peer_entry(&link));
    assert!(!state.peers.contains_key("peer"));
    for target in route.remote.iter() {
        assert_eq!(
            target.offer(&[0]),
            Err(TryPushError::Closed),
            "a routed request could still queue to the removed peer"
        );
    }
}

/// A peer whose connection died after the request was routed to it,
/// before its reader removed it: the request fails at once instead of
/// waiting for a removal that already scanned the pending requests.
#[tokio::test]
async fn a_request_meeting_a_closed_queue_fails_at_once() {
    let endpoint = Endpoint::run("race").await.unwrap();
    let core = endpoint.core();
    let link = registered(core, &[Question::ID.as_u64()]);
    link.close();
    let patience = std::time::Duration::from_secs(20);
    match tokio::time::timeout(patience, endpoint.request(Question)).await {
        Ok(Err(Error::RemoteDisconnected { endpoint })) => assert_eq!(endpoint, "peer"),
        other => panic!("expected RemoteDisconnected, got {other:?}"),
    }
    assert_eq!(endpoint.pending_requests(), 0);
}

/// Our subscription set is queued to a peer by the call that changes it,
/// before it returns: subscribing adds the type, dropping the last
/// subscriber of it takes it out again, a second subscriber changes
/// nothing.
#[tokio::test]
async fn subscribing_and_unsubscribing_queue_the_new_set_at_once() {
    let endpoint = Endpoint::run("announcements").await.unwrap();
    let core = endpoint.core();
    let link = registered(core, &[]);
    let empty = link.queue().queued();
    let first = endpoint.stream::<Answer>();
    let one = link.queue().queued();
    assert!(one > empty, "the new set was not queued");
    let second = endpoint.stream::<Answer>();
    assert_eq!(link.queue().queued(), one);
    drop(first);
    assert_eq!(link.queue().queued(), one);
    drop(second);
    assert_eq!(link.queue().queued(), empty, "the empty set replaces it");
}

/// A peer subscribed to `ids`, in no group.
fn info(ids: &[u64]) -> crate::bus::PeerInfo {
    crate::bus::PeerInfo {
        subscriptions: ids.to_vec(),
        groups: Vec::new(),
    }
}
