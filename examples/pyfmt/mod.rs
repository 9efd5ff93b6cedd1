//! The formats the seed programs print with Python, so that a rawloop example prints what its
//! seed prints: `time.ctime()`, an address tuple, `repr()` of bytes and of a float, and
//! `binascii.hexlify`.
#![allow(dead_code)]

use std::net::SocketAddr;

use jiff::Zoned;

/// Python's `time.ctime()`: the local time now, as `Thu Jun  4 19:56:18 2020`.
///
/// Local time comes from jiff, which reads the `TZ` environment variable or the system's
/// `/etc/localtime` the way the C library's localtime(3) does, in safe Rust (where neither
/// names a zone jiff can read, it falls back to UTC and logs why).
pub fn ctime() -> String {
    ctime_of(&Zoned::now())
}

/// `time.ctime()` of a given moment in its time zone: C's asctime(3) format without the
/// newline, the day of the month padded with a space (`Jun  4`), always 24 characters for
/// the years 1000 to 9999.
pub fn ctime_of(time: &Zoned) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[time.weekday().to_monday_zero_offset() as usize],
        MONTHS[(time.month() - 1) as usize],
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.year()
    )
}

/// The length of `[<ctime>] `, the prefix of the timestamp servers' replies.
pub const STAMP_PREFIX_LEN: usize = 27;

/// An address as Python prints the tuple it gets from `accept()` or `recvfrom()`:
/// `('127.0.0.1', 51034)`, or `('::1', 51034, 0, 0)` for IPv6 (flow info and scope id).
pub fn addr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("('{}', {})", a.ip(), a.port()),
        SocketAddr::V6(a) => format!(
            "('{}', {}, {}, {})",
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ),
    }
}

/// `repr()` of a bytes object: `b'Hello, world'`, with `\n`, `\\`, `\'` and `\xNN` escapes.
pub fn bytes(data: &[u8]) -> String {
    // Python quotes with " when the bytes hold a ' and no ".
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(data.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

/// `repr()` of a float: the shortest digits that read back as the same value, as Rust's
/// `{:?}` writes them, with Python's spelling of the exponent (`1e+16`, `1e-05`) and of the
/// special values (`nan`).
pub fn float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust and Python switch to an exponent at the same points (below 1e-4, from 1e16).
    let debug = format!("{x:?}");
    match debug.split_once('e') {
        None => debug,
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exp),
            };
            let mantissa = mantissa.strip_suffix(".0").unwrap_or(mantissa);
            format!("{mantissa}e{sign}{digits:0>2}")
        }
    }
}

/// `binascii.hexlify(data)` as Python prints it: `b'0100000061620000cdcc2c40'`.
pub fn hexlify(data: &[u8]) -> String {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    format!("b'{hex}'")
}
