//! Typed request/response between two processes.
//!
//! Run with `cargo run --example request_api`: this process starts a
//! responder process (this same program with the role argument
//! `responder`), connects to it and asks it for the peer count. The
//! compiler checks that `GetPeerCount` is answered with a `PeerCount`.

use std::process::Command;

use lahja::{ConnectionConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = PeerCount)]
struct GetPeerCount;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct PeerCount(usize);

/// The requester is done; the responder can stop.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Goodbye;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("responder") => responder(ConnectionConfig::new("responder", &args[2])).await,
        _ => requester().await,
    }
}

async fn requester() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::temp_dir().join(format!("lahja-request-api-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let config = ConnectionConfig::new("responder", folder.join("responder.sock"));
    let mut child = Command::new(std::env::current_exe()?)
        .arg("responder")
        .arg(&config.path)
        .spawn()?;

    let endpoint = Endpoint::run("requester").await?;
    // Retries until the responder's socket appears.
    endpoint.connect_to_endpoints([config]).await?;
    endpoint
        .wait_until_endpoint_subscribed_to::<GetPeerCount>("responder")
        .await?;
    for _ in 0..3 {
        println!("requester: Requesting");
        let PeerCount(peers) = endpoint.request(GetPeerCount).await?;
        println!("requester: Got answer: {peers} peers");
    }
    endpoint
        .wait_until_endpoint_subscribed_to::<Goodbye>("responder")
        .await?;
    endpoint.broadcast(Goodbye).await?;
    endpoint.stop().await; // sends what is queued first
    let status = child.wait()?;
    std::fs::remove_dir_all(&folder)?;
    println!("requester: done (responder exited with {status})");
    Ok(())
}

async fn responder(config: ConnectionConfig) -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = Endpoint::serve(config).await?;
    let mut requests = endpoint.stream_requests::<GetPeerCount>();
    let mut goodbye = endpoint.stream::<Goodbye>();
    let mut answered = 0;
    // Answer until the requester says goodbye.
    loop {
        tokio::select! {
            Some(request) = requests.next() => {
                answered += 1;
                println!("responder: answering request {answered} from {}", request.origin());
                request.respond(PeerCount(answered * 10)).await?;
            }
            _ = goodbye.next() => break,
        }
    }
    endpoint.stop().await;
    println!("responder: the requester said goodbye");
    Ok(())
}
