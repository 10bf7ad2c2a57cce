//! Two processes exchange events, like lahja's `inter_process_ping_pong.py`.
//!
//! Run with `cargo run --example inter_process_ping_pong`: the first
//! process serves and starts the second (this same program with the role
//! argument `proc2`), which connects back. Each receives the other's
//! events through `subscribe`; proc2 also reads them as a stream.

use std::process::Command;

use lahja::{ConnectionConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct FirstThingHappened {
    payload: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct SecondThingHappened {
    payload: String,
}

const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("proc2") => proc2(ConnectionConfig::new("proc1", &args[2])).await,
        _ => proc1().await,
    }
}

async fn proc1() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::temp_dir().join(format!("lahja-ping-pong-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let config = ConnectionConfig::new("proc1", folder.join("proc1.sock"));
    let endpoint = Endpoint::serve(config.clone()).await?;
    println!("proc1: serving at {}", config.path.display());

    endpoint
        .subscribe(|event: SecondThingHappened| {
            println!(
                "proc1: Received via SUBSCRIBE API in proc1: {}",
                event.payload
            );
        })
        .detach();
    let mut replies = endpoint.stream::<SecondThingHappened>();

    let mut child = Command::new(std::env::current_exe()?)
        .arg("proc2")
        .arg(&config.path)
        .spawn()?;
    endpoint.wait_until_connected_to("proc2").await?;
    endpoint
        .wait_until_endpoint_subscribed_to::<FirstThingHappened>("proc2")
        .await?;
    println!("proc1: hello, proc2 is connected");

    for round in 1..=ROUNDS {
        let payload = format!("Hit from proc1 ({round})");
        println!("proc1: broadcasting {payload}");
        endpoint.broadcast(FirstThingHappened { payload }).await?;
        // Wait for proc2's answer before the next round.
        replies.next().await.ok_or("proc2 went away")?;
    }
    let status = child.wait()?;
    endpoint.stop().await;
    std::fs::remove_dir_all(&folder)?;
    println!("proc1: done (proc2 exited with {status})");
    Ok(())
}

async fn proc2(server: ConnectionConfig) -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = Endpoint::run("proc2").await?;
    endpoint
        .subscribe(|event: FirstThingHappened| {
            println!(
                "proc2: Received via SUBSCRIBE API in proc2: {}",
                event.payload
            );
        })
        .detach();
    let mut hits = endpoint.stream::<FirstThingHappened>();
    endpoint.connect_to_endpoints([server]).await?;
    println!("proc2: hello, connected to proc1");
    endpoint
        .wait_until_endpoint_subscribed_to::<SecondThingHappened>("proc1")
        .await?;

    for round in 1..=ROUNDS {
        let hit = hits.next().await.ok_or("proc1 went away")?;
        println!("proc2: Received via STREAM API in proc2: {}", hit.payload);
        let payload = format!("Hit back from proc2 ({round})");
        endpoint.broadcast(SecondThingHappened { payload }).await?;
    }
    // `stop` sends what is queued before closing.
    endpoint.stop().await;
    Ok(())
}
