//! `text/json` content: the text encodings known by Python's names, and the JSON in them.

use serde_json::Value;

use super::FrameError;

#[derive(Clone, Copy)]
enum TextEncoding {
    Utf8,
    Ascii,
    Latin1,
}

/// Looks an encoding name up as Python's codec registry does for these three codecs: case and
/// the separators `-`, `_`, ` ` and `.` do not matter, and the common aliases are known.
fn text_encoding(name: &str) -> Option<TextEncoding> {
    // The name every client of the protocol sends, without the normalising copy.
    if name == "utf-8" {
        return Some(TextEncoding::Utf8);
    }
    let normalized: String = name
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    match normalized.as_str() {
        "utf8" | "u8" | "utf" | "cp65001" | "utf8ucs2" | "utf8ucs4" => Some(TextEncoding::Utf8),
        "ascii" | "usascii" | "646" | "us" | "ansix341968" | "ansix341986" | "cp367"
        | "csascii" | "ibm367" | "iso646us" | "iso646irv1991" | "isoir6" => {
            Some(TextEncoding::Ascii)
        }
        "latin1" | "latin" | "l1" | "iso88591" | "iso8859" | "iso885911987" | "8859" | "cp819"
        | "isoir100" | "csisolatin1" | "ibm819" => Some(TextEncoding::Latin1),
        _ => None,
    }
}

pub(super) fn decode_json_content(encoding: &str, content: &[u8]) -> Result<Value, FrameError> {
    let not_json = |detail: String| FrameError::ContentNotJson { detail };
    let decoded;
    let text = match text_encoding(encoding) {
        None => {
            return Err(FrameError::UnsupportedEncoding {
                encoding: encoding.to_owned(),
            })
        }
        Some(TextEncoding::Utf8) => std::str::from_utf8(content).map_err(|err| {
            not_json(format!(
                "not UTF-8 (invalid byte after {} bytes)",
                err.valid_up_to()
            ))
        })?,
        Some(TextEncoding::Ascii) => {
            if let Some(pos) = content.iter().position(|b| !b.is_ascii()) {
                return Err(not_json(format!("not ASCII (byte {pos} is over 0x7f)")));
            }
            std::str::from_utf8(content).map_err(|err| not_json(err.to_string()))?
        }
        Some(TextEncoding::Latin1) => {
            decoded = content.iter().copied().map(char::from).collect::<String>();
            &decoded
        }
    };
    serde_json::from_str(text).map_err(|err| not_json(err.to_string()))
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
