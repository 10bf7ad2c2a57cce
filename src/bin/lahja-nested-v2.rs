//! A test helper: a build whose `Nested` event has the same outer shape as
//! `lahja_workspace::events::Nested` but swaps the fields of the struct
//! inside it, as a second build of a program would after an edit to a
//! nested type. Its outer `Event::SCHEMA` is identical; only the deep
//! format check can tell the builds apart.
//!
//! `lahja-nested-v2 serve NAME PATH` serves, says `ready` and runs until
//! stdin closes; `lahja-nested-v2 connect NAME PATH` connects to NAME and
//! prints `ok` or `err <error>`.
//!
//! It does not link `lahja_workspace` (whose `Nested` would be a duplicate ID).

use lahja::{ConnectionConfig, Endpoint, Event};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

/// Version 2 of `lahja_workspace::events::Nested`.
#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "lahja_workspace::events::Nested")]
struct Nested {
    inner: Inner,
}

/// The fields of version 1, in the other order.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Inner {
    b: u32,
    a: u32,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = ConnectionConfig::new(&args[2], &args[3]);
    let endpoint = if args[1] == "serve" {
        Endpoint::serve(config).await.expect("serve")
    } else {
        let endpoint = Endpoint::run("nested-v2-client").await.expect("run");
        match endpoint.connect_to_endpoints([config]).await {
            Ok(()) => println!("ok"),
            Err(error) => println!("err {error:?}"),
        }
        endpoint
    };
    let _stream = endpoint.stream::<Nested>();
    println!("ready");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}
