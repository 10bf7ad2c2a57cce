//! The wire format written by hand, from docs/PROTOCOL.md, to play a
//! hostile or foreign peer.
#![allow(dead_code)]

/// The protocol version this build speaks.
pub const VERSION: u16 = 4;

pub const HELLO: u8 = 1;
pub const REJECT: u8 = 2;
pub const SUBSCRIPTIONS: u8 = 3;
pub const EVENT: u8 = 4;
pub const REQUEST: u8 = 5;
pub const RESPONSE: u8 = 6;
pub const GROUPS: u8 = 8;
pub const OBSERVE: u8 = 9;

/// bincode 2 standard unsigned varint.
pub fn varint(out: &mut Vec<u8>, value: u64) {
    if value < 251 {
        out.push(value as u8);
    } else if value <= u16::MAX as u64 {
        out.push(251);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= u32::MAX as u64 {
        out.push(252);
        out.extend_from_slice(&(value as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub fn frame(kind: u8, flags: u8, event_id: u64, request_id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((18 + body.len()) as u32).to_le_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&event_id.to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(body);
    out
}

pub fn hello(name: &str, events: &[(u64, u64)], subscriptions: &[u64], version: u16) -> Vec<u8> {
    hello_in_groups(name, events, subscriptions, &[], version)
}

/// A hello that also names the sender's groups (from protocol version 3).
pub fn hello_in_groups(
    name: &str,
    events: &[(u64, u64)],
    subscriptions: &[u64],
    groups: &[&str],
    version: u16,
) -> Vec<u8> {
    let mut body = b"LAHJ".to_vec();
    body.extend_from_slice(&version.to_le_bytes());
    string(&mut body, name);
    varint(&mut body, events.len() as u64);
    for &(id, schema) in events {
        varint(&mut body, id);
        varint(&mut body, schema);
        varint(&mut body, 0); // format fingerprint: not traced
    }
    varint(&mut body, subscriptions.len() as u64);
    for &id in subscriptions {
        varint(&mut body, id);
    }
    varint(&mut body, groups.len() as u64);
    for group in groups {
        string(&mut body, group);
    }
    frame(HELLO, 0, 0, 0, &body)
}

/// One frame read from `stream`: (kind, flags, event id, request id, body),
/// or `None` at end of stream.
pub async fn read_frame(
    stream: &mut tokio::net::UnixStream,
) -> Option<(u8, u8, u64, u64, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut len = [0; 4];
    stream.read_exact(&mut len).await.ok()?;
    let mut rest = vec![0; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut rest).await.ok()?;
    let event_id = u64::from_le_bytes(rest[2..10].try_into().unwrap());
    let request_id = u64::from_le_bytes(rest[10..18].try_into().unwrap());
    Some((rest[0], rest[1], event_id, request_id, rest[18..].to_vec()))
}

/// Reads until the peer closes, returning the frames it sent.
pub async fn read_until_closed(stream: &mut tokio::net::UnixStream) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some((kind, _, _, _, body)) = read_frame(stream).await {
        frames.push((kind, body));
    }
    frames
}
