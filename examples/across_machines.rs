//! The same endpoints beyond one machine, over zenoh.
//!
//! `cargo run --example across_machines --features zenoh` runs both roles
//! on this machine, over TCP on 127.0.0.1: this process starts the
//! `oracle` (this same program with `--role oracle`), which listens, and
//! plays the `asker`, which connects. The asker streams the oracle's
//! `Tick`s and asks it three questions; the oracle answers each, typed.
//!
//! One role per machine: on machine A (say 10.0.0.1),
//!
//! ```sh
//! cargo run --example across_machines --features zenoh -- --role oracle --listen tcp/0.0.0.0:7447
//! ```
//!
//! and on machine B,
//!
//! ```sh
//! cargo run --example across_machines --features zenoh -- --role asker --connect tcp/10.0.0.1:7447
//! ```
//!
//! Not one line of the event code knows which transport carries it: the
//! same `Endpoint`, `stream`, `request` and `handle_requests` as over a
//! Unix socket.

use std::time::Duration;

use lahja::zenoh::ZenohConfig;
use lahja::{BroadcastConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Answer)]
struct Question(String);

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Answer(String);

/// The oracle's heartbeat, numbered.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Tick(u64);

/// The asker is done: the oracle can stop.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Goodbye;

/// The command line: `--role R`, `--listen L`, `--connect C`, `--bus B`.
#[derive(Default)]
struct Args {
    role: Option<String>,
    listen: Vec<String>,
    connect: Vec<String>,
    bus: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args::default();
        let mut words = std::env::args().skip(1);
        while let Some(flag) = words.next() {
            let value = words.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--role" => args.role = Some(value),
                "--listen" => args.listen.push(value),
                "--connect" => args.connect.push(value),
                "--bus" => args.bus = Some(value),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        Ok(args)
    }

    fn config(&self) -> ZenohConfig {
        let bus = self.bus.as_deref().unwrap_or("across-machines");
        let mut config = ZenohConfig::new(bus);
        for locator in &self.listen {
            config = config.listen(locator);
        }
        for locator in &self.connect {
            config = config.connect(locator);
        }
        config
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    match args.role.as_deref() {
        Some("oracle") => oracle(args.config()).await,
        Some("asker") => asker(args.config()).await,
        Some(other) => Err(format!("unknown role {other}: oracle or asker").into()),
        None => both_here(args).await,
    }
}

/// Both roles on this machine: the oracle in a child process.
async fn both_here(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let locator = format!("tcp/127.0.0.1:{port}");
    // A bus of its own, so two runs at once do not meet.
    let bus = args
        .bus
        .unwrap_or_else(|| format!("across-machines-{}", std::process::id()));
    let mut oracle = std::process::Command::new(std::env::current_exe()?)
        .args(["--role", "oracle", "--listen", &locator, "--bus", &bus])
        .spawn()?;
    let config = ZenohConfig::new(bus).connect(locator);
    asker(config).await?;
    let status = oracle.wait()?;
    if !status.success() {
        return Err(format!("the oracle failed: {status}").into());
    }
    Ok(())
}

async fn oracle(config: ZenohConfig) -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = Endpoint::run("oracle").await?;
    endpoint.join_zenoh(config).await?;
    let _answers = endpoint.handle_requests(|Question(question): Question| async move {
        Answer(format!("you asked {} letters' worth", question.len()))
    });
    let mut goodbye = endpoint.stream::<Goodbye>();
    endpoint.wait_until_connected_to("asker").await?;
    endpoint
        .wait_until_endpoint_subscribed_to::<Tick>("asker")
        .await?;
    println!("oracle: the asker is here");
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                // The asker may leave between its goodbye and our reading it.
                let anyone = BroadcastConfig::default().require_subscriber(false);
                endpoint.broadcast_with(Tick(n), anyone).await?;
                n += 1;
            }
            _ = goodbye.next() => break,
        }
    }
    println!("oracle: goodbye");
    endpoint.stop().await;
    Ok(())
}

async fn asker(config: ZenohConfig) -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = Endpoint::run("asker").await?;
    let mut ticks = endpoint.stream::<Tick>();
    endpoint.join_zenoh(config).await?;
    endpoint.wait_until_connected_to("oracle").await?;
    println!("asker: connected to the oracle");
    let Tick(first) = ticks.next().await.ok_or("the oracle left")?;
    println!("asker: the oracle ticks ({first})");
    endpoint
        .wait_until_endpoint_subscribed_to::<Question>("oracle")
        .await?;
    for question in ["why?", "how far?", "over zenoh?"] {
        let Answer(answer) = endpoint.request(Question(question.into())).await?;
        println!("asker: {question} -> {answer}");
    }
    endpoint
        .wait_until_endpoint_subscribed_to::<Goodbye>("oracle")
        .await?;
    endpoint.broadcast(Goodbye).await?;
    endpoint.stop().await;
    Ok(())
}
