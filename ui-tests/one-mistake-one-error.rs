// A mistake in the attribute is reported once: the stub impl keeps every
// use of the type elsewhere compiling.
use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(nmae = "typo.Ping")]
#[request(response = Pong)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

async fn use_it(endpoint: Endpoint) -> lahja::Result<Pong> {
    let _stream = endpoint.stream::<Ping>();
    endpoint.request(Ping).await
}

fn main() {}
