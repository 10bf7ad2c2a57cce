//! Random frames of every kind, for known and unknown IDs, with random
//! compression flags and lengths, sent after a valid handshake to a
//! victim process that aborts on any panic, while a well-behaved peer
//! keeps getting answers. `LAHJA_FUZZ_CASES` raises the case budget
//! (CI runs 256); `LAHJA_FUZZ_SEED` picks the seed (printed on failure).

use super::*;
use lahja_workspace::events::{Choice, Inner};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// IDs the victim knows (most of which it subscribes to or answers),
/// and some it does not.
fn event_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(Numbered::ID.as_u64()),
        Just(Blob::ID.as_u64()),
        Just(Rich::ID.as_u64()),
        Just(Double::ID.as_u64()),
        Just(Echo::ID.as_u64()),
        Just(WhoAreYou::ID.as_u64()),
        Just(Doubled::ID.as_u64()),
        Just(Tag::ID.as_u64()),
        Just(0u64),
        any::<u64>(),
    ]
}

fn rich() -> impl Strategy<Value = Rich> {
    (
        ".{0,20}",
        proptest::collection::vec(any::<u64>(), 0..8),
        proptest::option::of((any::<u32>(), any::<u32>())),
        prop_oneof![
            Just(Choice::Plain),
            ".{0,8}".prop_map(Choice::Text),
            (
                any::<i32>(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))
            )
                .prop_map(|(x, y)| Choice::Point { x, y }),
        ],
        proptest::collection::vec(proptest::collection::vec(".{0,4}", 0..3), 0..3),
    )
        .prop_map(|(text, list, maybe, choice, nested)| Rich {
            text,
            list,
            maybe: maybe.map(|(a, b)| Inner { a, b }),
            choice,
            nested,
        })
}

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

/// A body: random bytes, a valid value (mutated or not), or a lie.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        rich().prop_map(|r| encoded(&r)),
        any::<u64>().prop_map(|n| encoded(&n)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| encoded(&b)),
        // Group lists, some with names that are not names.
        proptest::collection::vec("[a-z/]{0,6}", 0..4).prop_map(|g| encoded(&g)),
    ];
    let mutated = (
        valid.clone(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    )
        .prop_map(|(mut body, edits)| {
            for (at, byte) in edits {
                if !body.is_empty() {
                    let len = body.len();
                    body[at % len] = byte;
                }
            }
            body
        });
    let lie =
        (proptest::collection::vec(any::<u8>(), 0..4), any::<u64>()).prop_map(|(prefix, claim)| {
            let mut body = prefix;
            body.push(253);
            body.extend_from_slice(&(claim | 1 << 40).to_le_bytes());
            body
        });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        valid,
        mutated,
        lie,
    ]
}

/// How the length prefix is written.
#[derive(Debug, Clone)]
enum Length {
    True,
    /// Any value: too short, too long, over the maximum.
    Claim(u32),
}

#[derive(Debug, Clone)]
struct RawFrame {
    kind: u8,
    flags: u8,
    event_id: u64,
    request_id: u64,
    body: Vec<u8>,
    compress: bool,
    length: Length,
}

impl RawFrame {
    fn bytes(&self) -> Vec<u8> {
        let body = if self.compress {
            snap::raw::Encoder::new().compress_vec(&self.body).unwrap()
        } else {
            self.body.clone()
        };
        let mut frame = raw::frame(self.kind, self.flags, self.event_id, self.request_id, &body);
        if let Length::Claim(len) = self.length {
            frame[..4].copy_from_slice(&len.to_le_bytes());
        }
        frame
    }
}

fn frame() -> impl Strategy<Value = RawFrame> {
    (
        prop_oneof![8 => 3u8..=8, 1 => Just(1u8), 1 => Just(2u8), 1 => any::<u8>()],
        prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => any::<u8>()],
        event_id(),
        prop_oneof![Just(0u64), any::<u64>()],
        body(),
        any::<bool>(),
        prop_oneof![9 => Just(Length::True), 1 => any::<u32>().prop_map(Length::Claim)],
    )
        .prop_map(
            |(kind, flags, event_id, request_id, body, compress, length)| RawFrame {
                kind,
                flags,
                event_id,
                request_id,
                body,
                compress,
                length,
            },
        )
}

fn attack() -> impl Strategy<Value = (Vec<u64>, Vec<RawFrame>)> {
    (
        proptest::collection::vec(event_id(), 0..4),
        proptest::collection::vec(frame(), 1..16),
    )
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_frames_never_crash_a_live_endpoint() {
    let cases = env_number("LAHJA_FUZZ_CASES", 256);
    let seed = env_number("LAHJA_FUZZ_SEED", 0x1a4a);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = attack();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = TempDir::new();
        let name = unique("fuzzed");
        let mut victim = Peer::victim_serving(&name, &dir, "").await;
        for command in [
            "answer",
            "answer-tag fuzzed",
            "subscribe",
            "subscribe-blob",
            "subscribe-rich",
        ] {
            victim.ok(command).await;
        }
        let healthy = Endpoint::run(unique("healthy")).await.unwrap();
        healthy
            .connect_to_endpoints([dir.config(&name)])
            .await
            .unwrap();
        subscribed::<Double>(&healthy, &name).await;
        let before = victim.rss_kib().await;
        let to = BroadcastConfig::to(name.clone());
        for case in 0..cases {
            let (subscriptions, frames) = strategy.new_tree(&mut runner).unwrap().current();
            let what = format!("case {case} (LAHJA_FUZZ_SEED={seed}): {frames:?}");
            let attacker = format!("attacker-{case}");
            let mut stream = handshaken(&dir.socket(&name), &attacker, &subscriptions).await;
            let bytes: Vec<u8> = frames.iter().flat_map(RawFrame::bytes).collect();
            // The victim may close first (a violation): then writes fail.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            within(
                &format!("the victim to close after {what}"),
                raw::read_until_closed(&mut stream),
            )
            .await;
            if let Some(status) = victim.exited() {
                panic!("the victim died ({status}) on {what}");
            }
            let answer = within(&what, healthy.request_with(Double(case), to.clone())).await;
            assert_eq!(answer.unwrap(), Doubled(case * 2), "{what}");
        }
        let after = victim.rss_kib().await;
        eprintln!("fuzzed victim RSS {before} -> {after} KiB over {cases} cases");
        let growth = after.saturating_sub(before);
        assert!(
            growth < 64 * 1024,
            "RSS grew by {growth} KiB over {cases} cases"
        );
        still_answers(&mut victim, &dir).await;
    });
}
