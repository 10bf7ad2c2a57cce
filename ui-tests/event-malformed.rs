use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "")]
struct Pong;

fn main() {}
