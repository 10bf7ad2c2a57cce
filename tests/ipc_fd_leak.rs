//! No task or file descriptor outlives an endpoint. A test binary of its
//! own, so that no other test opens descriptors meanwhile.

mod support;

use lahja::Endpoint;
use lahja_workspace::events::Numbered;
use lahja_workspace::open_fds;
use support::{TempDir, unique, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_closing_a_hundred_connected_endpoints_leaks_nothing() {
    let dir = TempDir::new();
    // Warm up the runtime's own descriptors (epoll, eventfd, ...).
    {
        let endpoint = Endpoint::serve(dir.config("warm-up")).await.unwrap();
        endpoint.stop().await;
    }
    let baseline = open_fds();
    for round in 0..100 {
        let name = unique("server");
        let server = Endpoint::serve(dir.config(&name)).await.unwrap();
        let client = Endpoint::run(unique("client")).await.unwrap();
        client
            .connect_to_endpoints([dir.config(&name)])
            .await
            .unwrap();
        let mut stream = server.stream::<Numbered>();
        within(
            "subscribed",
            client.wait_until_any_endpoint_subscribed_to::<Numbered>(),
        )
        .await
        .unwrap();
        client.broadcast(Numbered(round)).await.unwrap();
        assert_eq!(stream.next().await, Some(Numbered(round)));
        if round % 2 == 0 {
            server.stop().await;
            client.stop().await;
        } else {
            // Dropping the last clones stops them too.
            drop(server);
            drop(client);
        }
    }
    within("descriptors back to the baseline", async {
        while open_fds() > baseline {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "socket files left behind"
    );
}
