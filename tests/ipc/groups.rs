//! Process groups and gathered requests across real processes: who
//! receives a group broadcast for every config, members joining and
//! leaving while events flow, and a member killed while a gathered
//! request waits for it. (`tests/common_scenarios.rs` plays groups with
//! blocking endpoints too.)

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lahja::{BroadcastConfig, Endpoint, EndpointOptions, Error};
use lahja_workspace::events::{Double, Doubled, Numbered, Tag, WhoAreYou};
use support::{Peer, TempDir, raw, subscribed, unique, within};

/// The hub: this process, serving, a member of `groups`.
async fn hub(dir: &TempDir, groups: &[&str]) -> Endpoint {
    let options = EndpointOptions {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..EndpointOptions::default()
    };
    let name = unique("hub");
    Endpoint::serve_with(dir.config(&name), options)
        .await
        .unwrap()
}

/// A peer process in `groups`, connected to `hub`.
async fn member(hub: &Endpoint, dir: &TempDir, prefix: &str, groups: &[&str]) -> Peer {
    let name = unique(prefix);
    let mut peer = Peer::spawn(&name);
    let groups = match groups {
        [] => String::new(),
        groups => format!("groups={}", groups.join(",")),
    };
    peer.ok(&format!("run {name} {groups}")).await;
    let path = dir.socket(hub.name());
    peer.ok(&format!("connect {} {}", hub.name(), path.display()))
        .await;
    peer
}

/// Waits until the hub sees exactly `members` in `group`.
async fn members_are(hub: &Endpoint, group: &str, members: &[&str]) {
    let mut expected: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    expected.sort();
    within(&format!("group {group} to be {members:?}"), async {
        loop {
            let mut found = hub.group_members(group);
            found.sort();
            if found == expected {
                return;
            }
            // A change between the check and this wait would be missed:
            // re-check now and then as well.
            let change = hub.wait_until_endpoint_subscriptions_change();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(20), change).await;
        }
    })
    .await
}

/// Reads `got N` lines until `got FENCE`; the numbers before it.
async fn got_until_fence(peer: &mut Peer, fence: u64) -> BTreeSet<u64> {
    let mut got = BTreeSet::new();
    loop {
        let line = peer.line("got ").await;
        let n: u64 = line["got ".len()..].parse().unwrap();
        if n == fence {
            return got;
        }
        got.insert(n);
    }
}

const FENCE: u64 = 999_999;

/// A group (or none), `internal`, `require_subscriber`, and who receives
/// (`None`: the broadcast fails with `NoSubscribers`).
type Row = (
    Option<&'static str>,
    bool,
    bool,
    Option<&'static [&'static str]>,
);

/// Five processes in three overlapping groups and the hub, every
/// combination of group, `internal` and `require_subscriber`: exactly the
/// subscribed members receive, and `NoSubscribers` exactly when there is
/// none. Each row sends its own number; one fence to everyone at the end
/// shows what each process got (a sender's events arrive in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_broadcasts_reach_exactly_the_subscribed_members_for_every_config() {
    let dir = TempDir::new();
    let hub = hub(&dir, &["a"]).await;
    let mut hub_events = hub.stream::<Numbered>();
    // (prefix, groups, subscribed to Numbered)
    let layout: [(&str, &[&str], bool); 5] = [
        ("p1", &["a"], true),
        ("p2", &["a", "b"], true),
        ("p3", &["b"], true),
        ("p4", &["c"], false),
        ("p5", &[], true),
    ];
    let mut peers = Vec::new();
    for (prefix, groups, subscribes) in layout {
        let mut peer = member(&hub, &dir, prefix, groups).await;
        if subscribes {
            peer.ok("subscribe").await;
            subscribed::<Numbered>(&hub, &peer.name).await;
        }
        peers.push((prefix, peer, subscribes));
    }
    let names: BTreeMap<&str, String> = peers
        .iter()
        .map(|(prefix, peer, _)| (*prefix, peer.name.clone()))
        .collect();
    let name = |prefix: &str| names[prefix].clone();
    members_are(&hub, "a", &[hub.name(), &name("p1"), &name("p2")]).await;
    members_are(&hub, "b", &[&name("p2"), &name("p3")]).await;
    members_are(&hub, "c", &[&name("p4")]).await;

    #[rustfmt::skip]
    let table: &[Row] = &[
        // group     internal require  receives (None: NoSubscribers)
        (None,       false,   true,    Some(&["hub", "p1", "p2", "p3", "p5"])),
        (None,       true,    true,    Some(&["hub"])),
        (Some("a"),  false,   true,    Some(&["hub", "p1", "p2"])),
        (Some("a"),  false,   false,   Some(&["hub", "p1", "p2"])),
        (Some("a"),  true,    true,    Some(&["hub"])),
        (Some("a"),  true,    false,   Some(&["hub"])),
        (Some("b"),  false,   true,    Some(&["p2", "p3"])),
        (Some("b"),  false,   false,   Some(&["p2", "p3"])),
        (Some("b"),  true,    true,    None),
        (Some("b"),  true,    false,   Some(&[])),
        (Some("c"),  false,   true,    None),
        (Some("c"),  false,   false,   Some(&[])),
        (Some("c"),  true,    true,    None),
        (Some("c"),  true,    false,   Some(&[])),
        (Some("zz"), false,   true,    None),
        (Some("zz"), false,   false,   Some(&[])),
        (Some("zz"), true,    true,    None),
        (Some("zz"), true,    false,   Some(&[])),
    ];
    for (row, (group, internal, require, expected)) in table.iter().enumerate() {
        let mut config = BroadcastConfig::default().require_subscriber(*require);
        config.filter_group = group.map(str::to_owned);
        config.internal = *internal;
        let sent = hub
            .broadcast_with(Numbered(row as u64), config.clone())
            .await;
        match (expected, sent) {
            (Some(_), Ok(())) | (None, Err(Error::NoSubscribers { .. })) => {}
            (_, other) => panic!("row {row} ({config:?}): {other:?}"),
        }
    }
    hub.broadcast(Numbered(FENCE)).await.unwrap();

    let mut received: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    loop {
        let Numbered(n) = within("the hub's own events", hub_events.next())
            .await
            .unwrap();
        if n == FENCE {
            break;
        }
        received.entry(n).or_default().insert("hub");
    }
    for (prefix, peer, subscribes) in &mut peers {
        if *subscribes {
            for n in got_until_fence(peer, FENCE).await {
                received.entry(n).or_default().insert(prefix);
            }
        }
    }
    for (row, (group, internal, require, expected)) in table.iter().enumerate() {
        let got = received.remove(&(row as u64)).unwrap_or_default();
        let expected: BTreeSet<&str> = expected.unwrap_or(&[]).iter().copied().collect();
        assert_eq!(
            got, expected,
            "row {row}: group {group:?}, internal {internal}, require {require}"
        );
    }

    // Requests to a group: the first answer is a member's; a gathered
    // request gets one answer from each subscribed member.
    for (prefix, peer, _) in &mut peers {
        peer.ok(&format!("answer-tag {prefix}")).await;
        subscribed::<WhoAreYou>(&hub, &peer.name).await;
    }
    let Tag(first) = hub
        .request_with(WhoAreYou, BroadcastConfig::to_group("b"))
        .await
        .unwrap();
    assert!(first == "p2" || first == "p3", "answered by {first}");
    for (group, expected) in [
        ("a", &["p1", "p2"][..]),
        ("b", &["p2", "p3"]),
        ("c", &["p4"]),
    ] {
        let mut answers = hub
            .request_all_with(WhoAreYou, BroadcastConfig::to_group(group))
            .unwrap();
        let mut tags = Vec::new();
        while let Some((origin, answer)) = within("gathered answers", answers.next()).await {
            let Tag(tag) = answer.unwrap();
            assert_eq!(
                origin.to_string(),
                name(&tag),
                "a tag from another endpoint"
            );
            tags.push(tag);
        }
        tags.sort();
        assert_eq!(tags, expected, "group {group}");
    }
    let nobody = hub.request_all_with(WhoAreYou, BroadcastConfig::to_group("zz"));
    assert!(matches!(nobody, Err(Error::NoSubscribers { .. })));
    hub.stop().await;
}

/// A member joins while the hub broadcasts to its group without pause,
/// then leaves: it gets every event from the moment the hub saw it join
/// until the hub saw it leave, in order and without a gap, and none after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_while_events_flow() {
    let dir = TempDir::new();
    let hub = hub(&dir, &[]).await;
    let mut peer = member(&hub, &dir, "joiner", &[]).await;
    peer.ok("subscribe").await;
    subscribed::<Numbered>(&hub, &peer.name).await;

    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let broadcaster = tokio::spawn({
        let (hub, next, done) = (hub.clone(), next.clone(), done.clone());
        async move {
            let to_group = BroadcastConfig::to_group("g").require_subscriber(false);
            // A steady producer (its pace, not a wait for anything).
            let mut pace = tokio::time::interval(std::time::Duration::from_micros(200));
            while !done.load(Ordering::SeqCst) {
                pace.tick().await;
                let n = next.fetch_add(1, Ordering::SeqCst);
                hub.broadcast_with(Numbered(n), to_group.clone())
                    .await
                    .unwrap();
            }
        }
    });

    peer.ok("join g").await;
    members_are(&hub, "g", &[&peer.name]).await;
    // Every event numbered from here on is routed after the hub saw it join.
    let joined = next.load(Ordering::SeqCst);
    let mut got = BTreeSet::new();
    within("events after joining", async {
        loop {
            let line = peer.line("got ").await;
            let n = line["got ".len()..].parse::<u64>().unwrap();
            got.insert(n);
            if n >= joined + 20 {
                return;
            }
        }
    })
    .await;
    peer.ok("leave g").await;
    members_are(&hub, "g", &[]).await;
    let left = next.load(Ordering::SeqCst);
    within("events after leaving", async {
        while next.load(Ordering::SeqCst) < left + 20 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    broadcaster.await.unwrap();
    hub.broadcast_with(Numbered(u64::MAX), BroadcastConfig::to(peer.name.clone()))
        .await
        .unwrap();

    got.extend(got_until_fence(&mut peer, u64::MAX).await);
    let last = *got.last().unwrap();
    assert!(last < left, "got {last} after leaving (left at {left})");
    let expected: BTreeSet<u64> = (joined..=last).collect();
    assert!(
        expected.is_subset(&got),
        "a gap between {joined} and {last}: missing {:?}",
        expected.difference(&got).take(5).collect::<Vec<_>>()
    );
    hub.stop().await;
}

/// A gathered request to three members, one of which holds it and is
/// killed: its item is `RemoteDisconnected`, the others' answers arrive,
/// and the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_during_a_gathered_request_gives_remote_disconnected() {
    let dir = TempDir::new();
    let hub = hub(&dir, &[]).await;
    let mut answering = Vec::new();
    for prefix in ["answers1", "answers2"] {
        let mut peer = member(&hub, &dir, prefix, &["g"]).await;
        peer.ok("answer").await;
        subscribed::<Double>(&hub, &peer.name).await;
        answering.push(peer);
    }
    let mut holder = member(&hub, &dir, "holder", &["g"]).await;
    holder.ok("hold-requests").await;
    subscribed::<Double>(&hub, &holder.name).await;
    members_are(
        &hub,
        "g",
        &[&answering[0].name, &answering[1].name, &holder.name],
    )
    .await;

    let mut answers = hub
        .request_all_with(Double(21), BroadcastConfig::to_group("g"))
        .unwrap();
    holder.line("holding").await;
    let mut got = BTreeMap::new();
    for _ in 0..2 {
        let (origin, answer) = within("an answer", answers.next()).await.unwrap();
        got.insert(origin.to_string(), answer.unwrap());
    }
    let expected: BTreeMap<String, Doubled> = answering
        .iter()
        .map(|p| (p.name.clone(), Doubled(42)))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        answers.outstanding(),
        [Arc::<str>::from(holder.name.as_str())]
    );
    let holder_name = holder.name.clone();
    holder.kill().await;
    let (origin, answer) = within("the killed member's item", answers.next())
        .await
        .unwrap();
    assert_eq!(&*origin, holder_name);
    match answer {
        Err(Error::RemoteDisconnected { endpoint }) => assert_eq!(endpoint, holder_name),
        other => panic!("expected RemoteDisconnected, got {other:?}"),
    }
    assert!(within("the end", answers.next()).await.is_none());
    assert_eq!(hub.pending_requests(), 0);
    hub.stop().await;
}

/// A hand-written peer answers a gathered request twice: it counts once,
/// and the stream ends after that one item.
#[tokio::test]
async fn a_peer_that_answers_twice_counts_once() {
    use lahja::Event;
    use tokio::io::AsyncWriteExt;
    let dir = TempDir::new();
    let hub = hub(&dir, &[]).await;
    let name = unique("twice");
    let mut stream = tokio::net::UnixStream::connect(dir.socket(hub.name()))
        .await
        .unwrap();
    let hello = raw::hello(&name, &[], &[Double::ID.as_u64()], raw::VERSION);
    stream.write_all(&hello).await.unwrap();
    subscribed::<Double>(&hub, &name).await;
    let mut answers = hub.request_all(Double(21)).unwrap();
    let request_id = within("the request", async {
        loop {
            let (kind, _, _, request_id, _) = raw::read_frame(&mut stream).await.unwrap();
            if kind == raw::REQUEST {
                return request_id;
            }
        }
    })
    .await;
    for answer in [42u8, 43] {
        let frame = raw::frame(
            raw::RESPONSE,
            0,
            Doubled::ID.as_u64(),
            request_id,
            &[answer],
        );
        stream.write_all(&frame).await.unwrap();
    }
    let (origin, answer) = within("the answer", answers.next()).await.unwrap();
    assert_eq!((&*origin, answer.unwrap()), (name.as_str(), Doubled(42)));
    assert!(within("the end", answers.next()).await.is_none());
    hub.stop().await;
}

/// A peer process gathers from the hub and another member: requests go
/// both ways, and a dropped request is an item of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_process_gathers_answers_and_drops() {
    let dir = TempDir::new();
    let hub = hub(&dir, &["g"]).await;
    let answers = hub.handle_requests(|Double(n)| async move { Doubled(n * 2) });
    let mut asker = member(&hub, &dir, "asker", &[]).await;
    asker.until("members g", |m| m == hub.name()).await;
    let reply = asker.ok("gather 5 group=g").await;
    assert_eq!(reply, format!("{}=10", hub.name()));
    // A subscriber that does not answer (subscribed first, so the hub
    // never stops subscribing): the item is RequestDropped.
    let _plain = hub.stream::<Double>();
    drop(answers);
    let reply = asker.ok("gather 5 group=g").await;
    assert_eq!(reply, format!("{}=RequestDropped", hub.name()));
    hub.stop().await;
}
