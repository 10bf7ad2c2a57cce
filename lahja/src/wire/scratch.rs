//! A per-thread buffer to encode frames into, so that sending a frame
//! does not allocate and grow a fresh `Vec` each time.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
}

/// Above this, the buffer is given back after use rather than kept.
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
            if buffer.capacity() > KEEP_AT_MOST {
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
