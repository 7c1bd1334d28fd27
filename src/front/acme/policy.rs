//! The decision for one container: order now, wait for renewal, back off, or wait for DNS.

use std::net::IpAddr;

use jiff::Timestamp;

use super::{DomainState, Window, renew_at};
use crate::front::certs::{CertMeta, CertSource};

/// How a name resolves, as far as the policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Every name resolves to this host.
    Here,
    /// A name does not resolve here: the name and what it resolves to (empty: nothing).
    Elsewhere(String, Vec<IpAddr>),
    /// Where a name points could not be found out: the name and why (no resolver, a timeout).
    Unknown(String, String),
}

/// Everything the policy looks at for one container.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The names its certificate must cover.
    pub names: &'a [String],
    /// The installed certificate, if any.
    pub current: Option<&'a CertMeta>,
    /// The CA's renewal window for it (ARI), if it gives one.
    pub window: Option<&'a Window>,
    /// Whether its names resolve here.
    pub resolution: &'a Resolution,
    /// Its order history.
    pub history: Option<&'a DomainState>,
}

/// What to do for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Order a certificate now.
    Order(String),
    /// Nothing until the time given (renewal is due then).
    RenewAt(Timestamp),
    /// Back off after a failure until the time given.
    RetryAt(Timestamp),
    /// Its names do not resolve to this host yet.
    WaitForDns(String),
}

impl Action {
    /// The action as shown in `sc certificates`.
    pub fn describe(&self) -> String {
        match self {
            Self::Order(why) => format!("order now ({why})"),
            Self::RenewAt(t) => format!("renew after {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            Self::RetryAt(t) => format!("retry after {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            Self::WaitForDns(why) => format!("waiting for DNS: {why}"),
        }
    }
}

fn parse_time(raw: &str) -> Option<Timestamp> {
    raw.parse().ok()
}

/// Decide what to do for `c` at `now`. `force` orders even while a valid certificate exists or
/// during a back-off, but never for a name that does not resolve here.
pub fn plan(c: &Candidate<'_>, now: Timestamp, force: bool) -> Action {
    if let Resolution::Elsewhere(name, ips) = c.resolution {
        return Action::WaitForDns(if ips.is_empty() {
            format!("{name} does not resolve yet")
        } else {
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            format!("{name} resolves to {}, not to this host", ips.join(", "))
        });
    }
    if let Resolution::Unknown(name, why) = c.resolution {
        return Action::WaitForDns(format!("cannot look {name} up: {why}"));
    }
    let acme = c.current.filter(|m| m.source == CertSource::Acme);
    let covers = acme.is_some_and(|m| c.names.iter().all(|n| m.names.contains(n)));
    let expires = acme.and_then(|m| parse_time(&m.not_after));
    let reason = match (c.current, covers, expires) {
        (None, _, _) => "no certificate".to_owned(),
        (Some(m), _, _) if m.source == CertSource::Internal => "internal certificate".to_owned(),
        (Some(_), false, _) => "names changed".to_owned(),
        (Some(_), true, None) => "unreadable expiry".to_owned(),
        (Some(_), true, Some(t)) => {
            let own = c.names.first().map_or("", String::as_str);
            let renew_at = renew_at(own, t, c.window);
            if now < renew_at && !force {
                return Action::RenewAt(renew_at);
            }
            if now < renew_at {
                "forced".to_owned()
            } else if now >= t {
                "expired".to_owned()
            } else if c.window.is_some() {
                "the CA's renewal window".to_owned()
            } else {
                format!("expires {}", t.strftime("%Y-%m-%d"))
            }
        }
    };
    if !force
        && let Some(next) = c.history.and_then(DomainState::next_attempt)
        && now < next
    {
        return Action::RetryAt(next);
    }
    Action::Order(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::backoff;
    use crate::front::acme::testutil::{NOW, decide, decide_in, meta, t};
    use jiff::SignedDuration;

    #[test]
    fn orders_only_once_the_name_resolves_here() {
        let elsewhere =
            Resolution::Elsewhere("a.example.com".into(), vec!["192.0.2.9".parse().unwrap()]);
        let a = decide(None, &elsewhere, None, true);
        assert!(
            matches!(&a, Action::WaitForDns(w) if w.contains("192.0.2.9")),
            "{a:?}"
        );
        let nowhere = Resolution::Elsewhere("a.example.com".into(), vec![]);
        assert!(
            decide(None, &nowhere, None, false)
                .describe()
                .contains("does not resolve")
        );
        let unknown = Resolution::Unknown("a.example.com".into(), "timed out".into());
        assert_eq!(
            decide(None, &unknown, None, true),
            Action::WaitForDns("cannot look a.example.com up: timed out".into())
        );
        assert_eq!(
            decide(None, &Resolution::Here, None, false),
            Action::Order("no certificate".into())
        );
    }

    #[test]
    fn internal_certificates_are_replaced_at_once() {
        let internal = meta(
            CertSource::Internal,
            &["a.example.com"],
            "2036-01-01T00:00:00Z",
        );
        assert_eq!(
            decide(Some(&internal), &Resolution::Here, None, false),
            Action::Order("internal certificate".into())
        );
    }

    #[test]
    fn a_valid_acme_certificate_is_kept_until_30_days_before_expiry() {
        let valid = meta(CertSource::Acme, &["a.example.com"], "2026-08-01T00:00:00Z");
        assert_eq!(
            decide(Some(&valid), &Resolution::Here, None, false),
            Action::RenewAt(t("2026-07-02T00:00:00Z"))
        );
        assert_eq!(
            decide(Some(&valid), &Resolution::Here, None, true),
            Action::Order("forced".into())
        );
        let due = meta(CertSource::Acme, &["a.example.com"], "2026-06-20T00:00:00Z");
        assert_eq!(
            decide(Some(&due), &Resolution::Here, None, false),
            Action::Order("expires 2026-06-20".into())
        );
        let expired = meta(CertSource::Acme, &["a.example.com"], "2026-05-20T00:00:00Z");
        assert_eq!(
            decide(Some(&expired), &Resolution::Here, None, false),
            Action::Order("expired".into())
        );
        let fewer = meta(
            CertSource::Acme,
            &["other.example.com"],
            "2026-08-01T00:00:00Z",
        );
        assert_eq!(
            decide(Some(&fewer), &Resolution::Here, None, false),
            Action::Order("names changed".into())
        );
    }

    #[test]
    fn the_cas_renewal_window_replaces_the_30_days() {
        let valid = meta(CertSource::Acme, &["a.example.com"], "2026-08-01T00:00:00Z");
        let later = Window {
            start: t("2026-07-20T00:00:00Z"),
            end: t("2026-07-20T00:00:00Z"),
        };
        assert_eq!(
            decide_in(Some(&valid), Some(&later), &Resolution::Here, None, false),
            Action::RenewAt(t("2026-07-20T00:00:00Z"))
        );
        // A window that has begun (the CA wants the certificate replaced early): order now.
        let now = Window {
            start: t("2026-05-01T00:00:00Z"),
            end: t("2026-05-01T00:00:00Z"),
        };
        assert_eq!(
            decide_in(Some(&valid), Some(&now), &Resolution::Here, None, false),
            Action::Order("the CA's renewal window".into())
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_day() {
        assert_eq!(backoff(1), SignedDuration::from_hours(1));
        assert_eq!(backoff(2), SignedDuration::from_hours(2));
        assert_eq!(backoff(5), SignedDuration::from_hours(16));
        assert_eq!(backoff(6), SignedDuration::from_hours(24));
        assert_eq!(backoff(1000), SignedDuration::from_hours(24));
        let mut h = DomainState::default();
        h.failed(t(NOW), "connection refused");
        h.failed(t(NOW), "connection refused");
        assert_eq!(h.failures, 2);
        assert_eq!(h.next_attempt.as_deref(), Some("2026-06-01T02:00:00Z"));
        assert_eq!(
            decide(None, &Resolution::Here, Some(&h), false),
            Action::RetryAt(t("2026-06-01T02:00:00Z"))
        );
        assert_eq!(
            decide(None, &Resolution::Here, Some(&h), true),
            Action::Order("no certificate".into())
        );
        let names = vec!["a.example.com".to_owned()];
        let later = Candidate {
            names: &names,
            current: None,
            window: None,
            resolution: &Resolution::Here,
            history: Some(&h),
        };
        assert_eq!(
            plan(&later, t("2026-06-01T02:00:00Z"), false),
            Action::Order("no certificate".into())
        );
    }
}
