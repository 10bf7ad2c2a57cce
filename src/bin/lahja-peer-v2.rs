//! A test helper: an endpoint built with another layout of `Numbered`
//! under the same wire name, as a second build of a program would have.
//! It serves at the path given as its argument (`NAME PATH`), joins the
//! zenoh bus `BUS` through `LOCATOR` if those follow (feature `zenoh`),
//! says `ready`, and runs until its stdin closes. The schema-mismatch
//! tests connect to it.
//!
//! It does not link `lahja_workspace` (whose `Numbered` has the same name
//! and would be a duplicate ID in this binary).

use lahja::{ConnectionConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

/// Version 2 of `lahja_workspace::events::Numbered`: a field was added.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "lahja_workspace::events::Numbered")]
struct Numbered {
    number: u64,
    label: String,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = Endpoint::serve(ConnectionConfig::new(&args[1], &args[2]))
        .await
        .expect("serve");
    let _stream = endpoint.stream::<Numbered>();
    if let [_, _, _, bus, locator, ..] = &args[..] {
        join_zenoh(&endpoint, bus, locator).await;
    }
    println!("ready");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}

#[cfg(feature = "zenoh")]
async fn join_zenoh(endpoint: &Endpoint, bus: &str, locator: &str) {
    let config = lahja::zenoh::ZenohConfig::new(bus).connect(locator);
    endpoint
        .join_zenoh(config)
        .await
        .expect("join the zenoh bus");
}

#[cfg(not(feature = "zenoh"))]
async fn join_zenoh(_: &Endpoint, _: &str, _: &str) {
    panic!("built without the `zenoh` feature");
}
