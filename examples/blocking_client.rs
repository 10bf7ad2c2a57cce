//! A plain `fn main` (no async anywhere in the client) that talks to an
//! async server process with typed requests.
//!
//! Run with `cargo run --example blocking_client`: it starts the server
//! (this same program with the role argument `server`, which runs a tokio
//! endpoint) and asks it to add numbers.

use std::process::Command;
use std::time::Duration;

use lahja::blocking::Endpoint;
use lahja::{ConnectionConfig, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Sum)]
struct Add(i64, i64);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Sum(i64);

/// The client is done; the server can stop.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Goodbye;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        return server(ConnectionConfig::new("adder", &args[2]));
    }

    let folder = std::env::temp_dir().join(format!("lahja-blocking-client-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let config = ConnectionConfig::new("adder", folder.join("adder.sock"));
    let mut server = Command::new(std::env::current_exe()?)
        .arg("server")
        .arg(&config.path)
        .spawn()?;

    let client = Endpoint::run("blocking-client")?;
    client.connect_to_endpoints([config])?; // retries until the server is up
    client.wait_until_endpoint_subscribed_to::<Add>("adder")?;
    for (a, b) in [(1, 2), (40, 2), (-7, 7)] {
        let Sum(sum) = client.request_timeout(Add(a, b), Duration::from_secs(5))?;
        println!("client: {a} + {b} = {sum}");
    }
    client.wait_until_endpoint_subscribed_to::<Goodbye>("adder")?;
    client.broadcast(Goodbye)?;
    client.stop(); // sends what is queued first
    let status = server.wait()?;
    std::fs::remove_dir_all(&folder)?;
    println!("client: done (server exited with {status})");
    Ok(())
}

/// The async side: a tokio endpoint answering `Add` until the client says
/// goodbye. (Waiting for the client to connect and then to leave would be
/// racy: it may have come and gone before this task gets to wait.)
fn server(config: ConnectionConfig) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let endpoint = lahja::Endpoint::serve(config).await?;
        let _answers = endpoint.handle_requests(|Add(a, b)| async move { Sum(a + b) });
        let mut goodbye = endpoint.stream::<Goodbye>();
        goodbye
            .next()
            .await
            .ok_or("stopped before the client said goodbye")?;
        println!("server: the client said goodbye");
        endpoint.stop().await;
        Ok(())
    })
}
