use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Pong)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Wrong;

async fn answer(endpoint: Endpoint) {
    let mut requests = endpoint.stream_requests::<Ping>();
    while let Some(request) = requests.next().await {
        let _ = request.respond(Wrong).await;
    }
}

fn main() {}
