//! The wire: how frames look on a byte stream (see `docs/PROTOCOL.md`).
//!
//! It knows nothing above it: no endpoints, peers or sockets. The body
//! encoding itself is [`codec`](crate::codec), which sits below this so
//! that the registry can fingerprint formats with it too.

mod frame;
mod hello;
pub(crate) mod scratch;

pub(crate) use frame::{
    Frame, FrameBuffer, Kind, Limits, Violation, append_encoded, append_frame, body, body_len,
};
pub(crate) use frame::{HEADER_BYTES, LEN_BYTES};
pub(crate) use frame::{append_uncompressed, compress_from, released, shared_stand_in};
pub(crate) use hello::{Hello, Reject, append_hello, parse_hello};
pub(crate) use hello::{append_observe, parse_observe};
