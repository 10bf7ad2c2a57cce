//! The frame layout (see `docs/PROTOCOL.md`): parsing and writing frames.
//!
//! ```text
//! u32 LE length (of everything after it)
//! u8 kind | u8 flags | u64 LE event id | u64 LE request id   (the 18-byte header)
//! body (bincode; snappy raw block format when flags & COMPRESSED;
//!       u64 LE length of a body sent in shared memory when flags & SHARED)
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Error, EventId, Result, codec, registry};

pub(crate) const LEN_BYTES: usize = 4;
pub(crate) const HEADER_BYTES: usize = 18;
pub(crate) const FLAG_COMPRESSED: u8 = 0x01;
/// The body is in shared memory: the frame's own body is its length, and
/// its descriptor came with the connection's bytes (see
/// [`shared_memory`](crate::shared_memory)).
pub(crate) const FLAG_SHARED: u8 = 0x02;
/// Handshake and subscription frames may be this large whatever
/// `max_frame_bytes` says: they grow with the number of event types a
/// program declares (about 30 bytes each), not with what it sends.
pub(crate) const CONTROL_FRAME_MAX: usize = 1 << 20;

/// The message kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hello = 1,
    Reject = 2,
    Subscriptions = 3,
    Event = 4,
    Request = 5,
    Response = 6,
    Dropped = 7,
    Groups = 8,
    /// The first frame of a tool that observes (instead of a hello).
    Observe = 9,
    /// The receiver of the oldest body sent to it in shared memory is done
    /// with it: the sender stops counting it against the queue's bound.
    Released = 10,
}

impl Kind {
    /// The largest frame of this kind, given the endpoint's `max_frame_bytes`.
    pub(crate) fn max_frame(self, max_frame: usize) -> usize {
        match self {
            Kind::Hello
            | Kind::Reject
            | Kind::Subscriptions
            | Kind::Groups
            | Kind::Observe
            | Kind::Released => max_frame.max(CONTROL_FRAME_MAX),
            Kind::Event | Kind::Request | Kind::Response | Kind::Dropped => max_frame,
        }
    }

    fn from_u8(raw: u8) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Hello,
            2 => Kind::Reject,
            3 => Kind::Subscriptions,
            4 => Kind::Event,
            5 => Kind::Request,
            6 => Kind::Response,
            7 => Kind::Dropped,
            8 => Kind::Groups,
            9 => Kind::Observe,
            10 => Kind::Released,
            _ => return None,
        })
    }
}

/// One parsed frame, borrowing its body from the read buffer.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) kind: Kind,
    pub(crate) flags: u8,
    pub(crate) event_id: EventId,
    pub(crate) request_id: u64,
    pub(crate) body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The length of a body sent in shared memory, `None` for a frame
    /// that carries its body. Checked against the limit of its kind, as a
    /// body on the socket would be.
    pub(crate) fn shared_len(&self, max_frame: usize) -> Result<Option<usize>, Violation> {
        if self.flags & FLAG_SHARED == 0 {
            return Ok(None);
        }
        let Ok(&len) = <&[u8; 8]>::try_from(self.body) else {
            return Err(Violation::SharedMemory(format!(
                "a shared-memory frame has a {}-byte body, not its 8-byte length",
                self.body.len()
            )));
        };
        let len = u64::from_le_bytes(len);
        let max = self.kind.max_frame(max_frame);
        match usize::try_from(len) {
            Ok(len) if len.saturating_add(HEADER_BYTES) <= max => Ok(Some(len)),
            _ => Err(Violation::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max,
            }),
        }
    }

    /// This frame with its body found elsewhere (in shared memory).
    pub(crate) fn with_body(self, body: &'a [u8]) -> Frame<'a> {
        Frame {
            flags: self.flags & !FLAG_SHARED,
            body,
            ..self
        }
    }
}

#[cfg(feature = "zenoh")]
impl Frame<'_> {
    /// The frame as it was on the wire (length prefix, header, body).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let len = (HEADER_BYTES + self.body.len()) as u32;
        let mut bytes = Vec::with_capacity(LEN_BYTES + len as usize);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.push(self.kind as u8);
        bytes.push(self.flags);
        bytes.extend_from_slice(&self.event_id.as_u64().to_le_bytes());
        bytes.extend_from_slice(&self.request_id.to_le_bytes());
        bytes.extend_from_slice(self.body);
        bytes
    }
}

/// A protocol violation: the connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    TooLarge { len: usize, max: usize },
    TooShort { len: usize },
    UnknownKind(u8),
    UnknownFlags(u8),
    BadCompression(String),
    BadBody(String),
    Unexpected(Kind),
    SharedMemory(String),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            Violation::TooShort { len } => {
                write!(f, "frame of {len} bytes is shorter than a header")
            }
            Violation::UnknownKind(kind) => write!(f, "unknown message kind {kind}"),
            Violation::UnknownFlags(flags) => write!(f, "unknown flags {flags:#04x}"),
            Violation::BadCompression(why) => write!(f, "invalid snappy body: {why}"),
            Violation::BadBody(why) => write!(f, "body does not decode: {why}"),
            Violation::Unexpected(kind) => write!(f, "unexpected {kind:?} message"),
            Violation::SharedMemory(why) => write!(f, "shared-memory body refused: {why}"),
        }
    }
}

/// Accumulates bytes read from a connection and cuts them into frames.
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl FrameBuffer {
    pub(crate) fn new(max_frame: usize) -> Self {
        FrameBuffer {
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            max_frame,
        }
    }

    /// Appends raw bytes (what a read would have added, or one message of
    /// a medium that carries whole frames).
    #[cfg(any(test, feature = "zenoh"))]
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet cut into frames: a medium of whole
    /// messages has none left after each message.
    #[cfg(feature = "zenoh")]
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Forgets whatever is buffered (after a violation).
    #[cfg(feature = "zenoh")]
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Drops the bytes already cut into frames.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// The next complete frame, `None` if more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Violation> {
        let available = &self.buf[self.start..];
        let Some(prefix) = available.first_chunk::<LEN_BYTES>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len < HEADER_BYTES {
            return Err(Violation::TooShort { len });
        }
        if len > self.max_frame {
            let over_every_limit = len > self.max_frame.max(CONTROL_FRAME_MAX);
            // Control frames have a limit of their own: that takes the kind.
            let raw_kind = match available.get(LEN_BYTES) {
                Some(&raw_kind) if !over_every_limit => raw_kind,
                None if !over_every_limit => return Ok(None),
                _ => {
                    return Err(Violation::TooLarge {
                        len,
                        max: self.max_frame,
                    });
                }
            };
            let kind = Kind::from_u8(raw_kind).ok_or(Violation::UnknownKind(raw_kind))?;
            let max = kind.max_frame(self.max_frame);
            if len > max {
                return Err(Violation::TooLarge { len, max });
            }
        }
        if available.len() < LEN_BYTES + len {
            // Make room for the rest of this frame in one go.
            self.buf.reserve(LEN_BYTES + len - available.len());
            return Ok(None);
        }
        let header = &available[LEN_BYTES..LEN_BYTES + HEADER_BYTES];
        let kind = Kind::from_u8(header[0]).ok_or(Violation::UnknownKind(header[0]))?;
        let flags = header[1];
        let shareable = matches!(kind, Kind::Event | Kind::Request | Kind::Response);
        let known = match flags {
            0 | FLAG_COMPRESSED => true,
            FLAG_SHARED => shareable,
            _ => false,
        };
        if !known {
            return Err(Violation::UnknownFlags(flags));
        }
        let event_id = u64::from_le_bytes(header[2..10].try_into().expect("8 bytes"));
        let request_id = u64::from_le_bytes(header[10..18].try_into().expect("8 bytes"));
        let body_start = self.start + LEN_BYTES + HEADER_BYTES;
        let body_end = self.start + LEN_BYTES + len;
        self.start = body_end;
        Ok(Some(Frame {
            kind,
            flags,
            event_id: EventId::from_u64(event_id),
            request_id,
            body: &self.buf[body_start..body_end],
        }))
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    pub(crate) async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<usize> {
        self.compact();
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        reader.read_buf(&mut self.buf).await
    }
}

/// The length of the body of an encoded frame (as on the wire).
pub(crate) fn body_len(frame: &[u8]) -> usize {
    frame.len().saturating_sub(LEN_BYTES + HEADER_BYTES)
}

/// The body of a frame, decompressed when flagged. A body in shared
/// memory must have been found (see [`Frame::with_body`]) by the transport
/// that can receive one; elsewhere it is a violation.
pub(crate) fn body<'a>(frame: &Frame<'a>, max_frame: usize) -> Result<Cow<'a, [u8]>, Violation> {
    if frame.flags & FLAG_SHARED != 0 {
        return Err(Violation::SharedMemory(
            "it came where no descriptor can travel".into(),
        ));
    }
    if frame.flags & FLAG_COMPRESSED == 0 {
        return Ok(Cow::Borrowed(frame.body));
    }
    let len = snap::raw::decompress_len(frame.body)
        .map_err(|e| Violation::BadCompression(e.to_string()))?;
    let max = frame.kind.max_frame(max_frame);
    if len.saturating_add(HEADER_BYTES) > max {
        return Err(Violation::TooLarge {
            len: len.saturating_add(HEADER_BYTES),
            max,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(frame.body)
        .map(Cow::Owned)
        .map_err(|e| Violation::BadCompression(e.to_string()))
}

/// Limits that shape outgoing frames.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) compress_above: usize,
    pub(crate) max_frame: usize,
}

/// Appends a frame whose body `write_body` appends; compresses the body
/// when it is large and that helps; fails (appending nothing) when the
/// frame exceeds `max_frame`.
pub(crate) fn append_frame(
    out: &mut Vec<u8>,
    kind: Kind,
    event_id: EventId,
    request_id: u64,
    limits: Limits,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let start = out.len();
    append_uncompressed(out, kind, event_id, request_id, limits, write_body)?;
    compress_from(out, start, limits)
}

/// [`append_frame`] without compression: for a body that may go into
/// shared memory, where compressing would only cost time.
pub(crate) fn append_uncompressed(
    out: &mut Vec<u8>,
    kind: Kind,
    event_id: EventId,
    request_id: u64,
    limits: Limits,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&event_id.as_u64().to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    if let Err(error) = write_body(out) {
        out.truncate(start);
        return Err(error);
    }
    // The limit is on the frame as the receiver will hold it, decompressed:
    // a body that compresses below the limit is refused all the same.
    let bytes = out.len() - start - LEN_BYTES;
    let max = kind.max_frame(limits.max_frame);
    if bytes > max || u32::try_from(bytes).is_err() {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            event: registry::describe(event_id),
            bytes,
            max,
        });
    }
    out[start..start + LEN_BYTES].copy_from_slice(&(bytes as u32).to_le_bytes());
    Ok(())
}

/// Compresses the body of the uncompressed frame at `out[start..]` when
/// it is large and that helps.
pub(crate) fn compress_from(out: &mut Vec<u8>, start: usize, limits: Limits) -> Result<()> {
    let body_start = start + LEN_BYTES + HEADER_BYTES;
    if out.len() - body_start >= limits.compress_above {
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&out[body_start..])
            .map_err(|e| Error::Codec(e.to_string()));
        match compressed {
            Ok(compressed) if compressed.len() < out.len() - body_start => {
                out.truncate(body_start);
                out.extend_from_slice(&compressed);
                out[start + LEN_BYTES + 1] = FLAG_COMPRESSED;
                // Compression only shrinks, so this fits in u32.
                let len = out.len() - start - LEN_BYTES;
                out[start..start + LEN_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
            }
            Ok(_) => {}
            Err(error) => {
                out.truncate(start);
                return Err(error);
            }
        }
    }
    Ok(())
}

/// The frame that stands for `frame` (uncompressed) when its body goes in
/// shared memory: the same header, flagged, with the body's length.
pub(crate) fn shared_stand_in(frame: &[u8]) -> [u8; LEN_BYTES + HEADER_BYTES + 8] {
    let mut stand_in = [0; LEN_BYTES + HEADER_BYTES + 8];
    stand_in[..LEN_BYTES].copy_from_slice(&((HEADER_BYTES + 8) as u32).to_le_bytes());
    stand_in[LEN_BYTES..LEN_BYTES + HEADER_BYTES]
        .copy_from_slice(&frame[LEN_BYTES..LEN_BYTES + HEADER_BYTES]);
    stand_in[LEN_BYTES + 1] = FLAG_SHARED;
    stand_in[LEN_BYTES + HEADER_BYTES..].copy_from_slice(&(body_len(frame) as u64).to_le_bytes());
    stand_in
}

/// A RELEASED frame (see [`Kind::Released`]).
pub(crate) fn released() -> [u8; LEN_BYTES + HEADER_BYTES] {
    let mut frame = [0; LEN_BYTES + HEADER_BYTES];
    frame[..LEN_BYTES].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
    frame[LEN_BYTES] = Kind::Released as u8;
    frame
}

/// Appends a frame carrying `value` encoded as the body.
pub(crate) fn append_encoded<T: Serialize>(
    out: &mut Vec<u8>,
    kind: Kind,
    event_id: EventId,
    request_id: u64,
    limits: Limits,
    value: &T,
) -> Result<()> {
    append_frame(out, kind, event_id, request_id, limits, |out| {
        codec::encode_into(value, out)
    })
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        compress_above: 64,
        max_frame: 1 << 20,
    };

    #[test]
    fn frames_round_trip_and_large_bodies_are_compressed() {
        let mut out = Vec::new();
        let small = vec![7u8; 10];
        let large = vec![7u8; 10_000];
        append_encoded(&mut out, Kind::Event, EventId::of("a"), 0, LIMITS, &small).unwrap();
        append_encoded(
            &mut out,
            Kind::Request,
            EventId::of("b"),
            42,
            LIMITS,
            &large,
        )
        .unwrap();
        let mut frames = FrameBuffer::new(LIMITS.max_frame);
        frames.extend(&out);

        let first = frames.next_frame().unwrap().unwrap();
        assert_eq!((first.kind, first.flags), (Kind::Event, 0));
        assert_eq!(first.event_id, EventId::of("a"));
        let decoded: Vec<u8> = codec::decode(&body(&first, LIMITS.max_frame).unwrap()).unwrap();
        assert_eq!(decoded, small);

        let second = frames.next_frame().unwrap().unwrap();
        assert_eq!(
            (second.kind, second.flags),
            (Kind::Request, FLAG_COMPRESSED)
        );
        assert_eq!(second.request_id, 42);
        assert!(
            second.body.len() < 1000,
            "10 kB of one byte compresses well"
        );
        let decoded: Vec<u8> = codec::decode(&body(&second, LIMITS.max_frame).unwrap()).unwrap();
        assert_eq!(decoded, large);
        assert!(frames.next_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_and_malformed_frames_are_violations() {
        let mut frames = FrameBuffer::new(100);
        frames.extend(&101u32.to_le_bytes());
        frames.extend(&[Kind::Event as u8]);
        assert_eq!(
            frames.next_frame().unwrap_err(),
            Violation::TooLarge { len: 101, max: 100 }
        );
        // A hello may be larger (it grows with the registry), up to its own cap.
        let mut frames = FrameBuffer::new(100);
        frames.extend(&101u32.to_le_bytes());
        frames.extend(&[Kind::Hello as u8]);
        assert!(frames.next_frame().unwrap().is_none(), "waits for the rest");
        let mut frames = FrameBuffer::new(100);
        frames.extend(&(CONTROL_FRAME_MAX as u32 + 1).to_le_bytes());
        frames.extend(&[Kind::Hello as u8]);
        assert!(matches!(
            frames.next_frame(),
            Err(Violation::TooLarge { .. })
        ));

        let mut frames = FrameBuffer::new(100);
        frames.extend(&3u32.to_le_bytes());
        assert_eq!(
            frames.next_frame().unwrap_err(),
            Violation::TooShort { len: 3 }
        );

        let mut frame = Vec::new();
        append_frame(&mut frame, Kind::Event, EventId::of("x"), 0, LIMITS, |_| {
            Ok(())
        })
        .unwrap();
        frame[LEN_BYTES] = 99;
        let mut frames = FrameBuffer::new(100);
        frames.extend(&frame);
        assert_eq!(frames.next_frame().unwrap_err(), Violation::UnknownKind(99));
    }

    #[test]
    fn a_frame_over_the_limit_is_not_written() {
        let mut out = vec![1, 2, 3];
        let limits = Limits {
            compress_above: usize::MAX,
            max_frame: 50,
        };
        let error = append_encoded(
            &mut out,
            Kind::Event,
            EventId::of("x"),
            0,
            limits,
            &vec![0u8; 100],
        );
        assert!(matches!(error, Err(Error::FrameTooLarge { .. })));
        assert_eq!(out, vec![1, 2, 3]);
        // Zeros compress far below the limit: refused all the same, since
        // the receiver holds the body decompressed.
        let compressing = Limits {
            compress_above: 1,
            max_frame: 50,
        };
        let error = append_encoded(
            &mut out,
            Kind::Event,
            EventId::of("x"),
            0,
            compressing,
            &vec![0u8; 100],
        );
        assert!(matches!(
            error,
            Err(Error::FrameTooLarge {
                bytes: 119,
                max: 50,
                ..
            })
        ));
        assert_eq!(out, vec![1, 2, 3]);
    }
}
