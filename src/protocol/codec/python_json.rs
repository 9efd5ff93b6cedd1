//! JSON values written as Python writes them: `json.dumps` for the wire, `repr()` and
//! `str()` for the reference's messages.

use std::fmt::Write as _;

use serde_json::Value;

use super::json_string::first_special;

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` writes it: separators `", "`
/// and `": "`, no newlines, non-ASCII characters raw, strings escaped exactly as Python does
/// (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters below U+0020 as
/// `\u00xx` with lowercase hex).
///
/// Integers are written in full. Floats follow Python's `repr`: the shortest digits that read
/// back to the same float, with `.0` added to whole numbers and exponent form (`1e+16`,
/// `1e-05`) below 1e-4 and from 1e16 on, so `1.0` stays `1.0` and `1e100` is `1e+100`. The one
/// known difference: an integer beyond 64 bits, which `serde_json` parses as a float, is
/// written as a float where Python writes the integer.
pub fn to_python_json(value: &Value) -> String {
    let mut out = String::new();
    write_py_json(&mut out, value);
    out
}

pub(super) fn write_py_json(out: &mut String, value: &Value) {
    write_py(out, value, Style::Json);
}

/// How Python shows a value: as `json.dumps` writes it, or as `repr()` shows what
/// `json.loads` makes of it. They differ in the constants' names and in how strings are
/// quoted and escaped; numbers, lists and dicts are written alike.
#[derive(Clone, Copy)]
enum Style {
    Json,
    Repr,
}

fn write_py(out: &mut String, value: &Value, style: Style) {
    let (null, yes, no, string): (_, _, _, fn(&mut String, &str)) = match style {
        Style::Json => ("null", "true", "false", write_py_string),
        Style::Repr => ("None", "True", "False", write_py_str_repr),
    };
    match value {
        Value::Null => out.push_str(null),
        Value::Bool(true) => out.push_str(yes),
        Value::Bool(false) => out.push_str(no),
        Value::Number(n) => write_py_number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(out, item, style);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, key);
                out.push_str(": ");
                write_py(out, item, style);
            }
            out.push('}');
        }
    }
}

/// Where the codec writes JSON text: a `String`, or the bytes of a frame being encoded.
pub(super) trait TextOut {
    /// Appends `s`.
    fn put(&mut self, s: &str);
    /// Appends `bytes`, which are ASCII.
    fn put_ascii(&mut self, bytes: &[u8]);
}

impl TextOut for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }

    fn put_ascii(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.is_ascii());
        self.extend(bytes.iter().map(|&b| char::from(b)));
    }
}

impl TextOut for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    #[inline]
    fn put_ascii(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

pub(super) fn write_py_string<O: TextOut>(out: &mut O, s: &str) {
    out.put("\"");
    escape_runs(s, |piece| out.put(piece));
    out.put("\"");
}

/// `n` in decimal digits, as `{n}` formats it.
pub(super) fn write_decimal<O: TextOut>(out: &mut O, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_ascii(&digits[at..]);
}

/// The length in bytes of what [`write_py_string`] writes for `s`.
pub(super) fn py_string_len(s: &str) -> usize {
    let Some(first) = first_special(s.as_bytes()) else {
        return s.len() + 2;
    };
    let escapes: usize = s.as_bytes()[first..]
        .iter()
        .map(|&byte| match escape(byte) {
            Some(Escape::Short(_)) => 1,
            Some(Escape::Unicode) => 5,
            None => 0,
        })
        .sum();
    s.len() + escapes + 2
}

/// How `json.dumps` escapes a character inside a string.
enum Escape {
    /// A two-character escape such as `\n`.
    Short(&'static str),
    /// `\u00xx`, lowercase hex.
    Unicode,
}

/// The escape of an ASCII byte, `None` for one written as it is.
fn escape(byte: u8) -> Option<Escape> {
    let short = match byte {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        0x08 => "\\b",
        0x0c => "\\f",
        0x00..=0x1f => return Some(Escape::Unicode),
        _ => return None,
    };
    Some(Escape::Short(short))
}

/// Gives `s` to `push` as Python escapes it, in pieces: every character to escape is ASCII,
/// a byte of its own in UTF-8, and the runs between them go whole.
fn escape_runs(s: &str, mut push: impl FnMut(&str)) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Most strings need no escape.
    let Some(first) = first_special(s.as_bytes()) else {
        push(s);
        return;
    };
    let mut run = 0;
    for (at, byte) in s.bytes().enumerate().skip(first) {
        let Some(escaped) = escape(byte) else {
            continue;
        };
        push(&s[run..at]);
        match escaped {
            Escape::Short(short) => push(short),
            Escape::Unicode => {
                let code = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ];
                // Only ASCII in it.
                push(std::str::from_utf8(&code).unwrap_or_default());
            }
        }
        run = at + 1;
    }
    push(&s[run..]);
}

fn write_py_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_py_float(out, f);
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Python's `float.__repr__`. Rust's `{:e}` gives the shortest digits that read back to `f`,
/// but breaks a tie between two such digit strings upwards where Python takes the one nearer
/// the exact value, to even on a tie; the correctly rounded string of the same length is that
/// one.
fn write_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    let shortest = format!("{f:e}");
    let significant = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let nearest = format!("{f:.*e}", significant.saturating_sub(1));
    let sci = if nearest.parse::<f64>() == Ok(f) {
        nearest
    } else {
        shortest
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decimal_point = exponent + 1;
    if negative {
        out.push('-');
    }
    if decimal_point <= -4 || decimal_point > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    } else if decimal_point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat(decimal_point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = decimal_point.unsigned_abs() as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// `value` as Python's `repr()` shows the object `json.loads` makes of it: `None`, `True`,
/// `False`, numbers as [`to_python_json`] writes them, strings quoted and escaped as Python
/// does, lists `[a, b]` and dicts `{'k': v}`. Which characters count as printable (and so are
/// shown raw) is approximated: controls, C1 controls, separators other than the space, the
/// common format characters, surrogates and private use are escaped; unassigned code points
/// are shown raw where Python would escape them.
pub fn to_python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_py_repr(&mut out, value);
    out
}

/// `value` as Python's `str()` shows the object `json.loads` makes of it: strings as they
/// are, everything else as [`to_python_repr`]. This is how the reference's f-strings show
/// values, as in `No match for '<value>'.`.
pub fn to_python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => to_python_repr(other),
    }
}

fn write_py_repr(out: &mut String, value: &Value) {
    write_py(out, value, Style::Repr);
}

fn write_py_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_py_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02x}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
}

fn is_py_printable(c: char) -> bool {
    !matches!(
        u32::from(c),
        0x00..=0x1f
            | 0x7f..=0xa0
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xfffe..=0xffff
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..
    )
}
