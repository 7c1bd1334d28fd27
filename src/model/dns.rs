//! A site's own DNS records (`sc NAME dns add|remove|list`), served in the zone of the site's
//! name beside the records srvctl makes (apex, `www` and `mail` addresses, MX, SPF, DMARC).
//!
//! Each record is validated for its type when it is made and whenever the datastore is read,
//! and written to the zone file only from its validated parts: a TXT or CAA text is quoted and
//! escaped, every name is a plain DNS label, so no value can add a line or a record to a zone.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::names::shown;
use crate::model::web::Domain;

/// The most records a site may have of its own.
pub const MAX_RECORDS: usize = 100;
/// The longest TXT text, in bytes (split into strings of 255 in the zone).
pub const TXT_MAX: usize = 1024;
/// The owner names srvctl writes records for in every site's zone: no CNAME may go there.
pub const GENERATED: &[&str] = &["@", "www", "mail", "_dmarc"];

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS record {shown} is invalid: {why}")]
pub struct RecordError {
    shown: String,
    why: String,
}

fn refuse(raw: &str, why: impl Into<String>) -> RecordError {
    RecordError {
        shown: shown(raw),
        why: why.into(),
    }
}

/// What a record holds, by type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias of another name (never at a name that has other records).
    Cname(Domain),
    /// A mail exchanger: preference and host.
    Mx(u16, Domain),
    /// Text: printable ASCII, at most [`TXT_MAX`] bytes.
    Txt(String),
    /// Which CAs may issue: flags (0 or 128), tag (`issue`, `issuewild`, `iodef`), value.
    Caa(u8, String, String),
}

/// One record of a site's own: an owner name relative to the site's zone (`@` for the apex)
/// and its data. Stored in the datastore as `{"name", "type", "value"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsRecord {
    name: String,
    data: RecordData,
}

/// A relative owner name: `@`, or labels of letters, digits, `-` and `_` (lower-cased).
fn owner(raw: &str) -> Result<String, RecordError> {
    let name = raw.to_ascii_lowercase();
    if name == "@" {
        return Ok(name);
    }
    let fine = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 200 || !name.split('.').all(fine) {
        return Err(refuse(
            raw,
            "the name must be @ (the site's own name) or labels of letters, digits, '-' and '_' \
             relative to it (such as _acme or shop.eu)",
        ));
    }
    Ok(name)
}

/// Printable ASCII only (no control character, no byte above 0x7e).
fn printable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl RecordData {
    /// The record type's name as DNS spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::A(_) => "A",
            Self::Aaaa(_) => "AAAA",
            Self::Cname(_) => "CNAME",
            Self::Mx(..) => "MX",
            Self::Txt(_) => "TXT",
            Self::Caa(..) => "CAA",
        }
    }

    /// Parse `value` as the data of a record of type `kind` (case-insensitive).
    pub fn parse(kind: &str, value: &str) -> Result<Self, RecordError> {
        let bad = |why: &str| refuse(&format!("{kind} {value}"), why);
        let domain = |v: &str| {
            Domain::new(v.trim_end_matches('.'))
                .map_err(|_| bad("the target must be a DNS name such as mail.example.net"))
        };
        Ok(match kind.to_ascii_uppercase().as_str() {
            "A" => Self::A(value.parse().map_err(|_| bad("not an IPv4 address"))?),
            "AAAA" => Self::Aaaa(value.parse().map_err(|_| bad("not an IPv6 address"))?),
            "CNAME" => Self::Cname(domain(value)?),
            "MX" => {
                let (pref, host) = value.split_once(' ').ok_or_else(|| {
                    bad("an MX is PREFERENCE HOST, such as \"10 mx.example.net\"")
                })?;
                let pref = pref
                    .parse()
                    .map_err(|_| bad("the preference must be a number from 0 to 65535"))?;
                Self::Mx(pref, domain(host.trim())?)
            }
            "TXT" => {
                if value.len() > TXT_MAX || !printable(value) {
                    return Err(bad(
                        "a TXT text is printable ASCII (no line break or control character), at \
                         most 1024 bytes",
                    ));
                }
                Self::Txt(value.to_owned())
            }
            "CAA" => {
                let mut parts = value.splitn(3, ' ');
                let (Some(flags), Some(tag), Some(text)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(
                        "a CAA is FLAGS TAG VALUE, such as \"0 issue letsencrypt.org\"",
                    ));
                };
                let flags = match flags {
                    "0" => 0,
                    "128" => 128,
                    _ => return Err(bad("CAA flags are 0 or 128")),
                };
                let tag = tag.to_ascii_lowercase();
                if !["issue", "issuewild", "iodef"].contains(&tag.as_str()) {
                    return Err(bad("the CAA tag is issue, issuewild or iodef"));
                }
                if text.len() > 255 || !printable(text) || text.contains('"') || text.contains('\\')
                {
                    return Err(bad(
                        "the CAA value is printable ASCII without quotes or backslashes, at most \
                         255 bytes",
                    ));
                }
                Self::Caa(flags, tag, text.to_owned())
            }
            _ => {
                return Err(refuse(
                    kind,
                    "the record type must be A, AAAA, CNAME, MX, TXT or CAA",
                ));
            }
        })
    }

    /// The value as `sc NAME dns` shows and takes it.
    pub fn value(&self) -> String {
        match self {
            Self::A(ip) => ip.to_string(),
            Self::Aaaa(ip) => ip.to_string(),
            Self::Cname(d) => d.to_string(),
            Self::Mx(pref, d) => format!("{pref} {d}"),
            Self::Txt(text) => text.clone(),
            Self::Caa(flags, tag, text) => format!("{flags} {tag} {text}"),
        }
    }

    /// The data as a zone file holds it: names absolute, texts quoted and escaped.
    fn zone_text(&self) -> String {
        let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        match self {
            Self::Cname(d) => format!("{d}."),
            Self::Mx(pref, d) => format!("{pref} {d}."),
            Self::Txt(text) => txt_strings(text),
            Self::Caa(flags, tag, text) => format!("{flags} {tag} {}", quoted(text)),
            Self::A(_) | Self::Aaaa(_) => self.value(),
        }
    }
}

/// The data of a TXT record holding `text` (printable ASCII), as a zone file holds it: quoted
/// and escaped, split into character-strings of at most 255 bytes each.
pub fn txt_strings(text: &str) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    text.as_bytes()
        .chunks(255)
        .map(|c| quoted(&String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl DnsRecord {
    /// A record of type `kind` with `value` at `name` (`@` for the apex).
    pub fn new(name: &str, kind: &str, value: &str) -> Result<Self, RecordError> {
        let name = owner(name)?;
        let data = RecordData::parse(kind, value)?;
        if matches!(data, RecordData::Cname(_)) && GENERATED.contains(&name.as_str()) {
            return Err(refuse(
                &format!("{name} CNAME {value}"),
                format!(
                    "a CNAME cannot share its name with other records, and srvctl serves {} \
                     at {name}",
                    if name == "@" {
                        "the site's own address"
                    } else {
                        "an address or text"
                    }
                ),
            ));
        }
        Ok(Self { name, data })
    }

    /// The owner name, relative to the site's zone (`@`: the apex).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data.
    pub fn data(&self) -> &RecordData {
        &self.data
    }

    /// The record's line in the zone of `origin`, or `None` when its owner name would be too
    /// long for the DNS there.
    pub fn zone_line(&self, origin: &Domain) -> Option<String> {
        let owner = if self.name == "@" {
            origin.to_string()
        } else {
            format!("{}.{origin}", self.name)
        };
        (owner.len() <= crate::model::web::DOMAIN_MAX)
            .then(|| format!("{owner}. IN {} {}", self.data.kind(), self.data.zone_text()))
    }
}

/// Whether `new` may join `records` of a site whose DKIM key srvctl publishes at
/// `<dkim_selector>._domainkey`: not there yet, not at the DKIM key's name (a second TXT there
/// would spoil the key, a CNAME would make named refuse the zone), no CNAME beside another
/// record of its name, not more than [`MAX_RECORDS`].
pub fn check_addition(
    records: &[DnsRecord],
    new: &DnsRecord,
    dkim_selector: Option<&str>,
) -> Result<(), RecordError> {
    let shown_new = format!("{} {} {}", new.name, new.data.kind(), new.data.value());
    if let Some(selector) = dkim_selector
        && new.name == format!("{selector}._domainkey")
    {
        return Err(refuse(
            &shown_new,
            format!("srvctl publishes the site's DKIM key at {}", new.name),
        ));
    }
    if records.contains(new) {
        return Err(refuse(&shown_new, "the site has it already"));
    }
    if records.len() >= MAX_RECORDS {
        return Err(refuse(
            &shown_new,
            format!("a site has at most {MAX_RECORDS} records of its own"),
        ));
    }
    let cname = |r: &DnsRecord| matches!(r.data, RecordData::Cname(_));
    if records
        .iter()
        .any(|r| r.name == new.name && (cname(r) || cname(new)))
    {
        return Err(refuse(
            &shown_new,
            format!(
                "a CNAME cannot share its name with other records, and {} has one",
                new.name
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.name,
            self.data.kind(),
            self.data.value()
        )
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

impl Serialize for DnsRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            name: self.name.clone(),
            kind: self.data.kind().to_owned(),
            value: self.data.value(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DnsRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        Self::new(&stored.name, &stored.kind, &stored.value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Domain {
        Domain::new("example.com").unwrap()
    }

    #[test]
    fn records_of_each_type_are_written_from_their_validated_parts() {
        let o = origin();
        let line = |name: &str, kind: &str, value: &str| {
            DnsRecord::new(name, kind, value)
                .unwrap()
                .zone_line(&o)
                .unwrap()
        };
        assert_eq!(line("@", "a", "192.0.2.7"), "example.com. IN A 192.0.2.7");
        assert_eq!(
            line("v6", "AAAA", "2001:db8::1"),
            "v6.example.com. IN AAAA 2001:db8::1"
        );
        assert_eq!(
            line("shop", "CNAME", "shops.example.net."),
            "shop.example.com. IN CNAME shops.example.net."
        );
        assert_eq!(
            line("@", "MX", "20 Mx.Example.Net"),
            "example.com. IN MX 20 mx.example.net."
        );
        assert_eq!(
            line("_acme", "TXT", r#"say "hi" \ bye"#),
            r#"_acme.example.com. IN TXT "say \"hi\" \\ bye""#
        );
        assert_eq!(
            line("@", "CAA", "0 issue letsencrypt.org"),
            r#"example.com. IN CAA 0 issue "letsencrypt.org""#
        );
        let long = "x".repeat(600);
        let split = line("@", "TXT", &long);
        assert_eq!(split.matches('"').count(), 6, "three strings: {split}");
    }

    #[test]
    fn hostile_or_wrong_records_are_refused() {
        for (name, kind, value) in [
            ("@", "A", "192.0.2.300"),
            ("@", "A", "192.0.2.1\nexample.com. IN A 6.6.6.6"),
            ("@", "AAAA", "192.0.2.1"),
            ("@", "TXT", "line\nbreak"),
            ("@", "TXT", "tab\there"),
            ("@", "TXT", "ünïcode"),
            ("@", "TXT", &"x".repeat(TXT_MAX + 1)),
            ("@", "MX", "mx.example.net"),
            ("@", "MX", "70000 mx.example.net"),
            ("@", "MX", "10 mx example net"),
            ("@", "CNAME", "other.example.net"),
            ("www", "CNAME", "other.example.net"),
            ("_dmarc", "CNAME", "other.example.net"),
            ("../etc", "TXT", "x"),
            ("a b", "TXT", "x"),
            ("x\ny", "TXT", "x"),
            ("", "TXT", "x"),
            ("-a", "TXT", "x"),
            ("@", "CAA", "1 issue ca.example"),
            ("@", "CAA", "0 evil ca.example"),
            ("@", "CAA", "0 issue \"ca\""),
            ("@", "NS", "ns.example.net"),
            ("@", "TXT\nA", "x"),
        ] {
            assert!(
                DnsRecord::new(name, kind, value).is_err(),
                "{name:?} {kind:?} {value:?} was accepted"
            );
        }
    }

    #[test]
    fn a_cname_stands_alone_at_its_name_and_a_site_holds_at_most_its_limit() {
        let r = |n: &str, k: &str, v: &str| DnsRecord::new(n, k, v).unwrap();
        let have = vec![r("shop", "CNAME", "a.example.net"), r("@", "TXT", "v")];
        assert!(check_addition(&have, &r("shop", "TXT", "x"), None).is_err());
        assert!(check_addition(&have, &r("shop", "CNAME", "b.example.net"), None).is_err());
        assert!(
            check_addition(&have, &r("@", "TXT", "v"), None).is_err(),
            "a twin"
        );
        assert!(check_addition(&have, &r("@", "TXT", "w"), None).is_ok());
        let full: Vec<_> = (0..MAX_RECORDS)
            .map(|i| r("@", "TXT", &i.to_string()))
            .collect();
        assert!(check_addition(&full, &r("@", "TXT", "one more"), None).is_err());
    }

    #[test]
    fn no_record_of_the_site_s_own_goes_where_its_dkim_key_is_published() {
        let r = |n: &str, k: &str, v: &str| DnsRecord::new(n, k, v).unwrap();
        for new in [
            r("s20261203._domainkey", "CNAME", "dkim.example.net"),
            r("s20261203._domainkey", "TXT", "v=DKIM1; p=other"),
        ] {
            let e = check_addition(&[], &new, Some("s20261203")).unwrap_err();
            assert!(e.to_string().contains("DKIM key"), "{e}");
        }
        // Another selector (a mail service's key) is the site's to publish.
        let google = r("google._domainkey", "TXT", "v=DKIM1; p=abc");
        assert!(check_addition(&[], &google, Some("s20261203")).is_ok());
    }

    #[test]
    fn the_datastore_form_is_read_back_through_the_same_checks() {
        let rec = DnsRecord::new("_acme", "TXT", "token").unwrap();
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(json, r#"{"name":"_acme","type":"TXT","value":"token"}"#);
        assert_eq!(serde_json::from_str::<DnsRecord>(&json).unwrap(), rec);
        let hostile = r#"{"name":"@","type":"TXT","value":"a\nb"}"#;
        assert!(serde_json::from_str::<DnsRecord>(hostile).is_err());
    }
}
