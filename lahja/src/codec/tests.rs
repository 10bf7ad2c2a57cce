use serde::de::{self, DeserializeSeed};

use super::reader::Reader;
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Sample {
    number: u64,
    text: String,
    bytes: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Empty,
    Circle(f64),
    Pair(i16, u128),
    Named { label: String, tags: Vec<char> },
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Rich {
    flag: bool,
    small: i8,
    signed: i64,
    wide: i128,
    unsigned: u32,
    float: f32,
    letter: char,
    maybe: Option<Sample>,
    shapes: Vec<Shape>,
    map: BTreeMap<String, Option<u16>>,
    tuple: (u8, (), String),
    // What the docs advise for byte buffers: `serialize_bytes` and
    // `deserialize_byte_buf`.
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
}

fn bincode_decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    // A limit keeps bincode itself from allocating what lies claim.
    let limited = bincode::config::standard().with_limit::<{ 1 << 20 }>();
    match bincode::serde::decode_from_slice(body, limited) {
        Ok((value, used)) if used == body.len() => Some(value),
        _ => None,
    }
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut body = Vec::new();
    encode_into(value, &mut body).unwrap();
    body
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Shape::Circle),
        (any::<i16>(), any::<u128>()).prop_map(|(a, b)| Shape::Pair(a, b)),
        (".{0,12}", proptest::collection::vec(any::<char>(), 0..4))
            .prop_map(|(label, tags)| Shape::Named { label, tags }),
    ]
}

prop_compose! {
    fn rich()(
        flag in any::<bool>(), small in any::<i8>(), signed in any::<i64>(),
        wide in any::<i128>(), unsigned in any::<u32>(),
        float in any::<f32>().prop_filter("not NaN", |f| !f.is_nan()),
        letter in any::<char>(),
        maybe in proptest::option::of((any::<u64>(), ".{0,20}", proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(number, text, bytes)| Sample { number, text, bytes })),
        shapes in proptest::collection::vec(shape(), 0..6),
        map in proptest::collection::btree_map(".{0,8}", proptest::option::of(any::<u16>()), 0..5),
        tuple in (any::<u8>(), Just(()), ".{0,8}"),
        raw in proptest::collection::vec(any::<u8>(), 0..600),
    ) -> Rich {
        Rich { flag, small, signed, wide, unsigned, float, letter, maybe, shapes, map, tuple, raw }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The reader reads back exactly what bincode writes.
    #[test]
    fn reads_what_bincode_writes(value in rich()) {
        let body = encoded(&value);
        prop_assert_eq!(decode::<Rich>(&body).unwrap(), value);
    }

    /// On any bytes, the reader and bincode agree on what they accept.
    #[test]
    fn agrees_with_bincode_on_arbitrary_bytes(
        value in rich(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut body = encoded(&value);
        for (at, byte) in edits {
            let len = body.len();
            body[at % len] = byte;
        }
        body.truncate(cut % (body.len() + 1));
        // Compared re-encoded: an edit can make a NaN, unequal to itself.
        let ours = decode::<Rich>(&body).ok().map(|v| encoded(&v));
        let theirs = bincode_decode::<Rich>(&body).map(|v| encoded(&v));
        prop_assert_eq!(ours, theirs);
    }
}

#[test]
fn round_trips_and_rejects_trailing_or_truncated_bytes() {
    let sample = Sample {
        number: 300,
        text: "héllo".into(),
        bytes: vec![1, 2, 3],
    };
    let body = encoded(&sample);
    assert_eq!(decode::<Sample>(&body).unwrap(), sample);
    let units = vec![(); 3000];
    assert_eq!(decode::<Vec<()>>(&encoded(&units)).unwrap(), units);

    let mut longer = body.clone();
    longer.push(0);
    assert!(matches!(decode::<Sample>(&longer), Err(Error::Codec(_))));
    assert!(matches!(
        decode::<Sample>(&body[..body.len() - 1]),
        Err(Error::Codec(_))
    ));
}

/// Length prefixes that claim 2^62 bytes or elements fail at once,
/// without allocating them (bincode 2 aborts the process on these).
#[test]
fn lying_lengths_fail_without_allocating() {
    let mut claim = vec![253];
    claim.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let error = decode::<String>(&claim).unwrap_err().to_string();
    assert!(error.contains("only 0 remain"), "{error}");
    assert!(decode::<Vec<u8>>(&claim).is_err());
    assert!(decode::<Vec<String>>(&claim).is_err());
    assert!(decode::<BTreeMap<u64, u64>>(&claim).is_err());
    assert!(
        decode::<Vec<()>>(&claim).is_err(),
        "zero-byte elements are bounded"
    );
    let mut nested = vec![0u8; 3];
    nested.extend_from_slice(&claim);
    assert!(decode::<(u8, u8, u8, Vec<Vec<u64>>)>(&nested).is_err());
}

/// Nested sequences share one budget of promised elements: a small
/// body cannot make serde preallocate a megabyte at every level.
#[test]
fn size_hints_share_one_budget() {
    struct Hints(Vec<usize>);
    impl<'de> de::Visitor<'de> for &mut Hints {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("nested sequences")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.0.push(seq.size_hint().unwrap_or(0));
            if self.0.len() < 100 {
                seq.next_element_seed(self)?;
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for &mut Hints {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    // 100 levels, each claiming 2^20 elements, in 500 bytes.
    let mut body = Vec::new();
    for _ in 0..100 {
        body.extend_from_slice(&[252, 0, 0, 16, 0]);
    }
    let mut hints = Hints(Vec::new());
    let mut reader = Reader::new(&body);
    let _ = (&mut hints).deserialize(&mut reader);
    let promised: usize = hints.0.iter().sum();
    assert!(
        promised <= body.len(),
        "{promised} elements promised for {} bytes",
        body.len()
    );
}

#[test]
fn deep_nesting_is_refused_before_the_stack_overflows() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Node(Option<Box<Node>>);
    let body = vec![1u8; 100_000];
    let error = decode::<Node>(&body).unwrap_err().to_string();
    assert!(error.contains("nested deeper"), "{error}");
}
