use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "a.Ping")]
#[event(name = "b.Ping")]
struct Ping;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "a.Pong", name = "b.Pong")]
struct Pong;

fn main() {}
