//! The bytes a JSON string cannot hold as they are — `"`, `\` and the control characters
//! below U+0020 — found eight at a time. Reading a string, the first one ends its plain run;
//! writing one, none at all means nothing to escape (most strings).

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = ONES * 0x80;

/// Whether `byte` cannot stand as it is inside a JSON string.
fn is_special(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first byte of `bytes` that [`is_special`], or `None`.
#[inline]
pub(super) fn first_special(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let marks = special_marks(u64::from_le_bytes(word));
        if marks != 0 {
            // Byte i of the word is bits 8i..8i+8 (little-endian order, on every host).
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| is_special(b)).map(|i| at + i)
}

/// The high bit of each byte of `word` that is special. A byte is marked wrongly only above
/// (after) a rightly marked one — the subtractions borrow from a byte that was below their
/// bound — so the lowest mark is always right, and no mark means no special byte.
fn special_marks(word: u64) -> u64 {
    let below = |x: u64, bound: u8| x.wrapping_sub(ONES * u64::from(bound)) & !x & HIGH;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    below(word, 0x20) | below(quote, 1) | below(backslash, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_special_is_the_first_byte_to_escape() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&b| is_special(b));
        // Every byte value at every place of strings up to 19 bytes long, over a background
        // of plain bytes that sit next to the bounds (and multi-byte UTF-8 ones).
        for len in 0..20 {
            for background in [b'a', 0x20, b'"' + 1, b'"' - 1, b'\\' + 1, 0x7f, 0xf0, 0xff] {
                let plain = vec![background; len];
                assert_eq!(first_special(&plain), naive(&plain));
                for at in 0..len {
                    for byte in 0..=u8::MAX {
                        let mut bytes = plain.clone();
                        bytes[at] = byte;
                        assert_eq!(first_special(&bytes), naive(&bytes), "{bytes:?}");
                        // A second special byte after the first changes nothing.
                        if at + 1 < len {
                            bytes[len - 1] = b'"';
                            assert_eq!(first_special(&bytes), naive(&bytes), "{bytes:?}");
                        }
                    }
                }
            }
        }
    }
}
