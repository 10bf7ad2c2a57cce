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
