//! A mesh of 8 endpoint processes, endpoint i connected to j for i < j: a
//! broadcast from each reaches every other exactly once, and one killed
//! mid-run does not disturb the rest.

use crate::support;

use std::collections::HashMap;

use support::{Peer, TempDir, unique};

const SIZE: usize = 8;

/// Reads `stream` lines until `from_each` round-`round` markers arrived
/// from every name in `senders`; returns how many events of round
/// `round - 1` came from each sender on the way.
async fn collect(peer: &mut Peer, senders: &[String], round: u64) -> HashMap<String, usize> {
    let mut earlier: HashMap<String, usize> = HashMap::new();
    let mut done: Vec<String> = Vec::new();
    while done.len() < senders.len() {
        let line = peer.line("stream").await;
        // "stream N from ORIGIN"
        let words: Vec<&str> = line.split_whitespace().collect();
        let (number, origin) = (words[1].parse::<u64>().unwrap(), words[3].to_owned());
        assert!(
            senders.contains(&origin),
            "{} got {line} from a non-sender",
            peer.name
        );
        if number % 10 == round {
            assert!(
                !done.contains(&origin),
                "{} got round {round} twice from {origin}",
                peer.name
            );
            done.push(origin);
        } else {
            assert_eq!(number % 10, round - 1, "{}: {line}", peer.name);
            *earlier.entry(origin).or_default() += 1;
        }
    }
    earlier
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broadcast_reaches_every_other_member_once() {
    let dir = TempDir::new();
    let mut peers = Vec::new();
    for i in 0..SIZE {
        peers.push(Peer::serving(&unique(&format!("mesh{i}")), &dir).await);
    }
    let names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        for later in &names[i + 1..] {
            let command = format!("connect {later} {}", dir.socket(later).display());
            peer.ok(&command).await;
        }
        peer.ok("stream").await;
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        for (j, other) in names.iter().enumerate() {
            if i != j {
                peer.ok(&format!("wait-subscribed {other} numbered")).await;
            }
        }
    }

    // Round 1 then round 2 from everybody; per-sender order means that a
    // duplicate of round 1 would show before that sender's round 2.
    for round in [1, 2] {
        for (i, peer) in peers.iter_mut().enumerate() {
            peer.ok(&format!("broadcast {}", i as u64 * 10 + round))
                .await;
        }
    }
    for peer in peers.iter_mut() {
        // Each also hears its own broadcast through its local stream.
        let earlier = collect(peer, &names, 2).await;
        for sender in &names {
            assert_eq!(
                earlier.get(sender),
                Some(&1),
                "{} from {sender}: {earlier:?}",
                peer.name
            );
        }
    }

    // One member dies; the others go on among themselves.
    let dead = peers.remove(3);
    let dead_name = dead.name.clone();
    dead.kill().await;
    let living: Vec<String> = names.iter().filter(|n| **n != dead_name).cloned().collect();
    for peer in peers.iter_mut() {
        let expected = living.join(",");
        peer.until("connected", |names| names == expected).await;
    }
    for round in [3, 4] {
        for peer in peers.iter_mut() {
            let index: u64 = names.iter().position(|n| *n == peer.name).unwrap() as u64;
            peer.ok(&format!("broadcast {}", index * 10 + round)).await;
        }
    }
    for peer in peers.iter_mut() {
        let earlier = collect(peer, &living, 4).await;
        for sender in &living {
            assert_eq!(
                earlier.get(sender),
                Some(&1),
                "{} from {sender}: {earlier:?}",
                peer.name
            );
        }
    }
}
