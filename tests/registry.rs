//! The registry: stable IDs, schema fingerprints, lookups.

use lahja::registry::{self, EventInfo};
use lahja::{Event, EventId};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[event(name = "tests.Pinned")]
struct Pinned;

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
#[request(response = Pinned)]
struct AskPinned(u8);

mod v1 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    pub struct Block {
        pub number: u64,
    }
}

mod v1_again {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    pub struct Block {
        // Formatting and comments do not matter.
        pub number: u64,
    }
}

mod v2 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    pub struct Block {
        pub number: u64,
        pub hash: [u8; 32],
    }
}

mod v3 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    pub struct Block {
        pub number: u32,
    }
}

mod v4 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug)]
    pub struct Block {
        #[serde(rename = "n")]
        pub number: u64,
    }
}

#[derive(Event, Serialize, Deserialize, Clone, Debug)]
enum Shape {
    Unit,
    Tuple(u8, String),
    Named { x: i32 },
}

#[test]
fn ids_are_fnv1a_of_the_name_and_stable() {
    // The documented value for a pinned name: any implementation must agree.
    assert_eq!(Pinned::NAME, "tests.Pinned");
    assert_eq!(Pinned::ID.as_u64(), 0xf6ee_4a96_73c4_9c26);
    assert_eq!(EventId::of("tests.Pinned"), Pinned::ID);
    // FNV-1a 64 reference vectors.
    assert_eq!(EventId::of("").as_u64(), 0xcbf2_9ce4_8422_2325);
    assert_eq!(EventId::of("a").as_u64(), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(EventId::of("foobar").as_u64(), 0x8594_4171_f739_67e8);
    // Unpinned: module path and type name.
    assert_eq!(AskPinned::NAME, "registry::AskPinned");
    assert_eq!(v1::Block::NAME, "registry::v1::Block");
    assert_eq!(AskPinned::ID, EventId::of(AskPinned::NAME));
}

#[test]
fn event_id_formats_as_hex() {
    assert_eq!(Pinned::ID.to_string(), "0xf6ee4a9673c49c26");
    assert_eq!(format!("{:?}", Pinned::ID), "EventId(0xf6ee4a9673c49c26)");
}

#[test]
fn the_schema_follows_the_shape() {
    assert_eq!(v1::Block::SCHEMA, v1_again::Block::SCHEMA);
    assert_ne!(v1::Block::SCHEMA, v2::Block::SCHEMA, "added field");
    assert_ne!(v1::Block::SCHEMA, v3::Block::SCHEMA, "retyped field");
    assert_ne!(v1::Block::SCHEMA, v4::Block::SCHEMA, "serde attribute");
    assert_ne!(Shape::SCHEMA, Pinned::SCHEMA);
}

#[test]
fn every_derived_type_is_registered() {
    let info = registry::lookup(Pinned::ID).expect("Pinned is registered");
    assert_eq!(
        *info,
        EventInfo {
            id: Pinned::ID,
            name: "tests.Pinned",
            rust_type: "registry::Pinned",
            schema: Pinned::SCHEMA,
            response: None,
        }
    );
    let request = registry::lookup(AskPinned::ID).unwrap();
    assert_eq!(request.response, Some(Pinned::ID));
    for id in [v1::Block::ID, v2::Block::ID, Shape::ID] {
        assert!(registry::all().any(|info| info.id == id));
    }
    assert!(registry::lookup(EventId::of("nothing.Here")).is_none());
}
