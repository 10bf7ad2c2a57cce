//! Process groups and a gathered request across processes.
//!
//! Run with `cargo run --example gathered_requests`: this process serves,
//! starts three worker processes (this same program with the role
//! argument `worker`), two of them in the group `networking`, and asks
//! that group how many peers each has. Each worker answers with its own
//! count; the answers arrive one per worker, typed as `PeerCount`.

use std::process::Command;

use lahja::{BroadcastConfig, ConnectionConfig, Endpoint, EndpointOptions, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = PeerCount)]
struct GetPeerCount;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct PeerCount(usize);

/// The coordinator is done; the workers can stop.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Goodbye;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(&args[2], &args[3], &args[4]).await,
        _ => coordinator().await,
    }
}

async fn coordinator() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::temp_dir().join(format!("lahja-gathered-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let config = ConnectionConfig::new("coordinator", folder.join("coordinator.sock"));
    let endpoint = Endpoint::serve(config.clone()).await?;
    let workers = [
        ("alpha", "networking"),
        ("beta", "networking"),
        ("gamma", "sync"),
    ];
    let mut children = Vec::new();
    for (name, group) in workers {
        let child = Command::new(std::env::current_exe()?)
            .args(["worker", name, group])
            .arg(&config.path)
            .spawn()?;
        children.push(child);
    }
    endpoint
        .wait_until_group_has_members("networking", 2)
        .await?;
    for (name, _) in workers {
        endpoint
            .wait_until_endpoint_subscribed_to::<GetPeerCount>(name)
            .await?;
    }
    println!(
        "coordinator: networking is {:?}",
        endpoint.group_members("networking")
    );

    let to_networking = BroadcastConfig::to_group("networking");
    let mut answers = endpoint.request_all_with(GetPeerCount, to_networking)?;
    let mut lines = Vec::new();
    while let Some((origin, answer)) = answers.next().await {
        let PeerCount(peers) = answer?; // typed: a `PeerCount`
        lines.push(format!("coordinator: {origin} has {peers} peers"));
    }
    lines.sort();
    for line in lines {
        println!("{line}");
    }

    endpoint
        .wait_until_all_endpoints_subscribed_to::<Goodbye>(false)
        .await?;
    endpoint.broadcast(Goodbye).await?;
    endpoint.stop().await; // sends what is queued first
    for mut child in children {
        child.wait()?;
    }
    std::fs::remove_dir_all(&folder)?;
    println!("coordinator: done");
    Ok(())
}

async fn worker(name: &str, group: &str, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let options = EndpointOptions {
        groups: vec![group.to_owned()],
        ..EndpointOptions::default()
    };
    let endpoint = Endpoint::run_with(name, options).await?;
    let mut goodbye = endpoint.stream::<Goodbye>();
    let peers = name.len(); // each worker has its own answer
    let _answers = endpoint.handle_requests(move |_: GetPeerCount| async move { PeerCount(peers) });
    // Retries until the coordinator's socket appears.
    endpoint
        .connect_to_endpoints([ConnectionConfig::new("coordinator", path)])
        .await?;
    goodbye.next().await;
    endpoint.stop().await;
    Ok(())
}
