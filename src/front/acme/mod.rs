//! Certificates from an ACME CA (Let's Encrypt by default) over HTTP-01, with the policy that
//! decides when to order: only for names that resolve to this host, never while a valid ACME
//! certificate is not yet due (the CA's renewal window from ARI, else [`RENEW_BEFORE`] before
//! expiry), and with an exponential back-off after
//! failures so a broken domain does not hammer the CA.
//!
//! A host alone keeps its state under `/var/lib/srvctl/acme/` (0700): `account.json` (the
//! account's key, 0600) and `state.json` (per container: failures, last error, next attempt).
//! The hosts of a cluster keep it once, in etcd: one account, the certificates, the history,
//! the challenge tokens and the order lock of each name ([`AcmeStore`]). Host settings come
//! from `/etc/srvctl/settings.json`: `acme_directory`, `acme_ca_file`, `acme_listen`,
//! `acme_resolvers`, `acme_public_ip`. Whether a name points at this host is asked of DNS,
//! never of the hosts file ([`resolve`]).
//!
//! haproxy forwards `/.well-known/acme-challenge/` of every host to [`DEFAULT_LISTEN`], where
//! a [`Responder`] answers: on a host alone from memory while an order runs, on a host of a
//! cluster (srvctl-sync's) from the tokens in etcd, whichever host ordered.

use std::io;
use std::path::Path;

use jiff::SignedDuration;

mod ari;
mod lock;
mod order;
mod policy;
mod renew;
mod resolve;
mod responder;
mod settings;
mod state;
mod store;

pub use ari::{AcmeRenewalInfo, RenewalInfo, Window, renew_at};
pub use lock::{KEEP_ALIVE, LEASE_TTL, Leases, NameLock, try_lock};
pub use order::{Issued, leaf_not_after, obtain};
pub use policy::{Action, Candidate, Resolution, plan};
pub use renew::{RenewReport, Row, renew, survey};
pub use resolve::{DnsResolver, Resolver, public_ip, resolution};
pub use responder::{Lookup, Responder};
pub use settings::{AcmeSettings, settings_path};
pub use state::{AcmeState, DomainState, acme_dir, backoff};
pub use store::{AcmeStore, LocalAcme, Locked, StoredCert};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Where haproxy forwards `/.well-known/acme-challenge/`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8402";
/// A certificate is renewed once it has less than this left, unless the CA suggests a window.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(30 * 24);
/// The wait after the first failure; it doubles with each further failure…
pub const BACKOFF_FIRST: SignedDuration = SignedDuration::from_hours(1);
/// …up to this.
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_hours(24);

/// Anything that went wrong while obtaining certificates.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, io::Error),
    /// A settings or state file is malformed.
    #[error("{0}: {1}")]
    Parse(String, serde_json::Error),
    /// The ACME exchange failed.
    #[error("ACME: {0}")]
    Protocol(String),
    /// No DNS resolver could be set up.
    #[error("DNS: {0}")]
    Dns(String),
    /// Key or CSR generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        Self::Protocol(e.to_string())
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AcmeError + '_ {
    move |e| AcmeError::Io(path.display().to_string(), e)
}

#[cfg(test)]
mod testutil {
    use std::net::IpAddr;

    use jiff::Timestamp;

    use super::{Action, Candidate, DomainState, RenewalInfo, Resolution, Resolver, Window, plan};
    use crate::front::certs::{CertMeta, CertSource};

    pub fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub fn meta(source: CertSource, names: &[&str], not_after: &str) -> CertMeta {
        CertMeta {
            source,
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after: not_after.to_owned(),
            issued: "2026-01-01T00:00:00Z".to_owned(),
            issuer: None,
        }
    }

    pub const NOW: &str = "2026-06-01T00:00:00Z";

    /// A CA without renewal information: the fixed rule only.
    pub struct NoRenewalInfo;

    impl RenewalInfo for NoRenewalInfo {
        fn window(&self, _chain_pem: &str) -> Option<Window> {
            None
        }
    }

    pub struct Fixed(pub Vec<(&'static str, &'static str)>);

    impl Resolver for Fixed {
        fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
            if name.starts_with("timeout.") {
                return Err("timed out".into());
            }
            Ok(self
                .0
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, ip)| ip.parse().unwrap())
                .collect())
        }

        fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String> {
            Ok(self
                .0
                .iter()
                .filter(|(_, a)| a.parse::<IpAddr>() == Ok(ip))
                .map(|(n, _)| (*n).to_owned())
                .collect())
        }
    }

    pub fn decide(
        current: Option<&CertMeta>,
        resolution: &Resolution,
        history: Option<&DomainState>,
        force: bool,
    ) -> Action {
        decide_in(current, None, resolution, history, force)
    }

    pub fn decide_in(
        current: Option<&CertMeta>,
        window: Option<&Window>,
        resolution: &Resolution,
        history: Option<&DomainState>,
        force: bool,
    ) -> Action {
        let names = vec!["a.example.com".to_owned()];
        let c = Candidate {
            names: &names,
            current,
            window,
            resolution,
            history,
        };
        plan(&c, t(NOW), force)
    }
}
