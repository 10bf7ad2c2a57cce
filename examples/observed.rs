//! A small bus to look at with the `lahja` tool.
//!
//! Run `cargo run --example observed` in one terminal: a `demo-node`
//! process serves and answers `demo.GetHeight`, and the `demo-sync`
//! process it starts imports a block every 100 ms and asks for the height
//! every second. In another terminal:
//!
//! ```sh
//! cargo run -p lahja-cli -- list
//! cargo run -p lahja-cli -- info demo-node
//! cargo run -p lahja-cli -- tap --count 5
//! cargo run -p lahja-cli -- top
//! ```
//!
//! It stops after `--seconds N` (default 60).

use std::process::Command;
use std::time::Duration;

use lahja::{ConnectionConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "demo.BlockImported")]
struct BlockImported {
    number: u64,
    hash: [u8; 4],
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "demo.GetHeight")]
#[request(response = Height)]
struct GetHeight;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "demo.Height")]
struct Height(u64);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args.get(i + 1).ok_or("--seconds needs a number")?.parse()?,
        None => 60,
    };
    let run_for = Duration::from_secs(seconds);
    match args.get(1).map(String::as_str) {
        Some("sync") => sync(run_for).await,
        _ => node(run_for).await,
    }
}

async fn node(run_for: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let node = Endpoint::serve(ConnectionConfig::from_name("demo-node")).await?;
    let height = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = height.clone();
    node.subscribe(move |block: BlockImported| {
        seen.store(block.number, std::sync::atomic::Ordering::Relaxed);
    })
    .detach();
    node.handle_requests(move |GetHeight| {
        let height = height.clone();
        async move { Height(height.load(std::sync::atomic::Ordering::Relaxed)) }
    })
    .detach();
    let mut sync = Command::new(std::env::current_exe()?)
        .args(["sync", "--seconds", &run_for.as_secs().to_string()])
        .spawn()?;
    node.wait_until_connected_to("demo-sync").await?;
    println!("demo-node: serving, demo-sync connected; look with `cargo run -p lahja-cli -- list`");
    let status = tokio::task::spawn_blocking(move || sync.wait()).await??;
    node.stop().await;
    println!("demo-node: done (demo-sync exited with {status})");
    Ok(())
}

async fn sync(run_for: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let sync = Endpoint::serve(ConnectionConfig::from_name("demo-sync")).await?;
    sync.connect_to_endpoints([ConnectionConfig::from_name("demo-node")])
        .await?;
    sync.wait_until_endpoint_subscribed_to::<BlockImported>("demo-node")
        .await?;
    let mut blocks = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + run_for;
    let mut number = 0u64;
    while tokio::time::Instant::now() < deadline {
        blocks.tick().await;
        number += 1;
        let hash = (number as u32).wrapping_mul(2_654_435_761).to_le_bytes();
        sync.broadcast(BlockImported { number, hash }).await?;
        if number.is_multiple_of(10) {
            let Height(height) = sync.request(GetHeight).await?;
            println!("demo-sync: imported {number}, the node is at {height}");
        }
    }
    sync.stop().await;
    Ok(())
}
