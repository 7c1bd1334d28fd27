//! A site's DKIM key as the datastore keeps it: `"dkim": {"selector", "public"}` on a container,
//! the selector and the public key (base64 of its DER SubjectPublicKeyInfo, as a DKIM TXT
//! record's `p=` holds it). The private key never enters the datastore: it lies on the
//! container's host ([`crate::mail::keys`]).
//!
//! Both fields are checked whenever the datastore is read: the selector is one plain DNS label,
//! the public key is base64 that decodes to an RSA public key, so neither can add a line or a
//! field to a zone file or to OpenDKIM's tables. A record whose key does not pass is set aside.

use std::fmt;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;

/// The longest public key text accepted, in base64 characters (an RSA key of 4096 bits is
/// about 740).
pub const PUBLIC_MAX: usize = 1024;

/// Why a DKIM key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DKIM key is invalid: {0}")]
pub struct DkimError(String);

/// A DKIM selector: one DNS label, lower-case letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector(String);

impl Selector {
    /// Validate a selector.
    pub fn new(raw: &str) -> Result<Self, DkimError> {
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if !ok {
            return Err(DkimError(format!(
                "selector {:?} is not one DNS label of lower-case letters, digits and '-'",
                crate::model::names::shown(raw)
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The selector of a key made at `now` (RFC 3339): `s` and the date, e.g. `s20261203`.
    pub fn dated(now: &str) -> Self {
        let date: String = now.chars().take(10).filter(char::is_ascii_digit).collect();
        Self(format!("s{date}"))
    }

    /// The selector.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site's DKIM key: its selector and its public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct DkimKey {
    selector: Selector,
    public: String,
}

/// The stored form, checked into a [`DkimKey`].
#[derive(Serialize, Deserialize)]
struct Stored {
    selector: String,
    public: String,
}

impl TryFrom<Stored> for DkimKey {
    type Error = DkimError;
    fn try_from(s: Stored) -> Result<Self, DkimError> {
        Self::new(Selector::new(&s.selector)?, &s.public)
    }
}

impl From<DkimKey> for Stored {
    fn from(k: DkimKey) -> Self {
        Self {
            selector: k.selector.0,
            public: k.public,
        }
    }
}

impl DkimKey {
    /// A key of `selector` whose public key is `public`: base64 (no line breaks) of a DER
    /// SubjectPublicKeyInfo of an RSA key.
    pub fn new(selector: Selector, public: &str) -> Result<Self, DkimError> {
        let bad = |why: &str| DkimError(format!("public key: {why}"));
        if public.is_empty() || public.len() > PUBLIC_MAX {
            return Err(bad(&format!("give 1 to {PUBLIC_MAX} base64 characters")));
        }
        if !public
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            return Err(bad("not base64"));
        }
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{public}\n-----END PUBLIC KEY-----\n");
        let der = pem::parse(pem).map_err(|e| bad(&format!("not base64: {e}")))?;
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der.contents())
            .map_err(|e| bad(&format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("bytes after the SubjectPublicKeyInfo"));
        }
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            return Err(bad("not an RSA key"));
        }
        Ok(Self {
            selector,
            public: public.to_owned(),
        })
    }

    /// The selector.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The public key, base64 of its DER SubjectPublicKeyInfo.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The text of the key's DKIM TXT record (`<selector>._domainkey.<domain>`).
    pub fn txt(&self) -> String {
        format!("v=DKIM1; k=rsa; p={}", self.public)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The public key of an RSA 2048 key made with `openssl genpkey`, as srvctl stores it.
    pub const PUBLIC: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoQLmiqmam+yPguMTTm/+a2bUUQJJp56sTnhpzYCWCtdQMp/IWvKrj/c2SNM29mm03B1DIg8RLEtiXcSCcyr4G/1uQXrfr0Aj+MUY4755Zw7fkZ85Pn4fPq6rTiNRCydOfeyECGM+jayXFOf9JKYQ5Czc8mpCcJSSI9nyKhp/kX23qI3UAKfbSbT1JdUeteqxYjSIRMx+V/UF4F1epVzKjmhwDNUTVZVwEx2nSTHD5+7jQqRCZUg2Z5osGD8YJ8J/yPYwYI9+HxbZC2L/ntlnhXDQIcm8S96eLGaFEdGdgSmGgqmru8tQ19tR6rw12pRfJiS1A7vFMiS8V7EELNn7rwIDAQAB";

    #[test]
    fn a_key_is_checked_on_every_read() {
        let key: DkimKey = serde_json::from_str(&format!(
            r#"{{"selector": "s20261203", "public": "{PUBLIC}"}}"#
        ))
        .unwrap();
        assert_eq!(key.selector().as_str(), "s20261203");
        assert!(key.txt().starts_with("v=DKIM1; k=rsa; p=MIIB"));
        for (selector, public) in [
            ("s1\nx", PUBLIC),
            ("S1", PUBLIC),
            ("a.b", PUBLIC),
            ("-a", PUBLIC),
            ("s1", "abc\"; evil"),
            ("s1", "AAAA"),
            ("s1", ""),
        ] {
            let raw = serde_json::json!({"selector": selector, "public": public});
            assert!(
                serde_json::from_value::<DkimKey>(raw).is_err(),
                "{selector:?} {public:?}"
            );
        }
        let back = serde_json::to_value(&key).unwrap();
        assert_eq!(back["public"], PUBLIC);
    }

    #[test]
    fn the_selector_names_the_day_the_key_was_made() {
        assert_eq!(
            Selector::dated("2026-12-03T17:56:04Z").as_str(),
            "s20261203"
        );
        assert!(Selector::new(Selector::dated("2026-12-03T17:56:04Z").as_str()).is_ok());
    }
}
