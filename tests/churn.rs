//! 200 child processes connect, subscribe, request and leave (half of them
//! killed); the serving endpoint ends where it started: no connection,
//! subscription view, file descriptor or task left behind.
//! A test binary of its own, so that nothing else opens descriptors.

mod support;

use lahja::{Endpoint, Event};
use lahja_workspace::events::{Double, Doubled, Numbered};
use lahja_workspace::open_fds;
use support::{Peer, TempDir, unique, within};

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn cycle(server: &Endpoint, dir: &TempDir, round: u64) {
    let mut peer = Peer::running(&unique("churn")).await;
    peer.ok(&format!(
        "connect {} {}",
        server.name(),
        dir.socket(server.name()).display()
    ))
    .await;
    peer.ok("subscribe").await;
    within(
        "subscribed",
        server.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
    )
    .await
    .unwrap();
    server.broadcast(Numbered(round)).await.unwrap();
    assert_eq!(peer.line("got").await, format!("got {round}"));
    assert_eq!(
        peer.ok(&format!("request {round}")).await,
        format!("answer {}", round * 2)
    );
    let name = peer.name.clone();
    if round.is_multiple_of(2) {
        peer.kill().await;
    } else {
        peer.exit().await;
    }
    within("peer removed", async {
        while server.is_connected_to(&name) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_peers_come_and_go_without_a_trace() {
    let dir = TempDir::new();
    let server = Endpoint::serve(dir.config(&unique("server")))
        .await
        .unwrap();
    let _answers = server.handle_requests(|Double(n)| async move { Doubled(n * 2) });
    cycle(&server, &dir, 1).await; // warm up lazily created resources
    let fds = open_fds();
    let tasks = alive_tasks();

    for round in 2..=201 {
        cycle(&server, &dir, round).await;
    }

    assert_eq!(server.get_connected_endpoints_and_subscriptions().len(), 1);
    assert!(!server.is_any_endpoint_subscribed_to::<Numbered>());
    assert_eq!(server.get_subscribed_events(), [Double::ID].into());
    within("descriptors and tasks back to the baseline", async {
        while open_fds() > fds || alive_tasks() > tasks {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(server.pending_requests(), 0);
}
