use lahja::Event;
use serde::Serialize;

#[derive(Event, Serialize, Clone, Debug)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
