use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(reply = Pong)]
struct Ping;

fn main() {}
