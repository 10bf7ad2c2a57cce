use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Ping;

async fn ask(endpoint: Endpoint) {
    let _ = endpoint.request(Ping).await;
}

fn main() {}
