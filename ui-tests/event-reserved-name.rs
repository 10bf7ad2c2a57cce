use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "lahja.Report")]
struct MyReport;

fn main() {}
