use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = trinity::Ping)]
struct Ping;

fn main() {}
