use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Pong)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Wrong;

async fn ask(endpoint: Endpoint) -> lahja::Result<()> {
    let _answer: Wrong = endpoint.request(Ping).await?;
    Ok(())
}

fn main() {}
