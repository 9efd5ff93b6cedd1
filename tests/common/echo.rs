//! Echo payloads whose every byte is checked.

/// `len` pseudo-random bytes (xorshift64), a different stream for every `seed`: a lost,
/// repeated, reordered or crossed chunk shows as a mismatch.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Panics unless `got == want`, naming the first differing byte.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b);
    match at {
        Some(i) => panic!(
            "{what}: the echo differs at byte {i} ({} of {} bytes back)",
            got.len(),
            want.len()
        ),
        None => panic!(
            "{what}: {} bytes back, {} sent (the common part matches)",
            got.len(),
            want.len()
        ),
    }
}
