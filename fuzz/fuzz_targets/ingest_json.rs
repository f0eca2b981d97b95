//! The ingestion parsers (`IdentifyInput`, `TrackInput`, `TraitChanges`, `ConsentInput`, and the
//! privacy center's `ConsentChoice`) on
//! arbitrary JSON: they never panic, an error's field is a JSON pointer under the message's prefix
//! (or a bare parameter name), and an error never repeats a value of the input, because values are
//! personal data (input.rs: "messages name the rule that was broken, never the value").
//!
//! Keys may be repeated (an unknown field is named in the pointer), and a value may happen to
//! equal a piece of a fixed message (`"object"`, `"userId"`). So a value found in the message is
//! replaced by its ROT13/ROT5 twin — same length, same character classes — and the input parsed
//! again: an echo follows the value into the new message, a coincidence does not.

#![no_main]

use custodia_engine::{
    ConsentChoice, ConsentInput, EngineError, IdentifyInput, TrackInput, TraitChanges,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Values shorter than this are not looked for (they occur in fixed text by chance).
const MIN_ECHO_LEN: usize = 6;
/// The prefix of a message inside a batch.
const BATCH_PREFIX: &str = "/batch/7";

type Parser = fn(&Value) -> Result<(), EngineError>;

/// Each parser, with the pointer prefix its error fields must start with.
const PARSERS: [(&str, &str, Parser); 7] = [
    ("identify", "", |v| {
        IdentifyInput::from_json(v, "").map(drop)
    }),
    ("identify in a batch", BATCH_PREFIX, |v| {
        IdentifyInput::from_json(v, BATCH_PREFIX).map(drop)
    }),
    ("track", "", |v| TrackInput::from_json(v, "").map(drop)),
    ("track in a batch", BATCH_PREFIX, |v| {
        TrackInput::from_json(v, BATCH_PREFIX).map(drop)
    }),
    ("trait changes", "", |v| {
        TraitChanges::from_json(v).map(drop)
    }),
    ("consent", "", |v| ConsentInput::from_json(v).map(drop)),
    ("privacy center consent", "", |v| {
        ConsentChoice::from_json(v).map(drop)
    }),
];

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut strings = Vec::new();
    let mut keys = Vec::new();
    collect(&value, &mut strings, &mut keys);
    for (name, prefix, parse) in PARSERS {
        let Err(error) = parse(&value) else {
            continue;
        };
        check_field(name, prefix, &error);
        let shown = error.to_string();
        for text in &strings {
            let twin = twin(text);
            if text.len() < MIN_ECHO_LEN || twin == **text || !shown.contains(text.as_str()) {
                continue;
            }
            if keys.iter().any(|key| key.contains(&twin)) {
                continue;
            }
            let changed = replace_strings(&value, text, &twin);
            if let Err(again) = parse(&changed) {
                assert!(
                    !again.to_string().contains(&twin),
                    "{name}: the error {shown:?} repeats the value {text:?}"
                );
            }
        }
    }
});

fn check_field(name: &str, prefix: &str, error: &EngineError) {
    let Some(field) = error.field() else {
        return;
    };
    let pointer = if prefix.is_empty() {
        field.starts_with('/')
    } else {
        field == prefix || field.starts_with(&format!("{prefix}/"))
    };
    let parameter = !field.is_empty() && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    assert!(
        pointer || parameter,
        "{name}: the field {field:?} is neither a pointer under {prefix:?} nor a parameter name"
    );
}

/// Every string value and every key in `value`.
fn collect<'a>(value: &'a Value, strings: &mut Vec<&'a String>, keys: &mut Vec<&'a String>) {
    match value {
        Value::String(text) => strings.push(text),
        Value::Array(items) => items.iter().for_each(|v| collect(v, strings, keys)),
        Value::Object(map) => {
            for (key, v) in map {
                keys.push(key);
                collect(v, strings, keys);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `value` with every string value equal to `from` replaced by `to` (keys unchanged).
fn replace_strings(value: &Value, from: &str, to: &str) -> Value {
    match value {
        Value::String(text) if text == from => Value::String(to.to_owned()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace_strings(v, from, to)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| (key.clone(), replace_strings(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// ROT13 of the ASCII letters and ROT5 of the digits: the same length and character classes.
fn twin(text: &str) -> String {
    let rotate = |c: char, first: char, n: u32| {
        char::from_u32(first as u32 + (c as u32 - first as u32 + n / 2) % n).unwrap_or(c)
    };
    text.chars()
        .map(|c| match c {
            'a'..='z' => rotate(c, 'a', 26),
            'A'..='Z' => rotate(c, 'A', 26),
            '0'..='9' => rotate(c, '0', 10),
            _ => c,
        })
        .collect()
}
