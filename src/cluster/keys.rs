//! The layout of the datastore in etcd, under the cluster's prefix `/srvctl/<cluster>/`:
//!
//! - `doc/head`: put by every commit, `{"by": HOST, "at": RFC3339}`; its mod_revision is the
//!   revision of the document.
//! - `doc/<section>/<key>`: one key per record of `resellers`, `users` and `containers`
//!   (set-aside records included), its value the record's JSON as the document holds it.
//! - `doc/top/<field>`: every other top-level field (`schema_version`, `operator`, unknown
//!   ones).
//!
//! Record keys and field names are percent-encoded (every byte but `A-Z a-z 0-9 . _ -`), so a
//! hostile key (with `/`, a newline or `%`) stays one key inside its section. A document is
//! [`split`] into keys and [`join`]ed back into bytes that [`crate::model::State::load`]
//! reads; `join(split(doc))` is what every host writes as its cache.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The key (after the cluster's prefix) that every commit puts.
pub const HEAD: &str = "doc/head";

/// The prefix (after the cluster's prefix) of every key of the document.
pub const DOC: &str = "doc/";

/// The sections whose records are keys of their own.
const SECTIONS: [&str; 3] = ["resellers", "users", "containers"];

/// Where the other top-level fields go.
const TOP: &str = "top";

/// The top-level fields that the document writes first, in this order.
const FIRST: [&str; 1] = ["schema_version"];

/// The fields the document writes after the sections, before unknown ones.
const AFTER_SECTIONS: [&str; 1] = ["operator"];

/// The document as etcd holds it: key (after the cluster's prefix) → value bytes.
pub type Keys = BTreeMap<String, Vec<u8>>;

/// A key or value that does not fit the layout.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The document is not a JSON object of the expected shape.
    #[error("the datastore document cannot be split into etcd keys: {0}")]
    Document(String),
    /// A key that is not part of the layout.
    #[error("etcd key {key:?} is not part of the datastore layout: {why}")]
    Key {
        /// The key, after the cluster's prefix.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// Split document bytes (as [`crate::model::State::to_json`] writes them) into keys. The
/// head is not among them.
pub fn split(document: &[u8]) -> Result<Keys, KeyError> {
    let top: Map<String, Value> =
        serde_json::from_slice(document).map_err(|e| KeyError::Document(e.to_string()))?;
    let mut keys = Keys::new();
    for (field, value) in &top {
        if SECTIONS.contains(&field.as_str()) {
            let Value::Object(records) = value else {
                return Err(KeyError::Document(format!("{field} is not an object")));
            };
            for (key, record) in records {
                keys.insert(record_key(field, key), compact(record));
            }
        } else {
            keys.insert(record_key(TOP, field), compact(value));
        }
    }
    Ok(keys)
}

/// Join keys (after the cluster's prefix; the head and keys outside `doc/` are skipped) back
/// into document bytes: `schema_version`, the three sections (each present, records in key
/// order), `operator`, then every other top-level field in key order.
pub fn join<'k>(keys: impl IntoIterator<Item = (&'k str, &'k [u8])>) -> Result<Vec<u8>, KeyError> {
    let mut sections: BTreeMap<&str, Map<String, Value>> =
        SECTIONS.iter().map(|s| (*s, Map::new())).collect();
    let mut top: BTreeMap<String, Value> = BTreeMap::new();
    for (key, bytes) in keys {
        let Some(rest) = key.strip_prefix(DOC).filter(|_| key != HEAD) else {
            continue;
        };
        let bad = |why: &str| KeyError::Key {
            key: key.to_owned(),
            why: why.to_owned(),
        };
        let (section, encoded) = rest.split_once('/').ok_or_else(|| bad("no section"))?;
        let name = decode(encoded).ok_or_else(|| bad("not percent-encoded"))?;
        let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        match sections.get_mut(section) {
            Some(records) => {
                records.insert(name, value);
            }
            None if section == TOP => {
                top.insert(name, value);
            }
            None => return Err(bad("unknown section")),
        }
    }
    let mut doc = Map::new();
    for field in FIRST {
        if let Some(v) = top.remove(field) {
            doc.insert(field.to_owned(), v);
        }
    }
    for section in SECTIONS {
        let records = sections.remove(section).unwrap_or_default();
        doc.insert(section.to_owned(), Value::Object(records));
    }
    for field in AFTER_SECTIONS {
        if let Some(v) = top.remove(field) {
            doc.insert(field.to_owned(), v);
        }
    }
    doc.extend(top);
    let mut out = serde_json::to_vec_pretty(&doc).expect("a JSON value serialises");
    out.push(b'\n');
    Ok(out)
}

/// The key of one record (or top-level field) of a section.
fn record_key(section: &str, key: &str) -> String {
    format!("{DOC}{section}/{}", encode(key))
}

fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serialises")
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Percent-encode every byte but `A-Z a-z 0-9 . _ -`.
pub fn encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode`]; `None` for anything `encode` cannot have written.
fn decode(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if is_plain(byte) || hex.bytes().any(|h| h.is_ascii_lowercase()) {
                return None;
            }
            bytes.push(byte);
            rest = &tail[2..];
        } else if is_plain(b) {
            bytes.push(b);
            rest = tail;
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;

    /// Set-aside records (a hostile key with a slash and a newline, a record of a missing
    /// user), an unknown top-level field and an operator record.
    const DOCUMENT: &str = r#"{
      "schema_version": 1,
      "resellers": {},
      "users": {
        "bob": {"reseller_id": 0, "index": 1, "uid": 20001, "gid": 20001, "created": "t", "created_by": "root"}
      },
      "containers": {
        "web.example.com": {"user": "bob", "host": "h1.test", "ip": "10.16.1.2", "created": "t", "created_by": "root"},
        "../../doc/head\nx": {"user": "bob", "host": "h1.test", "ip": "10.16.1.3", "created": "t", "created_by": "root"},
        "a%2Fb/c": {"user": "bob", "host": "h1.test", "ip": "10.16.1.4", "created": "t", "created_by": "root"},
        "ghost.example.com": {"user": "nobody-here", "host": "h1.test", "ip": "10.16.1.5", "created": "t", "created_by": "root"}
      },
      "future": {"x": [1, 2.5, "y"]},
      "zz_later": "kept"
    }"#;

    fn joined(keys: &Keys) -> Vec<u8> {
        join(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap()
    }

    #[test]
    fn split_join_load_gives_the_same_document() {
        let state = State::from_json(DOCUMENT.as_bytes()).unwrap();
        assert_eq!(state.set_aside.len(), 3, "{:?}", state.set_aside);
        let bytes = state.to_json();
        let keys = split(&bytes).unwrap();
        let back = joined(&keys);
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(&bytes)
        );
        let loaded = State::from_json(&back).unwrap();
        assert_eq!(loaded.to_json(), bytes);
        assert_eq!(split(&back).unwrap(), keys);
    }

    #[test]
    fn hostile_record_keys_stay_inside_their_section() {
        let keys = split(
            State::from_json(DOCUMENT.as_bytes())
                .unwrap()
                .to_json()
                .as_slice(),
        )
        .unwrap();
        let names: Vec<&str> = keys.keys().map(String::as_str).collect();
        for key in &names {
            let rest = key.strip_prefix(DOC).unwrap();
            let (section, name) = rest.split_once('/').unwrap();
            assert!(SECTIONS.contains(&section) || section == TOP, "{key}");
            assert!(name.bytes().all(|b| is_plain(b) || b == b'%'), "{key:?}");
        }
        assert!(names.contains(&"doc/containers/..%2F..%2Fdoc%2Fhead%0Ax"));
        assert!(names.contains(&"doc/containers/a%252Fb%2Fc"));
        assert!(!names.contains(&HEAD));
    }

    #[test]
    fn unknown_fields_come_back_in_a_stable_order() {
        let doc = r#"{"zeta": 1, "schema_version": 1, "alpha": 2, "users": {}}"#;
        let state = State::from_json(doc.as_bytes()).unwrap();
        let once = joined(&split(&state.to_json()).unwrap());
        let twice = joined(&split(&State::from_json(&once).unwrap().to_json()).unwrap());
        assert_eq!(once, twice);
        let text = String::from_utf8(once).unwrap();
        assert!(text.find("\"alpha\"") < text.find("\"zeta\""), "{text}");
    }

    #[test]
    fn keys_outside_the_layout_are_refused_and_the_head_is_skipped() {
        let ok = join([(HEAD, b"{}".as_slice()), ("live/h1", b"[]".as_slice())]).unwrap();
        assert!(
            State::from_json(&ok).is_err(),
            "no schema_version: not a document"
        );
        for (key, why) in [
            ("doc/other/x", "unknown section"),
            ("doc/users", "no section"),
            ("doc/users/a%2f", "not percent-encoded"),
            ("doc/users/a b", "not percent-encoded"),
            ("doc/users/%41", "not percent-encoded"),
        ] {
            let e = join([(key, b"{}".as_slice())]).unwrap_err().to_string();
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["web.example.com", "a/b", "%", "x\ny", "ü", ""] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
    }
}
