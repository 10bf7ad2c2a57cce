//! The handshake messages: [`Hello`], sent first by both sides, and the
//! server's [`Reject`]. A hello starts with fixed magic and version bytes,
//! so that any future version can still be told apart.

use serde::{Deserialize, Serialize};

use super::frame::{Kind, Limits, append_frame};
use crate::{EventId, Result, codec, registry};

/// The protocol this build speaks; a peer with another is refused.
pub(crate) const PROTOCOL_VERSION: u16 = 4;
pub(crate) const MAGIC: [u8; 4] = *b"LAHJ";

/// The first message on a connection, from both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The sender's endpoint name.
    pub(crate) name: String,
    /// Every event type the sender knows: (ID, schema fingerprint, format
    /// fingerprint; 0 where the format could not be traced).
    pub(crate) events: Vec<(u64, u64, u64)>,
    /// The IDs the sender is subscribed to.
    pub(crate) subscriptions: Vec<u64>,
    /// The process groups the sender belongs to.
    pub(crate) groups: Vec<String>,
}

impl Hello {
    /// The hello of endpoint `name`: the whole registry table (each event
    /// type with its fingerprints), its current `subscriptions` and `groups`.
    pub(crate) fn ours(name: &str, subscriptions: Vec<u64>, groups: Vec<String>) -> Hello {
        Hello {
            name: name.to_owned(),
            events: registry::all()
                .map(|i| (i.id.as_u64(), i.schema, registry::format_of(i.id)))
                .collect(),
            subscriptions,
            groups,
        }
    }

    /// This hello, if every group it names is a valid name.
    pub(crate) fn with_valid_groups(self) -> std::result::Result<Hello, String> {
        for group in &self.groups {
            crate::validate_name(group).map_err(|e| format!("a group: {e}"))?;
        }
        Ok(self)
    }

    /// The first schema disagreement between our registry and this
    /// hello's table: the outer shape (`Event::SCHEMA`), else the whole
    /// traced format (where both sides could trace it). Returns (wire
    /// name, ours, theirs).
    pub(crate) fn schema_mismatch(&self) -> Option<(String, u64, u64)> {
        self.events.iter().find_map(|&(id, remote, remote_format)| {
            let id = EventId::from_u64(id);
            let local = registry::lookup(id)?;
            if local.schema != remote {
                return Some((local.name.to_owned(), local.schema, remote));
            }
            let local_format = registry::format_of(id);
            (local_format != 0 && remote_format != 0 && local_format != remote_format).then(|| {
                (
                    format!("{} (a type inside it)", local.name),
                    local_format,
                    remote_format,
                )
            })
        })
    }
}

/// Why a server refused a connection (sent instead of its hello).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reject {
    Refused {
        reason: String,
    },
    SchemaMismatch {
        event: String,
        server_schema: u64,
        client_schema: u64,
    },
}

/// A hello body: magic and version in fixed bytes (so any future version
/// can still be told apart), then the encoded [`Hello`].
pub(crate) fn append_hello(out: &mut Vec<u8>, hello: &Hello, limits: Limits) -> Result<()> {
    append_frame(out, Kind::Hello, EventId::from_u64(0), 0, limits, |out| {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        codec::encode_into(hello, out)
    })
}

/// The first frame of an observer: magic and version as in a hello, then
/// the tool's name.
pub(crate) fn append_observe(out: &mut Vec<u8>, tool: &str, limits: Limits) -> Result<()> {
    append_frame(out, Kind::Observe, EventId::from_u64(0), 0, limits, |out| {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        codec::encode_into(&tool, out)
    })
}

/// Reads an observe body: the tool's name.
pub(crate) fn parse_observe(body: &[u8]) -> std::result::Result<String, String> {
    codec::decode(versioned(body)?).map_err(|e| e.to_string())
}

/// Reads a hello body; a wrong magic or version is a clear refusal reason.
pub(crate) fn parse_hello(body: &[u8]) -> std::result::Result<Hello, String> {
    codec::decode(versioned(body)?).map_err(|e| e.to_string())
}

/// What follows the magic and version of a hello or observe body.
fn versioned(body: &[u8]) -> std::result::Result<&[u8], String> {
    let Some((magic, rest)) = body.split_first_chunk::<4>() else {
        return Err("hello too short".into());
    };
    if *magic != MAGIC {
        return Err("not a lahja hello (bad magic)".into());
    }
    let Some((version, rest)) = rest.split_first_chunk::<2>() else {
        return Err("hello too short".into());
    };
    let version = u16::from_le_bytes(*version);
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {version} is not supported (this endpoint speaks {PROTOCOL_VERSION})"
        ));
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameBuffer;

    const LIMITS: Limits = Limits {
        compress_above: 64,
        max_frame: 1 << 20,
    };

    #[test]
    fn hello_checks_magic_and_version() {
        let hello = Hello {
            name: "a".into(),
            events: vec![(1, 2, 3)],
            subscriptions: vec![3],
            groups: vec!["g".into()],
        };
        let mut out = Vec::new();
        append_hello(&mut out, &hello, LIMITS).unwrap();
        let mut frames = FrameBuffer::new(LIMITS.max_frame);
        frames.extend(&out);
        let frame = frames.next_frame().unwrap().unwrap();
        assert_eq!(parse_hello(frame.body).unwrap(), hello);

        let mut wrong_version = frame.body.to_vec();
        wrong_version[4] = 9;
        assert!(
            parse_hello(&wrong_version)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(parse_hello(b"HTTP/1.1").unwrap_err().contains("magic"));
    }
}
