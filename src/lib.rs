//! Shared by the examples, the integration tests and the `lahja-peer`
//! test helper: event types defined once, so every binary that links this
//! crate gives them the same wire names.

pub mod events {
    //! Event types used across processes by the tests.

    use lahja::Event;
    use serde::{Deserialize, Serialize};

    /// A numbered event; order checks use the number.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Numbered(pub u64);

    /// Never subscribed to by anyone.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Unheard;

    /// Asks for `n * 2`.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    #[request(response = Doubled)]
    pub struct Double(pub u64);

    /// The answer to [`Double`].
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Doubled(pub u64);

    /// Not the answer to anything.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct WrongAnswer;

    /// Asks a responder for its tag.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    #[request(response = Tag)]
    pub struct WhoAreYou;

    /// A responder's tag.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Tag(pub String);

    /// A large payload.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Blob(pub Vec<u8>);

    /// Asks for a blob back, unchanged.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    #[request(response = Blob)]
    pub struct Echo(pub Vec<u8>);

    /// An event whose layout lives in a nested type: the deep schema
    /// check looks inside it (`lahja-nested-v2` swaps `Inner`'s fields).
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Nested {
        /// The nested part.
        pub inner: Inner,
    }

    /// Not an event itself: part of [`Nested`] and [`Rich`].
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Inner {
        /// First.
        pub a: u32,
        /// Second.
        pub b: u32,
    }

    /// Every kind of field a body can hold, for the fuzzer.
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct Rich {
        /// A string.
        pub text: String,
        /// A sequence.
        pub list: Vec<u64>,
        /// An option of a nested struct.
        pub maybe: Option<Inner>,
        /// An enum.
        pub choice: Choice,
        /// Nested sequences of strings.
        pub nested: Vec<Vec<String>>,
    }

    /// An enum with every kind of variant.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub enum Choice {
        /// A unit variant.
        Plain,
        /// A newtype variant.
        Text(String),
        /// A struct variant.
        Point {
            /// A signed field.
            x: i32,
            /// An optional byte string.
            y: Option<Vec<u8>>,
        },
    }
}

pub mod many {
    //! 320 event types (32 modules of 9 events and one request), as a
    //! program the size of Trinity declares: their hello is large enough
    //! to be compressed. `lahja-peer` links them all.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use lahja::{BroadcastConfig, Endpoint, Event, Result, Subscription};

    fn counting<E: Event>(endpoint: &Endpoint, hits: &Arc<AtomicU64>) -> Subscription {
        let hits = hits.clone();
        endpoint.subscribe(move |_: E| {
            hits.fetch_add(1, Ordering::Relaxed);
        })
    }

    macro_rules! ten_types {
        ($($module:ident)*) => {
            $(
                pub mod $module {
                    //! Ten types of one module.
                    use super::*;
                    use serde::{Deserialize, Serialize};

                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T0(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T1(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T2(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T3(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T4(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T5(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T6(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T7(pub u64, pub String);
                    /// A generated event.
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    pub struct T8(pub u64, pub String);

                    /// A generated request, answered with [`T0`].
                    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
                    #[request(response = T0)]
                    pub struct Ask(pub u64);

                    pub(super) fn subscribe(endpoint: &Endpoint, hits: &Arc<AtomicU64>) -> Vec<Subscription> {
                        vec![counting::<T0>(endpoint, hits), counting::<T1>(endpoint, hits), counting::<T2>(endpoint, hits), counting::<T3>(endpoint, hits), counting::<T4>(endpoint, hits), counting::<T5>(endpoint, hits), counting::<T6>(endpoint, hits), counting::<T7>(endpoint, hits), counting::<T8>(endpoint, hits)]
                    }

                    pub(super) async fn broadcast(endpoint: &Endpoint) -> Result<()> {
                        endpoint.broadcast(T0(1, "T0".into())).await?;
                        endpoint.broadcast(T1(1, "T1".into())).await?;
                        endpoint.broadcast(T2(1, "T2".into())).await?;
                        endpoint.broadcast(T3(1, "T3".into())).await?;
                        endpoint.broadcast(T4(1, "T4".into())).await?;
                        endpoint.broadcast(T5(1, "T5".into())).await?;
                        endpoint.broadcast(T6(1, "T6".into())).await?;
                        endpoint.broadcast(T7(1, "T7".into())).await?;
                        endpoint.broadcast(T8(1, "T8".into())).await?;
                        Ok(())
                    }
                }
            )*

            /// Subscribes to every generated event, counting deliveries.
            pub fn subscribe_all(endpoint: &Endpoint, hits: &Arc<AtomicU64>) -> Vec<Subscription> {
                let mut subscriptions = Vec::new();
                $( subscriptions.extend($module::subscribe(endpoint, hits)); )*
                subscriptions
            }

            /// Answers every generated request with `T0(n, "answer")`.
            pub fn answer_all(endpoint: &Endpoint) -> Vec<Subscription> {
                vec![$(
                    endpoint.handle_requests(|$module::Ask(n)| async move {
                        $module::T0(n, "answer".into())
                    }),
                )*]
            }

            /// Broadcasts one event of every generated type.
            pub async fn broadcast_all(endpoint: &Endpoint) -> Result<()> {
                $( $module::broadcast(endpoint).await?; )*
                Ok(())
            }

            /// Asks `to` every generated request; returns how many answered right.
            pub async fn request_all(endpoint: &Endpoint, to: &str) -> Result<usize> {
                let mut right = 0;
                $(
                    let answer = endpoint
                        .request_with($module::Ask(7), BroadcastConfig::to(to))
                        .await?;
                    right += usize::from(answer == $module::T0(7, "answer".into()));
                )*
                Ok(right)
            }
        };
    }

    ten_types!(m00 m01 m02 m03 m04 m05 m06 m07 m08 m09 m10 m11 m12 m13 m14 m15 m16 m17 m18 m19 m20 m21 m22 m23 m24 m25 m26 m27 m28 m29 m30 m31);

    /// Events of the generated types one endpoint receives when each of
    /// `endpoints` (itself included) broadcasts them all once.
    pub const EVENTS_PER_BROADCASTER: u64 = 32 * 9;

    /// Waits until `who` subscribes to the last generated type.
    pub async fn wait_subscribed(endpoint: &Endpoint, who: &str) -> Result<()> {
        endpoint
            .wait_until_endpoint_subscribed_to::<m31::T8>(who)
            .await
    }
}

/// A deterministic pseudo-random byte pattern (incompressible enough that
/// snappy leaves it uncompressed).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A 64-bit FNV-1a digest of `bytes`: tests compare large payloads by it.
pub fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What this process holds of shared memory: its open descriptors, those
/// of them that are lahja bodies, and its mappings of lahja bodies (from
/// `/proc/self`).
pub fn shared_memory_held() -> (usize, usize, usize) {
    let mut descriptors = 0;
    let mut bodies = 0;
    for entry in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        descriptors += 1;
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        bodies += usize::from(target.to_string_lossy().starts_with("/memfd:lahja-body"));
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mapped = maps
        .lines()
        .filter(|l| l.contains("/memfd:lahja-body"))
        .count();
    (descriptors, bodies, mapped)
}

/// This process's resident set size in KiB, from `/proc/self/status`.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How many file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}
