//! The one place that knows the body encoding: bincode 2's standard format
//! (little-endian, variable-length integers). Swapping the format is a
//! change to this file only.
//!
//! Encoding uses bincode itself. Decoding uses the [`Reader`] of `reader.rs`, a strict serde
//! deserializer for the same format, because bincode 2 allocates whatever a
//! length prefix claims (`vec![0; len]`) before it reads a byte of it,
//! unless given a limit fixed at compile time: a 33-byte frame claiming a
//! 2^62-byte string aborted the process. The reader never allocates more
//! than the bytes actually present: strings and byte strings are borrowed
//! from the body (the visitor copies exactly what is there), sequences and
//! maps tell serde a size hint no larger than the bytes left. It also
//! bounds nesting depth (no stack overflow from a deeply nested body) and
//! the number of zero-byte elements (no endless loop over a `Vec<()>`
//! claiming 2^62 elements). The property tests in `tests.rs` check that it reads
//! exactly what bincode writes.

mod reader;
#[cfg(test)]
mod tests;

use crate::{Error, Result};
use reader::Reader;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes `value` into `out` (appending).
pub(crate) fn encode_into<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(drop)
        .map_err(|e| Error::Codec(e.to_string()))
}

/// Decodes a whole body; trailing bytes are an error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    let mut reader = Reader::new(body);
    let value = T::deserialize(&mut reader).map_err(|e| Error::Codec(e.to_string()))?;
    if !reader.is_empty() {
        return Err(Error::Codec(format!(
            "{} trailing bytes after the body",
            reader.remaining()
        )));
    }
    Ok(value)
}
