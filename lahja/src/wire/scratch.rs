//! A per-thread buffer to encode frames into, so that sending a frame
//! does not allocate and grow a fresh `Vec` each time.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// A buffer above this is given back after the first use that needed
/// less: a run of large events reuses one buffer (growing a fresh one
/// for each cost a dozen reallocations and page faults per event), and
/// once they stop the memory goes back.
const KEEP_AT_MOST: usize = 1 << 20;

/// Runs `encode` into this thread's scratch buffer, then `use_bytes` on
/// the result. Nothing here awaits, so the buffer cannot be shared.
pub(crate) fn with_encoded<T, E>(
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    use_bytes: impl FnOnce(&[u8]) -> T,
) -> Result<T, E> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let result = encode(&mut buffer).map(|()| use_bytes(&buffer));
            if buffer.capacity() > KEEP_AT_MOST && buffer.len() <= KEEP_AT_MOST {
                *buffer = Vec::with_capacity(4096);
            }
            result
        }
        // Only if a caller nested two uses: fall back to a fresh buffer.
        Err(_) => {
            let mut buffer = Vec::new();
            encode(&mut buffer).map(|()| use_bytes(&buffer))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_at(len: usize) -> usize {
        let fill = |out: &mut Vec<u8>| {
            out.resize(len, 7);
            Ok::<(), ()>(())
        };
        with_encoded(fill, |bytes| bytes.as_ptr() as usize).unwrap()
    }

    fn capacity() -> usize {
        SCRATCH.with(|cell| cell.borrow().capacity())
    }

    /// Large frames in a row reuse one buffer; the first smaller one
    /// gives the memory back.
    #[test]
    fn a_run_of_large_frames_reuses_the_buffer_then_gives_it_back() {
        let big = 3 * KEEP_AT_MOST;
        let first = encoded_at(big);
        assert_eq!(encoded_at(big), first, "the second large frame reallocated");
        assert!(capacity() >= big);
        encoded_at(100);
        assert!(capacity() <= KEEP_AT_MOST, "kept {} bytes", capacity());
    }
}
