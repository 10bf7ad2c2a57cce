//! Typed request/response: a responder answers `GetPeerCount` with a
//! `PeerCount`, and the compiler checks that pairing.
//!
//! Run with `cargo run --example request_api`.

use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = PeerCount)]
struct GetPeerCount;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct PeerCount(usize);

#[tokio::main]
async fn main() -> lahja::Result<()> {
    let endpoint = Endpoint::run("request-api-demo").await?;

    let mut requests = endpoint.stream_requests::<GetPeerCount>();
    let responder = tokio::spawn(async move {
        let mut answered = 0;
        while let Some(request) = requests.next().await {
            println!("responder: got a request from {}", request.origin());
            answered += 1;
            request.respond(PeerCount(answered * 10)).await?;
        }
        Ok::<_, lahja::Error>(())
    });

    for _ in 0..3 {
        println!("requester: requesting the peer count");
        let PeerCount(peers) = endpoint.request(GetPeerCount).await?;
        println!("requester: got answer: {peers} peers");
    }

    endpoint.stop().await;
    responder.await.expect("responder task")?;
    println!("done");
    Ok(())
}
