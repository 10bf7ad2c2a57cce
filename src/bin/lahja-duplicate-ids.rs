//! A test helper: a program that links two event types with one wire
//! name. Creating an endpoint must fail with `DuplicateEventId`; it prints
//! the error and exits 1.

use lahja::{Endpoint, Event};
use serde::{Deserialize, Serialize};

mod blocks {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "app.Imported")]
    pub struct Imported(pub u64);
}

mod peers {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "app.Imported")]
    pub struct Imported(pub String);
}

#[tokio::main]
async fn main() {
    assert_eq!(blocks::Imported::ID, peers::Imported::ID);
    match Endpoint::run("duplicate").await {
        Ok(_) => println!("started"),
        Err(error) => {
            println!("error: {error}");
            println!("debug: {error:?}");
            std::process::exit(1);
        }
    }
}
