use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request()]
struct Pong;

fn main() {}
