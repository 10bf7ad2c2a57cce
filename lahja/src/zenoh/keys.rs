//! The key expressions of a bus (see `docs/PROTOCOL.md`, "Over zenoh"):
//!
//! * `lahja/<bus>/ep/<name>/<zid>`: the liveliness token of endpoint
//!   `name` on the zenoh session `zid`;
//! * `lahja/<bus>/to/<name>/<zid>/from/<name>/<zid>`: frames from one
//!   endpoint to another.
//!
//! The session ID tells apart two processes that claim one name, so their
//! frames never mix. Endpoint names may hold characters a key cannot (`*`,
//! `$`, `?`, `#`, spaces...): those are percent-encoded, so every name is
//! one chunk.

use crate::{Error, Result};

/// One endpoint on the bus: its name and the zenoh session it is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Instance {
    pub(super) name: String,
    pub(super) zid: String,
}

impl Instance {
    /// The two key chunks that name it.
    fn chunks(&self) -> String {
        format!("{}/{}", encode(&self.name), self.zid)
    }

    /// Reads `<name>/<zid>` (and nothing after it).
    fn parse(chunks: &str) -> Option<Instance> {
        let (name, zid) = chunks.split_once('/')?;
        if zid.is_empty() || !zid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Instance {
            name: decode(name)?,
            zid: zid.to_owned(),
        })
    }
}

/// The keys of one endpoint on one bus.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// `lahja/<bus>`.
    prefix: String,
    /// This endpoint.
    me: Instance,
}

impl Keys {
    /// The bus name, as given to `ZenohConfig::new`.
    pub(super) fn bus(&self) -> &str {
        self.prefix.strip_prefix("lahja/").unwrap_or(&self.prefix)
    }

    /// The keys of endpoint `me` on session `zid` on `bus`; the bus must
    /// be a key of literal chunks (no wildcards).
    pub(super) fn new(bus: &str, me: &str, zid: &str) -> Result<Keys> {
        let invalid = |reason| Error::InvalidName {
            name: bus.to_owned(),
            reason,
        };
        if bus.is_empty() || bus.split('/').any(str::is_empty) {
            return Err(invalid(
                "a bus is one or more non-empty chunks separated by `/`",
            ));
        }
        if bus.contains(['*', '$', '?', '#']) || bus.chars().any(char::is_whitespace) {
            return Err(invalid(
                "a bus cannot contain `*`, `$`, `?`, `#` or white space",
            ));
        }
        Ok(Keys {
            prefix: format!("lahja/{bus}"),
            me: Instance {
                name: me.to_owned(),
                zid: zid.to_owned(),
            },
        })
    }

    /// This endpoint.
    pub(super) fn me(&self) -> &Instance {
        &self.me
    }

    /// Our liveliness token.
    pub(super) fn token(&self) -> String {
        format!("{}/ep/{}", self.prefix, self.me.chunks())
    }

    /// The tokens of every endpoint named `name`.
    pub(super) fn tokens_of(&self, name: &str) -> String {
        format!("{}/ep/{}/*", self.prefix, encode(name))
    }

    /// Every endpoint's liveliness token.
    pub(super) fn tokens(&self) -> String {
        format!("{}/ep/*/*", self.prefix)
    }

    /// The endpoint whose token `key` is.
    pub(super) fn token_owner(&self, key: &str) -> Option<Instance> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("/ep/")?;
        Instance::parse(rest)
    }

    /// Where every endpoint sends us frames.
    pub(super) fn inbox(&self) -> String {
        format!("{}/to/{}/from/*/*", self.prefix, self.me.chunks())
    }

    /// Where we send frames to endpoint `to`.
    pub(super) fn outbox(&self, to: &Instance) -> String {
        let (prefix, me) = (&self.prefix, self.me.chunks());
        format!("{prefix}/to/{}/from/{me}", to.chunks())
    }

    /// The sender of a sample on our inbox `key`.
    pub(super) fn sender(&self, key: &str) -> Option<Instance> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("/to/")?;
        let rest = rest
            .strip_prefix(&self.me.chunks())?
            .strip_prefix("/from/")?;
        Instance::parse(rest)
    }
}

/// Whether `byte` stands for itself in an encoded name.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_.~:@+=,".contains(&byte)
}

/// `name` as one key chunk: bytes other than letters, digits and
/// `-_.~:@+=,` become `%XX`.
pub(super) fn encode(name: &str) -> String {
    let mut chunk = String::with_capacity(name.len());
    for &byte in name.as_bytes() {
        if is_plain(byte) {
            chunk.push(byte as char);
        } else {
            chunk.push_str(&format!("%{byte:02X}"));
        }
    }
    chunk
}

/// The name `chunk` encodes; `None` if it is not the encoding of a name.
pub(super) fn decode(chunk: &str) -> Option<String> {
    let bytes = chunk.as_bytes();
    let mut name = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                name.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte if is_plain(byte) => {
                name.push(byte);
                i += 1;
            }
            _ => return None,
        }
    }
    let name = String::from_utf8(name).ok()?;
    // Only the one encoding of each name: `%41` for `A` is refused.
    (encode(&name) == chunk).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_one_chunk() {
        for name in [
            "node-1",
            "a*b",
            "$*",
            "x?y#z",
            "with space",
            "100%",
            "é",
            "a.b",
        ] {
            let chunk = encode(name);
            assert!(!chunk.contains(['/', '*', '$', '?', '#', ' ']), "{chunk}");
            assert_eq!(decode(&chunk).as_deref(), Some(name));
        }
    }

    #[test]
    fn only_the_canonical_encoding_decodes() {
        assert_eq!(decode("%41"), None, "`A` is written plain");
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("a*"), None);
        assert_eq!(decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn keys_name_their_endpoints() {
        let keys = Keys::new("prod/eu", "me*", "a1").unwrap();
        let you = Instance {
            name: "a b".into(),
            zid: "f0".into(),
        };
        assert_eq!(keys.token(), "lahja/prod/eu/ep/me%2A/a1");
        assert_eq!(keys.tokens_of("a b"), "lahja/prod/eu/ep/a%20b/*");
        assert_eq!(
            keys.token_owner("lahja/prod/eu/ep/a%20b/f0"),
            Some(you.clone())
        );
        assert_eq!(keys.token_owner("lahja/prod/other/ep/a/f0"), None);
        assert_eq!(keys.token_owner("lahja/prod/eu/ep/a/not-hex"), None);
        assert_eq!(keys.token_owner("lahja/prod/eu/ep/a/f0/more"), None);
        assert_eq!(keys.inbox(), "lahja/prod/eu/to/me%2A/a1/from/*/*");
        assert_eq!(keys.outbox(&you), "lahja/prod/eu/to/a%20b/f0/from/me%2A/a1");
        let from = keys.sender("lahja/prod/eu/to/me%2A/a1/from/a%20b/f0");
        assert_eq!(from, Some(you));
        assert_eq!(keys.sender("lahja/prod/eu/to/me%2A/b2/from/a/f0"), None);
    }

    #[test]
    fn a_bus_is_literal_chunks() {
        for bus in ["", "a//b", "/a", "a/", "a*", "$*", "a b", "a?"] {
            assert!(Keys::new(bus, "me", "a1").is_err(), "{bus:?}");
        }
        assert!(Keys::new("my-bus", "me", "a1").is_ok());
    }
}
