use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug)]
struct NotAnEvent;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = NotAnEvent)]
struct Ping;

fn main() {}
