//! The record of PyMOTW's `socket_binary_client.py` and `socket_binary_server.py`: Python's
//! `struct.Struct('I 2s f')`, an unsigned int, two bytes and a float, packed in the
//! machine's native byte order and alignment (the format has no `<`, `>` or `=` prefix):
//! 4 bytes of `I`, 2 of `2s`, 2 bytes of padding so that the float starts on a multiple of
//! 4, 4 bytes of `f`: 12 bytes. On x86-64, `(1, b'ab', 2.7)` packs to
//! `0100000061620000cdcc2c40`.
#![allow(dead_code)]

/// `struct.Struct('I 2s f').size` on the usual targets (4-byte `unsigned int` and `float`).
pub const SIZE: usize = 12;

/// The seed's values.
pub const VALUES: Record = Record {
    number: 1,
    text: *b"ab",
    float: 2.7,
};

/// What `'I 2s f'` holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// `I`: a C `unsigned int`.
    pub number: u32,
    /// `2s`: two bytes.
    pub text: [u8; 2],
    /// `f`: a C `float`, held as Python holds it, a double: `pack` rounds it to a float,
    /// `unpack` widens the float back (so 2.7 comes back as 2.700000047683716).
    pub float: f64,
}

impl Record {
    /// `packer.pack(*values)`: native byte order, the padding bytes zero as Python writes
    /// them.
    pub fn pack(&self) -> [u8; SIZE] {
        let mut out = [0u8; SIZE];
        out[0..4].copy_from_slice(&self.number.to_ne_bytes());
        out[4..6].copy_from_slice(&self.text);
        out[8..12].copy_from_slice(&(self.float as f32).to_ne_bytes());
        out
    }

    /// `unpacker.unpack(data)`: fails, as Python's `struct.error` does, unless `data` is
    /// exactly [`SIZE`] bytes. The padding bytes are ignored.
    pub fn unpack(data: &[u8]) -> Result<Record, String> {
        let data: &[u8; SIZE] = data
            .try_into()
            .map_err(|_| format!("unpack requires a buffer of {SIZE} bytes"))?;
        Ok(Record {
            number: u32::from_ne_bytes([data[0], data[1], data[2], data[3]]),
            text: [data[4], data[5]],
            float: f64::from(f32::from_ne_bytes([data[8], data[9], data[10], data[11]])),
        })
    }

    /// The tuple as Python prints it: `(1, b'ab', 2.7)`, or `(1, b'ab', 2.700000047683716)`
    /// once unpacked.
    pub fn repr(&self) -> String {
        format!(
            "({}, {}, {})",
            self.number,
            crate::pyfmt::bytes(&self.text),
            crate::pyfmt::float(self.float)
        )
    }
}
