use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Pong)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Wrong;

fn answer(endpoint: Endpoint) {
    endpoint.handle_requests(|_: Ping| async { Wrong }).detach();
}

fn main() {}
