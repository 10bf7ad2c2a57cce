//! Two linked types with one wire ID make endpoint creation fail.
//! (A test binary of its own: the duplicate poisons every endpoint in it.)

use lahja::{Endpoint, Error, Event};
use serde::{Deserialize, Serialize};

mod first {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "tests.Collision")]
    pub struct Collision;
}

mod second {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    #[event(name = "tests.Collision")]
    pub struct Collision(pub u8);
}

#[tokio::test]
async fn duplicate_ids_are_a_startup_error_naming_both_types() {
    assert_eq!(first::Collision::ID, second::Collision::ID);
    match Endpoint::run("duplicate").await {
        Err(Error::DuplicateEventId { id, first, second }) => {
            assert_eq!(id, first::Collision::ID);
            assert_eq!(first, "registry_duplicate::first::Collision");
            assert_eq!(second, "registry_duplicate::second::Collision");
        }
        other => panic!("expected DuplicateEventId, got {other:?}"),
    }
}
