//! The cluster's ACME certificates installed into this host's front by srvctl-sync: when
//! `acme/head` moves, every served container whose certificate in etcd differs from the
//! installed one gets it (key 0600), and srvctl-regenerate reloads haproxy.

use super::{CERTS, HEAD};
use crate::cluster::keys::encode;
use crate::cluster::sync::Feed;
use crate::front::acme::StoredCert;
use crate::front::certs;
use crate::model::State;
use crate::system::System;
use crate::system::paths::Paths;

/// What srvctl-sync remembers between rounds: the revision of `acme/head` it installed.
#[derive(Debug, Default)]
pub struct Installer {
    seen: Option<i64>,
}

/// What one round installed, and what it could not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The containers whose certificate was installed.
    pub names: Vec<String>,
    /// One line for each certificate that could not be.
    pub errors: Vec<String>,
}

impl Installer {
    /// Install the certificates of `state`'s served containers that changed in etcd since
    /// the last round (every one in the first round). A certificate that could not be
    /// installed is tried again next round.
    pub fn round(
        &mut self,
        system: &dyn System,
        paths: &Paths,
        state: &State,
        feed: &mut dyn Feed,
    ) -> Result<Installed, String> {
        let head = feed.revision(HEAD)?;
        if self.seen == Some(head) {
            return Ok(Installed::default());
        }
        let stored = feed.entries(CERTS)?;
        let mut out = Installed::default();
        for (name, _) in crate::front::routes::served(state) {
            let name = name.as_str();
            let Some(json) = stored.get(&encode(name)) else {
                continue;
            };
            let cert: StoredCert = match serde_json::from_str(json) {
                Ok(c) => c,
                Err(e) => {
                    out.errors
                        .push(format!("the cluster's certificate of {name}: {e}"));
                    continue;
                }
            };
            match certs::read_meta(system, paths, name) {
                Ok(Some(meta)) if meta == cert.meta => continue,
                _ => {}
            }
            match cert.install(system, paths, name) {
                Ok(()) => out.names.push(name.to_owned()),
                Err(e) => out
                    .errors
                    .push(format!("installing the certificate of {name}: {e}")),
            }
        }
        if out.errors.is_empty() {
            self.seen = Some(head);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::sync::tests::Scripted;
    use crate::front::certs::{CertMeta, CertSource};
    use crate::system::Recording;

    fn state() -> State {
        State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap()
    }

    fn cert(not_after: &str) -> StoredCert {
        StoredCert {
            chain_pem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n".into(),
            meta: CertMeta {
                source: CertSource::Acme,
                names: vec!["web.example.com".into()],
                not_after: not_after.into(),
                issued: "2026-06-01T00:00:00Z".into(),
                issuer: None,
            },
        }
    }

    #[test]
    fn certificates_are_installed_once_each_time_the_head_moves() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let mut feed = Scripted::default();
        let mut installer = Installer::default();
        let state = state();
        let mut round = |feed: &mut Scripted| {
            installer
                .round(&system, &paths, &state, feed)
                .unwrap()
                .names
        };
        assert!(round(&mut feed).is_empty(), "nothing stored yet");
        let put = |feed: &mut Scripted, c: &StoredCert, name: &str| {
            feed.put(
                &format!("{CERTS}{name}"),
                &serde_json::to_string(c).unwrap(),
            )
            .unwrap();
            feed.put(HEAD, "{}").unwrap();
        };
        put(&mut feed, &cert("2026-09-01T00:00:00Z"), "web.example.com");
        put(&mut feed, &cert("2026-09-01T00:00:00Z"), "gone.example.com");
        assert_eq!(round(&mut feed), ["web.example.com"], "served ones only");
        let pem = system
            .read(&certs::pem_path(&paths, "web.example.com"))
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&pem).ends_with("-----END PRIVATE KEY-----\n"));
        assert!(round(&mut feed).is_empty(), "the head did not move");
        feed.put(HEAD, "{}").unwrap();
        assert!(
            round(&mut feed).is_empty(),
            "the same certificate is installed"
        );
        put(&mut feed, &cert("2026-12-01T00:00:00Z"), "web.example.com");
        assert_eq!(round(&mut feed), ["web.example.com"], "a renewed one");
        let meta = certs::read_meta(&system, &paths, "web.example.com")
            .unwrap()
            .unwrap();
        assert_eq!(meta.not_after, "2026-12-01T00:00:00Z");
    }
}
