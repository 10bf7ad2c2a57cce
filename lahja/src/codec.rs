//! The one place that knows the body encoding (bincode 2, standard config:
//! little-endian, variable-length integers). Swapping the format is a
//! change to this file only.

use crate::{Error, Result};

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
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Error::Codec(e.to_string()))?;
    if used != body.len() {
        return Err(Error::Codec(format!(
            "{} trailing bytes after the body",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        number: u64,
        text: String,
        bytes: Vec<u8>,
    }

    #[test]
    fn round_trips_and_rejects_trailing_or_truncated_bytes() {
        let sample = Sample {
            number: 300,
            text: "héllo".into(),
            bytes: vec![1, 2, 3],
        };
        let mut body = Vec::new();
        encode_into(&sample, &mut body).unwrap();
        assert_eq!(decode::<Sample>(&body).unwrap(), sample);

        let mut longer = body.clone();
        longer.push(0);
        assert!(matches!(decode::<Sample>(&longer), Err(Error::Codec(_))));
        assert!(matches!(
            decode::<Sample>(&body[..body.len() - 1]),
            Err(Error::Codec(_))
        ));
    }
}
