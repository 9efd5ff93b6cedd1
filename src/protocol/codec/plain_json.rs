//! The plain JSON objects the protocol's peers write — flat, with strings that hold no escape
//! and non-negative integers — read in place, without building a JSON value. Anything else is
//! declined (`None`), and the caller parses it in full with `serde_json`; where this reader
//! gives an answer, the full parse gives the same one.

use super::json_string::first_special;

/// A member's value: a string with no escape in it, or a non-negative integer that fits a
/// `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlainValue<'a> {
    Str(&'a str),
    Int(u64),
}

/// Calls `member` with each key and value of the object that is the whole of `text`, in
/// order; `None` if `text` is not such a plain object or `member` returns `None`.
pub(super) fn for_each_member<'a>(
    text: &'a str,
    mut member: impl FnMut(&'a str, PlainValue<'a>) -> Option<()>,
) -> Option<()> {
    let mut json = Cursor {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    json.expect(b'{')?;
    if json.peek_byte()? == b'}' {
        json.at += 1;
    } else {
        loop {
            let key = json.string()?;
            json.expect(b':')?;
            member(key, json.value()?)?;
            match json.next_byte()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    json.next_byte().is_none().then_some(())
}

/// `digits` read as a non-negative JSON integer: ASCII digits, no leading zero (JSON forbids
/// one), at most `u64::MAX` (serde_json reads anything larger as a float); `None` otherwise.
pub(super) fn json_uint(digits: &[u8]) -> Option<u64> {
    let (&first, rest) = digits.split_first()?;
    if first == b'0' && !rest.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next byte that is not JSON whitespace, left in place.
    fn peek_byte(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// The next byte that is not JSON whitespace, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek_byte()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_byte()? == byte).then_some(())
    }

    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let len = first_special(&self.bytes[start..])?;
        // An escape or a control character: not plain.
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..start + len)
    }

    fn value(&mut self) -> Option<PlainValue<'a>> {
        let first = self.peek_byte()?;
        if first == b'"' {
            return self.string().map(PlainValue::Str);
        }
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let n = json_uint(&self.bytes[start..self.at])?;
        // A fraction or an exponent makes a float.
        if matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(PlainValue::Int(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The members as the reader gives them, or `None`.
    fn members(text: &str) -> Option<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for_each_member(text, |key, value| {
            let value = match value {
                PlainValue::Str(s) => Value::from(s),
                PlainValue::Int(n) => Value::from(n),
            };
            out.push((key.to_owned(), value));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn plain_objects_read_as_serde_json_reads_them() {
        for text in [
            r#"{"action": "search", "value": "morpheus"}"#,
            "{}",
            " { } ",
            "\t{\"a\":0,\"b\" : 18446744073709551615 ,\"c\":\"caf\u{e9} \u{1f430}\u{7f}\"}\r\n",
        ] {
            let plain = members(text).expect(text);
            let Value::Object(full) = serde_json::from_str::<Value>(text).unwrap() else {
                panic!("{text}");
            };
            let full: Vec<(String, Value)> = full.into_iter().collect();
            assert_eq!(plain, full, "{text}");
        }
    }

    #[test]
    fn anything_else_is_declined() {
        for text in [
            r#"{"a": "b\"c"}"#,
            r#"{"a\n": "b"}"#,
            "{\"a\": \"b\tc\"}",
            r#"{"a": 1.0}"#,
            r#"{"a": 1e3}"#,
            r#"{"a": -1}"#,
            r#"{"a": 01}"#,
            r#"{"a": 18446744073709551616}"#,
            r#"{"a": null}"#,
            r#"{"a": true}"#,
            r#"{"a": []}"#,
            r#"{"a": {}}"#,
            r#"{"a": "b",}"#,
            r#"{"a": "b"} x"#,
            r#"{"a" "b"}"#,
            r#"{"a": "b" "c": "d"}"#,
            r#"["a"]"#,
            r#""a""#,
            "",
            "{",
            r#"{"a"#,
        ] {
            assert_eq!(members(text), None, "{text}");
        }
    }
}
