//! The frame decoder over arbitrary input: never panics, and valid frames cut
//! into arbitrary chunks decode to the same frames.

use super::*;
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    compress_above: 48,
    max_frame: 1 << 16,
};

/// A decoded frame: kind, event id, request id, decompressed body.
type Decoded = (Kind, u64, u64, Vec<u8>);

/// Feeds `bytes` in chunks cut at `cuts`, collecting frames until the
/// input ends or a violation stops it.
fn decode_all(bytes: &[u8], cuts: &[usize]) -> (Vec<Decoded>, Option<Violation>) {
    let mut frames = FrameBuffer::new(LIMITS.max_frame);
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut start = 0;
    for end in points {
        frames.extend(&bytes[start..end]);
        start = end;
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => match body(&frame, LIMITS.max_frame) {
                    Ok(b) => out.push((
                        frame.kind,
                        frame.event_id.as_u64(),
                        frame.request_id,
                        b.into_owned(),
                    )),
                    Err(violation) => return (out, Some(violation)),
                },
                Ok(None) => break,
                Err(violation) => return (out, Some(violation)),
            }
        }
    }
    (out, None)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Subscriptions),
        Just(Kind::Groups),
        Just(Kind::Event),
        Just(Kind::Request),
        Just(Kind::Response),
        Just(Kind::Dropped),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let _ = decode_all(&bytes, &cuts);
    }

    #[test]
    fn valid_frames_survive_any_chunking(
        messages in proptest::collection::vec(
            (kind(), any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)),
            1..12,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (kind, event_id, request_id, payload) in &messages {
            append_encoded(&mut bytes, *kind, EventId::from_u64(*event_id), *request_id, LIMITS, payload).unwrap();
            let mut body = Vec::new();
            codec::encode_into(payload, &mut body).unwrap();
            expected.push((*kind, *event_id, *request_id, body));
        }
        let (decoded, violation) = decode_all(&bytes, &cuts);
        prop_assert_eq!(violation, None);
        prop_assert_eq!(decoded, expected);
    }
}
