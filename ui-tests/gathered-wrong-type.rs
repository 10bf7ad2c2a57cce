use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Pong)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Wrong;

// The items of a gathered request are the request's response type.
async fn gather(endpoint: Endpoint) -> lahja::Result<()> {
    let mut answers = endpoint.request_all(Ping)?;
    while let Some((_origin, answer)) = answers.next().await {
        let _wrong: Wrong = answer?;
    }
    Ok(())
}

fn main() {}
