use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = "Pong")]
struct Ping;

fn main() {}
