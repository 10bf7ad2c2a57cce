use lahja::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
struct Wrapper<T> {
    inner: T,
}

fn main() {}
