//! SSH public keys as the datastore keeps them: `"publickeys": [{"key", "fingerprint",
//! "added"}]` on an account (and on the operator's record).
//!
//! A key is accepted only as one line `TYPE BASE64 [COMMENT]` that the `ssh-key` parser
//! reads: no options (`command="…"`, `from=…`), no second line, no control characters, no
//! second key in the comment. What is stored, and what sshd is given, is the parser's own
//! re-encoding of the key, never the text as typed, so nothing can be injected into an
//! `authorized_keys` view. A stored record that does not pass the same checks (a hand edit,
//! a fingerprint that does not match) is set aside: never used, written back as found.
//! Stored keys are checked when their list is first looked at ([`KeyList`]).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ssh_key::public::KeyData;

/// The longest key text accepted (an RSA key of 16384 bits is under 3 KiB).
pub const MAX_KEY_TEXT: usize = 8 * 1024;

/// The longest comment accepted, in characters.
pub const MAX_COMMENT: usize = 255;

/// The fewest bits an RSA key may have.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing was given.
    #[error("the key is empty")]
    Empty,
    /// Far longer than any public key.
    #[error("the key text is longer than {MAX_KEY_TEXT} bytes")]
    TooLong,
    /// More than one line.
    #[error("give one key: the text has more than one line")]
    Lines,
    /// A control character (other than the one final newline).
    #[error("the key contains control characters")]
    Control,
    /// The text is a private key.
    #[error("that is a private key; give the public key (the .pub file)")]
    Private,
    /// `authorized_keys` options before the key.
    #[error(
        "options such as command=\"…\" or from=\"…\" are not allowed: give the key alone (TYPE BASE64 [COMMENT])"
    )]
    Options,
    /// The parser refused it.
    #[error("not an OpenSSH public key (TYPE BASE64 [COMMENT]): {0}")]
    Syntax(String),
    /// A type that is not accepted (DSA, unknown types).
    #[error(
        "key type {0} is not accepted (ssh-ed25519, ecdsa-sha2-*, ssh-rsa and their security-key forms are)"
    )]
    Algorithm(String),
    /// An RSA key that is too short.
    #[error("RSA keys need at least {MIN_RSA_BITS} bits; this one has {0}")]
    WeakRsa(usize),
    /// The comment holds another key.
    #[error("give one key: the comment holds another key")]
    TwoKeys,
    /// A comment too long to be one.
    #[error("the comment is longer than {MAX_COMMENT} characters")]
    LongComment,
}

/// A public key that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// The key as one canonical line: `TYPE BASE64[ COMMENT]`.
    pub line: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key type, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The comment (may be empty).
    pub comment: String,
}

/// Whether `word` is spelled like a key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …): a
/// comment word spelled so is taken for a second key.
pub fn looks_like_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-", "rsa-"]
        .iter()
        .any(|p| word.starts_with(p))
}

/// Parse and check one public key given as text (a trailing newline is allowed).
pub fn parse(text: &str) -> Result<ParsedKey, KeyError> {
    if text.len() > MAX_KEY_TEXT {
        return Err(KeyError::TooLong);
    }
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.contains("PRIVATE KEY") {
        return Err(KeyError::Private);
    }
    if text.contains(['\n', '\r']) {
        return Err(KeyError::Lines);
    }
    if text.chars().any(char::is_control) {
        return Err(KeyError::Control);
    }
    let text = text.trim();
    let Some(first) = text.split_whitespace().next() else {
        return Err(KeyError::Empty);
    };
    if !looks_like_key_type(first) {
        return Err(if first.contains(['=', '"', ',']) {
            KeyError::Options
        } else {
            KeyError::Syntax(format!("{} is not a key type", super::names::shown(first)))
        });
    }
    let key =
        ssh_key::PublicKey::from_openssh(text).map_err(|e| KeyError::Syntax(e.to_string()))?;
    check_key_data(key.key_data())?;
    let comment = key.comment();
    if comment.split_whitespace().any(looks_like_key_type) {
        return Err(KeyError::TwoKeys);
    }
    if comment.chars().count() > MAX_COMMENT {
        return Err(KeyError::LongComment);
    }
    let line = key
        .to_openssh()
        .map_err(|e| KeyError::Syntax(e.to_string()))?;
    Ok(ParsedKey {
        line,
        fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        algorithm: key.algorithm().as_str().to_owned(),
        comment: comment.to_owned(),
    })
}

/// Accept the key types OpenSSH accepts by default; refuse DSA, unknown types and short RSA.
fn check_key_data(data: &KeyData) -> Result<(), KeyError> {
    match data {
        KeyData::Ed25519(_)
        | KeyData::SkEd25519(_)
        | KeyData::Ecdsa(_)
        | KeyData::SkEcdsaSha2NistP256(_) => Ok(()),
        KeyData::Rsa(rsa) => {
            let bits = rsa.n.as_positive_bytes().map_or(0, |n| {
                n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
            });
            if bits < MIN_RSA_BITS {
                Err(KeyError::WeakRsa(bits))
            } else {
                Ok(())
            }
        }
        other => Err(KeyError::Algorithm(other.algorithm().as_str().to_owned())),
    }
}

/// One key of an account, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key line, `TYPE BASE64[ COMMENT]`.
    pub key: String,
    /// Its SHA256 fingerprint.
    pub fingerprint: String,
    /// When it was added (RFC 3339).
    pub added: String,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl KeyRecord {
    /// The record of a key that was just parsed.
    pub fn new(key: &ParsedKey, added: &str) -> Self {
        Self {
            key: key.line.clone(),
            fingerprint: key.fingerprint.clone(),
            added: added.to_owned(),
            extra: Map::new(),
        }
    }

    /// The key, checked again: what is stored is used only if it parses and its fingerprint
    /// is the one recorded.
    pub fn parsed(&self) -> Result<ParsedKey, String> {
        let parsed = parse(&self.key).map_err(|e| e.to_string())?;
        if parsed.fingerprint != self.fingerprint {
            return Err(format!(
                "fingerprint {} is not the key's ({})",
                super::names::shown(&self.fingerprint),
                parsed.fingerprint
            ));
        }
        Ok(parsed)
    }
}

/// One entry of a key list.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Valid(KeyRecord, ParsedKey),
    SetAside { raw: Value, reason: String },
}

/// The keys of one account: the valid ones, and those set aside (kept as found, in place).
///
/// The entries read from the datastore are checked the first time the list is looked at,
/// not when the document is parsed: a reader that needs the keys of one account (sshd's
/// lookup at every login) checks only those. Whatever asks sees the same answer.
#[derive(Debug, Clone, Default)]
pub struct KeyList {
    /// The entries as found in the datastore.
    found: Vec<Value>,
    /// The entries checked (from `found`, then changed in memory).
    checked: OnceLock<Vec<Entry>>,
}

impl PartialEq for KeyList {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl KeyList {
    fn entries(&self) -> &[Entry] {
        self.checked.get_or_init(|| check_entries(&self.found))
    }

    fn entries_mut(&mut self) -> &mut Vec<Entry> {
        self.entries();
        self.checked.get_mut().expect("checked just now")
    }

    /// The valid keys, with their parsed form.
    pub fn valid(&self) -> impl Iterator<Item = (&KeyRecord, &ParsedKey)> {
        self.entries().iter().filter_map(|e| match e {
            Entry::Valid(r, p) => Some((r, p)),
            Entry::SetAside { .. } => None,
        })
    }

    /// The entries set aside, with why.
    pub fn set_aside(&self) -> impl Iterator<Item = (&Value, &str)> {
        self.entries().iter().filter_map(|e| match e {
            Entry::SetAside { raw, reason } => Some((raw, reason.as_str())),
            Entry::Valid(..) => None,
        })
    }

    /// Whether there is no entry at all (valid or set aside).
    pub fn is_empty(&self) -> bool {
        match self.checked.get() {
            Some(entries) => entries.is_empty(),
            None => self.found.is_empty(),
        }
    }

    /// The valid key with this fingerprint, if any.
    pub fn find(&self, fingerprint: &str) -> Option<&KeyRecord> {
        self.valid()
            .find(|(r, _)| r.fingerprint == fingerprint)
            .map(|(r, _)| r)
    }

    /// Add a key (the caller checked it is not there yet).
    pub fn push(&mut self, record: KeyRecord, parsed: ParsedKey) {
        self.entries_mut().push(Entry::Valid(record, parsed));
    }

    /// Remove the valid keys whose fingerprint or comment is `which`; return them.
    pub fn remove(&mut self, which: &str) -> Vec<KeyRecord> {
        let mut removed = Vec::new();
        self.entries_mut().retain(|e| match e {
            Entry::Valid(r, p) if r.fingerprint == which || p.comment == which => {
                removed.push(r.clone());
                false
            }
            _ => true,
        });
        removed
    }
}

/// Check stored key records: each one that fails the checks, or repeats a key held before
/// it, is set aside in place.
fn check_entries(found: &[Value]) -> Vec<Entry> {
    let mut seen = HashSet::new();
    found
        .iter()
        .map(|raw| {
            let checked = KeyRecord::deserialize(raw)
                .map_err(|e| e.to_string())
                .and_then(|r| r.parsed().map(|p| (r, p)))
                .and_then(|(r, p)| {
                    if seen.insert(p.fingerprint.clone()) {
                        Ok((r, p))
                    } else {
                        Err(format!("key {} is listed twice", p.fingerprint))
                    }
                });
            match checked {
                Ok((r, p)) => Entry::Valid(r, p),
                Err(reason) => Entry::SetAside {
                    raw: raw.clone(),
                    reason,
                },
            }
        })
        .collect()
}

impl Serialize for KeyList {
    /// The entries as checked, or (never looked at) as found.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(entries) = self.checked.get() else {
            return self.found.serialize(s);
        };
        s.collect_seq(entries.iter().map(|e| match e {
            Entry::Valid(r, _) => serde_json::to_value(r).expect("serialisable"),
            Entry::SetAside { raw, .. } => raw.clone(),
        }))
    }
}

impl<'de> Deserialize<'de> for KeyList {
    /// A list of key records, checked when first looked at. Anything but a list is an error
    /// (the record holding it is set aside).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            found: Vec::<Value>::deserialize(d)?,
            checked: OnceLock::new(),
        })
    }
}

/// The operator's record, `"operator": {"publickeys": […]}` at the top of the document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// The operator's keys.
    #[serde(default, skip_serializing_if = "KeyList::is_empty")]
    pub publickeys: KeyList,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OperatorRecord {
    /// Whether the record holds nothing (it is then not written).
    pub fn is_empty(&self) -> bool {
        self.publickeys.is_empty() && self.extra.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with ssh-keygen for these tests.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf bob@laptop";
    const ED25519_FP: &str = "SHA256:eis1onz+KOUlCjPuJfSz88qUoFwIv+bjXJ+OwbbwB+A";

    #[test]
    fn parses_and_fingerprints_a_key_as_ssh_keygen_does() {
        let k = parse(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(k.line, ED25519);
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "bob@laptop");
        assert_eq!(k.fingerprint, ED25519_FP);
        let bare = ED25519.rsplit_once(' ').unwrap().0;
        assert_eq!(parse(bare).unwrap().comment, "");
        assert_eq!(parse(bare).unwrap().fingerprint, ED25519_FP);
    }

    #[test]
    fn hostile_input_is_refused() {
        let two = format!("{ED25519}\n{ED25519}");
        let cases: Vec<(String, KeyError)> = vec![
            (String::new(), KeyError::Empty),
            ("   \n".into(), KeyError::Empty),
            (two.clone(), KeyError::Lines),
            (format!("{ED25519}\r\nx"), KeyError::Lines),
            (format!("{ED25519}\n\n"), KeyError::Lines),
            (ED25519.replace(" bob", "\tbob\u{7}"), KeyError::Control),
            (format!("{ED25519}\0"), KeyError::Control),
            (format!("command=\"/bin/sh\" {ED25519}"), KeyError::Options),
            (format!("no-pty,from=\"*\" {ED25519}"), KeyError::Options),
            (format!("{ED25519} {ED25519}"), KeyError::TwoKeys),
            ("x".repeat(MAX_KEY_TEXT + 1), KeyError::TooLong),
            (
                format!("{ED25519}{}", "a".repeat(MAX_KEY_TEXT)),
                KeyError::TooLong,
            ),
            (
                format!("{ED25519}{}", "a".repeat(300)),
                KeyError::LongComment,
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
                KeyError::Private,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(&text), Err(want), "{text:?}");
        }
        for text in [
            "ssh-ed25519 AAAA-not-base64",
            "ssh-ed25519",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf",
            "hello world",
        ] {
            assert!(
                matches!(parse(text), Err(KeyError::Syntax(_))),
                "{text}: {:?}",
                parse(text)
            );
        }
    }

    #[test]
    fn ecdsa_keys_are_accepted() {
        let k = parse("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEQWIza2aCU2MtdUgzu9kEY76LtJ2JgyWPjKYmhHOhUPH4q8O+7/Gr33NNNdjx2p0LBDd6VHBl2O5R9lScYJfJI= e").unwrap();
        assert_eq!(k.algorithm, "ecdsa-sha2-nistp256");
        assert_eq!(
            k.fingerprint,
            "SHA256:RWEdpW+s+cfBJypnE+UTq3JqYHTQj/WQdIo6qvFPIlY"
        );
    }

    #[test]
    fn short_rsa_and_dsa_keys_are_refused() {
        // ssh-keygen -t rsa -b 1024
        let rsa1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDE0oI+KFIsk9pvyWjkSPIas2ldxBEuN2z636AEg4MLF3HVUl7ULb3XPvNIVYoxIuGwGk0KpRl+rcp0mWM7BEC8QLtFw79Xsjxd9FCr4YNlyqThASHO9ijfKG3kDyBRXzU/9dDTfNA9ozXlECefXgzt1hWaP68Y9DpNfhUJxWcbw== x";
        assert_eq!(parse(rsa1024), Err(KeyError::WeakRsa(1024)));
        // ssh-keygen -t dsa
        let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAJWP3v6GrOkNLtCtFN0fhBlCQsb7tMlYwtPM1DFK5m3OBENEscb+4Wl3SOop0IoOw7YtB4qUAA00RqhKGlYDSR8UUTIDBoRs+jMGZnl3K3DDq72TjSiVX3L2X80AQ+5bXtRixfTJdheY/aS4crYIjMPlT3htxkNGh4datdkRNhHDAAAAFQClm0so6L47pFp5GIMkHJqPMi3gVwAAAIALCtbEGUZHd5lu/dSHOJYL/xMT5Zq4PwlUkzi0i4r4sZVTErFlUjNieQvh9io8RTNWPurhWiNzkN1PWahVxz4gEfsHXFaBgNXzry2pelBvT9zwT1+mOrmWMfBYwlkXiG1RPd9ihsy3coyJAH5jouFnwuYUXo421GDBYSkmPuu5/QAAAIAMtJAdQxyqqRp9wH3Qh/pv3JU++P02I6u2pcKBejRirJgMOJ7roy4Aq39jyIlSmxIpHzFfeRrR98zfEWMw/R/xdKmxzG7c5in6riLUk8PsY+gJQcVsh80FRDvN0ogX4yfVdkrYpHUyvz3gKtroJDuSV/YdDAQRUkI/ka/j9LFQRA== x";
        assert!(
            matches!(
                parse(dsa),
                Err(KeyError::Algorithm(_) | KeyError::Syntax(_))
            ),
            "{:?}",
            parse(dsa)
        );
    }

    #[test]
    fn a_stored_list_sets_aside_what_fails_in_place_and_round_trips() {
        let good =
            serde_json::json!({"key": ED25519, "fingerprint": ED25519_FP, "added": "t", "note": 1});
        let wrong_fp = serde_json::json!({"key": ED25519, "fingerprint": "SHA256:x", "added": "t"});
        let injected = serde_json::json!({"key": format!("{ED25519}\ncommand=\"x\" {ED25519}"), "fingerprint": ED25519_FP, "added": "t"});
        let list = serde_json::json!([good, wrong_fp, injected, good, 7]);
        let keys: KeyList = serde_json::from_value(list.clone()).unwrap();
        assert_eq!(keys.valid().count(), 1);
        let reasons: Vec<&str> = keys.set_aside().map(|(_, r)| r).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].contains("is not the key's"), "{reasons:?}");
        assert!(reasons[1].contains("more than one line"), "{reasons:?}");
        assert!(reasons[2].contains("listed twice"), "{reasons:?}");
        assert_eq!(serde_json::to_value(&keys).unwrap(), list);
        assert!(serde_json::from_value::<KeyList>(serde_json::json!({"a": 1})).is_err());
    }

    #[test]
    fn removes_by_fingerprint_or_comment() {
        let parsed = parse(ED25519).unwrap();
        let mut keys = KeyList::default();
        keys.push(KeyRecord::new(&parsed, "t"), parsed.clone());
        assert!(keys.remove("nothing").is_empty());
        assert_eq!(keys.remove("bob@laptop").len(), 1);
        assert!(keys.is_empty());
        keys.push(KeyRecord::new(&parsed, "t"), parsed);
        assert_eq!(keys.remove(ED25519_FP).len(), 1);
    }
}
