//! The subscription API across processes: lahja's
//! test_asyncio_subscriptions_api.py (incl. the three-server cases) and
//! the connections/subscriptions-changed waits.

use crate::support;

use lahja::Endpoint;
use lahja_workspace::events::Numbered;
use support::{BOTH_WAYS, Peer, TempDir, pair, unique, within};

#[tokio::test]
async fn stream_subscriptions_show_on_both_sides_and_go_away() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let stream = endpoint.stream::<Numbered>();
        assert!(
            endpoint
                .get_subscribed_events()
                .contains(&<Numbered as lahja::Event>::ID)
        );
        peer.sees_subscribed(endpoint.name(), true).await;
        drop(stream);
        assert!(endpoint.get_subscribed_events().is_empty());
        peer.sees_subscribed(endpoint.name(), false).await;
    }
}

#[tokio::test]
async fn subscribe_shows_on_both_sides_and_unsubscribe_removes_it() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        let subscription = endpoint.subscribe(|_: Numbered| {});
        peer.sees_subscribed(endpoint.name(), true).await;
        subscription.unsubscribe();
        peer.sees_subscribed(endpoint.name(), false).await;

        peer.ok("subscribe").await;
        within(
            "peer subscribed",
            endpoint.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
        )
        .await
        .unwrap();
        peer.ok("unsubscribe").await;
        within("peer unsubscribed", async {
            while endpoint.is_endpoint_subscribed_to::<Numbered>(&peer.name) {
                // Yield, not "wait for the next change": a change between the
                // check and the wait would be missed.
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_remote_subscribe_releases_a_subscriptions_change_waiter() {
    let dir = TempDir::new();
    let (endpoint, mut peer) = pair(&dir, support::Direction::PeerServes).await;
    let waiter = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.wait_until_endpoint_subscriptions_change().await }
    });
    tokio::task::yield_now().await;
    assert!(!endpoint.is_endpoint_subscribed_to::<Numbered>(&peer.name));
    peer.ok("subscribe").await;
    within("change", waiter).await.unwrap().unwrap();
    within(
        "subscribed",
        endpoint.wait_until_endpoint_subscribed_to::<Numbered>(&peer.name),
    )
    .await
    .unwrap();
}

/// A client connected to three serving processes a, b and c.
async fn client_with_three_servers(dir: &TempDir) -> (Endpoint, Vec<Peer>) {
    let mut servers = Vec::new();
    let mut configs = Vec::new();
    for label in ["server-a", "server-b", "server-c"] {
        let peer = Peer::serving(&unique(label), dir).await;
        configs.push(dir.config(&peer.name));
        servers.push(peer);
    }
    let client = Endpoint::run(unique("client")).await.unwrap();
    client.connect_to_endpoints(configs).await.unwrap();
    (client, servers)
}

#[tokio::test]
async fn wait_until_any_endpoint_subscribed_to() {
    let dir = TempDir::new();
    let (client, mut servers) = client_with_three_servers(&dir).await;
    assert!(!client.is_any_endpoint_subscribed_to::<Numbered>());
    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .wait_until_any_endpoint_subscribed_to::<Numbered>()
                .await
        }
    });
    servers[0].ok("subscribe").await;
    within("any", waiter).await.unwrap().unwrap();
    assert!(client.is_any_endpoint_subscribed_to::<Numbered>());
}

#[tokio::test]
async fn wait_until_all_endpoints_subscribed_to() {
    let dir = TempDir::new();
    let (client, mut servers) = client_with_three_servers(&dir).await;
    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .wait_until_all_endpoints_subscribed_to::<Numbered>(true)
                .await
        }
    });
    for index in [2, 0, 1] {
        assert!(!waiter.is_finished());
        servers[index].ok("subscribe").await;
        let name = servers[index].name.clone();
        within(
            "server subscribed",
            client.wait_until_endpoint_subscribed_to::<Numbered>(&name),
        )
        .await
        .unwrap();
    }
    assert!(client.are_all_endpoints_subscribed_to::<Numbered>(false));
    assert!(!client.are_all_endpoints_subscribed_to::<Numbered>(true));
    assert!(
        !waiter.is_finished(),
        "the client itself is not subscribed yet"
    );
    let _own = client.subscribe(|_: Numbered| {});
    within("all", waiter).await.unwrap().unwrap();
    assert!(client.are_all_endpoints_subscribed_to::<Numbered>(true));
}

#[tokio::test]
async fn wait_until_a_specific_endpoint_subscribed() {
    let dir = TempDir::new();
    let (client, mut servers) = client_with_three_servers(&dir).await;
    let b = servers[1].name.clone();
    let waiter = tokio::spawn({
        let client = client.clone();
        let b = b.clone();
        async move {
            client
                .wait_until_endpoint_subscribed_to::<Numbered>(&b)
                .await
        }
    });
    for index in [0, 2] {
        servers[index].ok("subscribe").await;
        let name = servers[index].name.clone();
        within(
            "subscribed",
            client.wait_until_endpoint_subscribed_to::<Numbered>(&name),
        )
        .await
        .unwrap();
        assert!(!waiter.is_finished());
    }
    servers[1].ok("subscribe").await;
    within("b", waiter).await.unwrap().unwrap();
    assert!(client.is_endpoint_subscribed_to::<Numbered>(&b));
}

#[tokio::test]
async fn a_disconnect_is_seen_at_once_and_removes_the_peer_with_its_subscriptions() {
    for direction in BOTH_WAYS {
        let dir = TempDir::new();
        let (endpoint, mut peer) = pair(&dir, direction).await;
        peer.ok("subscribe").await;
        within(
            "subscribed",
            endpoint.wait_until_any_endpoint_subscribed_to::<Numbered>(),
        )
        .await
        .unwrap();
        let changed = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.wait_until_connections_change().await }
        });
        tokio::task::yield_now().await;
        let name = peer.name.clone();
        peer.exit().await;
        within("disconnect seen", changed).await.unwrap().unwrap();
        assert!(!endpoint.is_connected_to(&name), "{direction:?}");
        assert!(!endpoint.is_any_endpoint_subscribed_to::<Numbered>());
        assert_eq!(
            endpoint.get_connected_endpoints_and_subscriptions().len(),
            1
        );
    }
}
