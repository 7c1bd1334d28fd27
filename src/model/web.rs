//! The web front of a container: the names it is served under (its own name, alternative
//! names, aliases redirected to it, `www.` variants, the preview name under the company
//! domain) and its redirect policy, and the routing table haproxy gets from them.
//!
//! Every value here reaches haproxy's map files and certificates, so each is a type that can
//! only be built valid: a [`Domain`] is a plain DNS name, a [`Redirect`] URL holds no space,
//! quote or control character. Nothing can add a line to a generated file.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::names::{ContainerName, shown};

/// Why a domain or a redirect was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {shown} is invalid: {why}")]
pub struct WebError {
    what: &'static str,
    shown: String,
    why: &'static str,
}

fn refuse(what: &'static str, raw: &str, why: &'static str) -> WebError {
    WebError {
        what,
        shown: shown(raw),
        why,
    }
}

/// Longest DNS name.
pub const DOMAIN_MAX: usize = 253;

/// A fully qualified DNS name (at least two labels), stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    /// Validate and normalise a domain.
    pub fn new(raw: &str) -> Result<Self, WebError> {
        const WHAT: &str = "domain";
        if raw.is_empty() {
            return Err(refuse(WHAT, raw, "it is empty"));
        }
        if raw.len() > DOMAIN_MAX {
            return Err(refuse(WHAT, raw, "it is longer than 253 characters"));
        }
        let name = raw.to_ascii_lowercase();
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(refuse(
                WHAT,
                raw,
                "use only letters, digits, '-' and '.' (a DNS name such as example.com)",
            ));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(refuse(WHAT, raw, "it needs at least two labels"));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(refuse(WHAT, raw, "empty label"));
            }
            if label.len() > 63 {
                return Err(refuse(WHAT, raw, "a label is longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(refuse(WHAT, raw, "a label may not start or end with '-'"));
            }
        }
        if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(refuse(WHAT, raw, "an address is not a domain"));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// A redirect policy of one port, srvctl 3's `http-redirect` / `https-redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// No redirect: serve the site on this port.
    None,
    /// Redirect to `http://` (the same host and path).
    Http,
    /// Redirect to `https://` (the same host and path).
    Https,
    /// Redirect to this URL, the request's path appended (a prefix, without a trailing `/`).
    Url(String),
}

/// Longest redirect URL.
pub const URL_MAX: usize = 2000;

impl Redirect {
    /// Parse `none`, `http`, `https` or an `http://` / `https://` URL.
    pub fn parse(raw: &str) -> Result<Self, WebError> {
        const WHAT: &str = "redirect";
        Ok(match raw {
            "none" => Self::None,
            "http" => Self::Http,
            "https" => Self::Https,
            _ => {
                let rest = raw
                    .strip_prefix("https://")
                    .or_else(|| raw.strip_prefix("http://"))
                    .ok_or_else(|| {
                        refuse(
                            WHAT,
                            raw,
                            "expected none, http, https or an http:// or https:// URL",
                        )
                    })?;
                if raw.len() > URL_MAX {
                    return Err(refuse(WHAT, raw, "the URL is longer than 2000 characters"));
                }
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                let host = match authority.rsplit_once(':') {
                    Some((host, port)) => {
                        if port.parse::<u16>().map_or(true, |p| p == 0) {
                            return Err(refuse(WHAT, raw, "the URL's port is not 1..65535"));
                        }
                        host
                    }
                    None => authority,
                };
                Domain::new(host)
                    .map_err(|_| refuse(WHAT, raw, "the URL's host is not a DNS name"))?;
                let safe = |b: u8| b.is_ascii_alphanumeric() || b"-._~/!$&()*+,;=:@%?".contains(&b);
                if !path.bytes().all(safe) {
                    return Err(refuse(
                        WHAT,
                        raw,
                        "the URL's path holds a character that must be percent-encoded",
                    ));
                }
                Self::Url(raw.trim_end_matches('/').to_owned())
            }
        })
    }

    /// The value as stored and shown.
    pub fn as_str(&self) -> &str {
        match self {
            Self::None => "none",
            Self::Http => "http",
            Self::Https => "https",
            Self::Url(u) => u,
        }
    }
}

impl fmt::Display for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Redirect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Redirect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The web fields of a container record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSettings {
    /// Domains redirected to the container's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Domain>,
    /// Domains served as they are, by the same backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub altnames: Vec<Domain>,
    /// What plain HTTP does (default: redirect to https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_redirect: Option<Redirect>,
    /// What HTTPS does (default: serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<Redirect>,
}

impl WebSettings {
    /// The effective HTTP policy: http→https unless set otherwise; `http` means serve.
    pub fn http(&self) -> Redirect {
        match &self.http_redirect {
            None => Redirect::Https,
            Some(Redirect::Http) => Redirect::None,
            Some(r) => r.clone(),
        }
    }

    /// The effective HTTPS policy: serve unless set otherwise; `https` means serve.
    pub fn https(&self) -> Redirect {
        match &self.https_redirect {
            None | Some(Redirect::Https) => Redirect::None,
            Some(r) => r.clone(),
        }
    }

    /// Refuse a pair of policies that would send clients round in circles.
    pub fn check_loop(&self) -> Result<(), String> {
        if self.http() == Redirect::Https && self.https() == Redirect::Http {
            return Err(
                "http-redirect https (the default) with https-redirect http would loop; \
                 set `http-redirect none` first"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Which list of a container a name is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameList {
    /// `aliases`
    Aliases,
    /// `altnames`
    Altnames,
}

impl NameList {
    /// The field name.
    pub fn key(self) -> &'static str {
        match self {
            Self::Aliases => "aliases",
            Self::Altnames => "altnames",
        }
    }

    /// The list in `web`.
    pub fn of(self, web: &mut WebSettings) -> &mut Vec<Domain> {
        match self {
            Self::Aliases => &mut web.aliases,
            Self::Altnames => &mut web.altnames,
        }
    }
}

/// The preview name of a container: its name with dots as dashes under the company domain
/// (`web.example.com` → `web-example-com.company.net`), when that is a valid DNS name.
pub fn preview_name(name: &ContainerName, company_domain: &Domain) -> Option<Domain> {
    Domain::new(&format!(
        "{}.{company_domain}",
        name.as_str().replace('.', "-")
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_plain_dns_names() {
        assert_eq!(Domain::new("Example.COM").unwrap().as_str(), "example.com");
        for bad in [
            "",
            "example",
            "a..b",
            "-a.b",
            "a b.com",
            "a.com\nbackend x",
            "1.2.3.4",
            "*.example.com",
            "a.com/",
        ] {
            assert!(Domain::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Domain::new(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn redirects_parse_and_refuse_injection() {
        assert_eq!(Redirect::parse("none").unwrap(), Redirect::None);
        assert_eq!(
            Redirect::parse("https://new.example.org/").unwrap(),
            Redirect::Url("https://new.example.org".into())
        );
        assert!(Redirect::parse("http://x.example.org:8080/a/b?c=d").is_ok());
        for bad in [
            "ftp://x.org",
            "https://",
            "https://x.org/a b",
            "https://x.org/\nbackend",
            "https://x.org/\"",
            "https://x.org:0/",
            "https://x.org:99999/",
            "https://-x.org/",
            "https://x.org/#frag",
            "HTTPS",
        ] {
            assert!(Redirect::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn effective_policies_and_loops() {
        let mut w = WebSettings::default();
        assert_eq!((w.http(), w.https()), (Redirect::Https, Redirect::None));
        w.https_redirect = Some(Redirect::Http);
        assert!(w.check_loop().is_err());
        w.http_redirect = Some(Redirect::None);
        assert!(w.check_loop().is_ok());
        w.http_redirect = Some(Redirect::Http);
        assert_eq!(w.http(), Redirect::None);
    }

    #[test]
    fn hand_edited_values_set_the_record_aside() {
        let doc = |field: &str| {
            format!(
                r#"{{"schema_version": 1, "containers": {{"web.example.com": {{"user": "root",
                "host": "h1.test", "ip": "10.16.0.2", "created": "t", "created_by": "root",
                {field}}}}}}}"#
            )
        };
        for bad in [
            r#""aliases": ["a.com\nbackend evil"]"#,
            r#""altnames": ["a b.com"]"#,
            r#""http_redirect": "https://x.org/\n""#,
            r#""https_redirect": "sometimes""#,
        ] {
            let state = crate::model::State::from_json(doc(bad).as_bytes()).unwrap();
            assert!(state.containers.is_empty(), "{bad} accepted");
            assert_eq!(state.set_aside.len(), 1);
        }
        let state = crate::model::State::from_json(doc(r#""aliases": ["Example.NET"]"#).as_bytes())
            .unwrap();
        let c = state.containers.values().next().unwrap();
        assert_eq!(c.web.aliases[0].as_str(), "example.net");
    }

    #[test]
    fn previews_use_dashes() {
        let company = Domain::new("company.net").unwrap();
        let name = ContainerName::new("web.example.com").unwrap();
        assert_eq!(
            preview_name(&name, &company).unwrap().as_str(),
            "web-example-com.company.net"
        );
        let long = ContainerName::new(&format!("{}.{}", "a".repeat(40), "b".repeat(23))).unwrap();
        assert!(preview_name(&long, &company).is_none());
    }
}
