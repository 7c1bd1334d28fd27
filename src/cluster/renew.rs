//! Host identities renewed through the cluster datastore, by the sync services.
//!
//! ```text
//!  host h2 (certificate expires within RENEW_BEFORE)   CA host h1
//!    host.key.next (0600), puts csr/h2   ───────────►  signs it (the checks of `sc cluster
//!                                                      sign`), puts cert/h2: the bundle, or
//!    installs the bundle against host.key.next  ◄────  the reason it was refused
//!    host.key.next → host.key, deletes csr/h2 and
//!    cert/h2, try-restarts srvctl-etcd and the mesh,
//!    runs srvctl-regenerate (the site issuer, renewed
//!    with the identity, re-issues the front's certificates)
//! ```
//!
//! Only the request and the certificates travel; no key leaves its host. The first join of a
//! host stays by hand (`sc cluster request`, `sign`, `accept`): a host without a certificate
//! cannot reach etcd. A refused request stays answered (`cert/<host>` holds the reason) until
//! an operator deletes that key; the CA host then signs the pending request again.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::pki;
use super::sync::Feed;
use crate::config::cluster::{Clusters, Host};
use crate::system::paths::Paths;
use crate::system::{Request, System};

/// A host renews its identity when it expires within this time.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24 * 30);
/// The pending requests, below the cluster's prefix: `csr/<host>` (PEM).
pub const CSR: &str = "csr/";
/// The CA host's answers, below the cluster's prefix: `cert/<host>` (an [`Answer`]).
pub const CERT: &str = "cert/";

/// The CA host's answer to a request, as `cert/<host>` holds it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// The host's certificate and then the cluster CA's, then the host's site issuer and the
    /// site root (PEM), as `sc cluster sign` prints.
    Bundle(String),
    /// Why the request was refused.
    Refused(String),
}

impl Answer {
    /// The answer `text` holds; text that is no answer reads as a refusal that says so.
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|e| {
            Self::Refused(format!("the answer is not one of the CA host's: {e}"))
        })
    }

    /// The answer as `cert/<host>` holds it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }
}

/// What a host does about its own identity in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStep {
    /// Nothing: the certificate is not due, or its request waits for the CA host.
    Wait,
    /// Make the next key (if absent) and put the request for it.
    Request,
    /// Install the bundle the CA host signed.
    Install(String),
    /// The CA host refused the request: say why, and wait for an operator.
    Refused(String),
}

/// Whether a certificate that expires at `expires` is due for renewal at `now`; a host
/// without a certificate is not (it joins by hand).
pub fn due(expires: Option<Timestamp>, now: Timestamp) -> bool {
    expires.is_some_and(|t| t.duration_since(now) < RENEW_BEFORE)
}

/// A host's step, given when its certificate expires, whether its next key exists, whether
/// its request is pending under `csr/<host>` and the CA host's answer under `cert/<host>`.
pub fn host_step(
    expires: Option<Timestamp>,
    now: Timestamp,
    next_key: bool,
    requested: bool,
    answer: Option<Answer>,
) -> HostStep {
    match answer {
        Some(Answer::Bundle(bundle)) => HostStep::Install(bundle),
        Some(Answer::Refused(why)) => HostStep::Refused(why),
        None if due(expires, now) && !(requested && next_key) => HostStep::Request,
        None => HostStep::Wait,
    }
}

/// The requests the CA host answers: every `csr/<host>` without a `cert/<host>`, host and PEM.
pub fn unanswered<'r>(
    requests: &'r BTreeMap<String, String>,
    answers: &BTreeMap<String, String>,
) -> Vec<(&'r str, &'r str)> {
    requests
        .iter()
        .filter(|(host, _)| !answers.contains_key(*host))
        .map(|(host, csr)| (host.as_str(), csr.as_str()))
        .collect()
}

/// The CA host `me`'s answer to the request found under `csr/<host>`: signed with the checks
/// of `sc cluster sign`, and only if it asks for exactly `host`.
pub fn answer(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
    host: &str,
    csr: &str,
) -> Answer {
    match pki::sign(system, paths, clusters, me, csr, pki::HOST_VALIDITY_DAYS) {
        Ok(signed) if signed.host == host => Answer::Bundle(signed.bundle),
        Ok(signed) => Answer::Refused(format!(
            "the request under {CSR}{} asks for {}",
            crate::model::names::shown(host),
            signed.host
        )),
        Err(e) => Answer::Refused(e.to_string()),
    }
}

/// What one round of renewal did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Renewed {
    /// What to log (a line may hold text from the datastore: keep it on one line).
    pub log: Vec<String>,
    /// What systemd must do so that the services load a new identity.
    pub restarts: Vec<Request>,
}

/// One round of renewal on host `me`: on the CA host, answer every pending request; on every
/// host, take the step of [`host_step`] for its own identity.
pub fn round(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
    feed: &mut dyn Feed,
) -> Result<Renewed, String> {
    let mut renewed = Renewed::default();
    let requests = feed.entries(CSR)?;
    let mut answers = feed.entries(CERT)?;
    if me.ca {
        for (host, csr) in unanswered(&requests, &answers) {
            let answer = answer(system, paths, clusters, me, host, csr);
            let said = match &answer {
                Answer::Bundle(_) => format!("signed the renewal of {host}"),
                Answer::Refused(why) => format!(
                    "refused the renewal of {}: {why}",
                    crate::model::names::shown(host)
                ),
            };
            // The host may have taken an earlier answer and deleted its request since this
            // round read it: answer only a request that is still there.
            let key = format!("{CERT}{host}");
            if feed.put_while(&key, &answer.to_json(), &format!("{CSR}{host}"), csr)? {
                renewed.log.push(said);
                answers.insert(host.to_owned(), answer.to_json());
            }
        }
    }
    let step = host_step(
        pki::expiry(system, paths),
        system.now(),
        pki::has_next_key(system, paths),
        requests.contains_key(&me.name),
        answers.get(&me.name).map(|text| Answer::parse(text)),
    );
    match step {
        HostStep::Wait => {}
        HostStep::Request => {
            let csr = pki::renewal_request(system, paths, me).map_err(|e| e.to_string())?;
            feed.put(&format!("{CSR}{}", me.name), &csr)?;
            renewed
                .log
                .push("the host certificate expires soon: asked the CA host for a new one".into());
        }
        HostStep::Install(bundle) => {
            let installed = pki::accept_renewal(system, paths, me, &bundle);
            if let Err(e) = &installed {
                // Start again with a new key: the bundle answers no key of this host.
                let next = paths.host(pki::HOST_KEY_NEXT);
                system.remove(&next).map_err(|e| e.to_string())?;
                renewed
                    .log
                    .push(format!("refused the CA host's new certificate: {e}"));
            }
            // The request first: the CA host answers only a request that is still there.
            feed.delete(&format!("{CSR}{}", me.name))?;
            feed.delete(&format!("{CERT}{}", me.name))?;
            if installed.is_ok() {
                renewed
                    .log
                    .push("installed the renewed host certificate".into());
                renewed.restarts = restarts(system);
            }
        }
        HostStep::Refused(why) => renewed.log.push(format!(
            "the CA host refused this host's renewal: {why} (delete {CERT}{} to ask again)",
            me.name
        )),
    }
    Ok(renewed)
}

/// The services that hold the host identity: the etcd member and the mesh tunnels, restarted
/// if they run; then srvctl-regenerate, which issues the front's internal certificates again
/// with the renewed site issuer.
fn restarts(system: &dyn System) -> Vec<Request> {
    let tunnels = system
        .unit_states("srvctl-mesh@*")
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name);
    std::iter::once(super::member::UNIT.to_owned())
        .chain(tunnels)
        .map(Request::TryRestart)
        .chain([Request::Start(
            crate::ops::follow_up::REGENERATE_UNIT.into(),
        )])
        .collect()
}

#[cfg(test)]
mod tests;
