//! The certificates of this host's containers: the survey and the renewal run.

use jiff::Timestamp;
use serde::Serialize;

use super::{
    AcmeError, AcmeSettings, AcmeState, Action, Candidate, RenewalInfo, Resolution, Resolver,
    io_at, obtain, plan, public_ip, resolution,
};
use crate::front::certs::{self, CertSource};
use crate::system::System;
use crate::system::paths::Paths;

/// One container's certificate and what happens next.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The container.
    pub name: String,
    /// The names its certificate must cover.
    pub names: Vec<String>,
    /// Who issued the installed certificate (none: there is none).
    pub source: Option<CertSource>,
    /// When the installed certificate expires.
    pub not_after: Option<String>,
    /// What happens next, in words.
    pub next_action: String,
    /// The last error, if the last order failed.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub failures: u32,
    /// The decision.
    #[serde(skip)]
    pub action: Action,
}

/// The certificates of this host's containers (or only `only`) and the policy's decision for
/// each at `now`, with the CA's renewal windows from `ari`.
#[allow(clippy::too_many_arguments)]
pub fn survey(
    system: &dyn System,
    paths: &Paths,
    state: &crate::model::State,
    host: &crate::config::cluster::Host,
    settings: &AcmeSettings,
    resolver: &dyn Resolver,
    ari: &dyn RenewalInfo,
    history: &AcmeState,
    now: Timestamp,
    only: Option<&str>,
    force: bool,
) -> Result<Vec<Row>, AcmeError> {
    // A broken settings.json is reported by srvctl-regenerate; here it only loses the preview
    // names.
    let site = crate::config::site::Settings::load(system, paths).unwrap_or_default();
    let mine: Vec<(&str, Vec<String>)> = state
        .containers
        .iter()
        .filter(|(name, c)| c.host == host.name && only.is_none_or(|o| o == name.as_str()))
        .map(|(name, _)| (name.as_str(), certs::names_of(state, name, &site)))
        .collect();
    let here = public_ip(host, settings);
    let resolved: Vec<(Resolution, Vec<String>)> =
        parallel(&mine, |(_, names)| resolution(resolver, names, here));
    let mut current = Vec::with_capacity(mine.len());
    for (name, _) in &mine {
        let pem_path = certs::pem_path(paths, name);
        let meta = certs::read_meta(system, paths, name).map_err(io_at(&pem_path))?;
        // The chain of an ACME certificate, whose renewal window the CA may suggest.
        let chain = match &meta {
            Some(m) if m.source == CertSource::Acme => system
                .read(&pem_path)
                .map_err(io_at(&pem_path))?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        current.push((meta, chain));
    }
    let windows = parallel(&current, |(_, chain)| {
        chain.as_deref().and_then(|c| ari.window(c))
    });
    let mut rows = Vec::with_capacity(mine.len());
    for ((((name, _), (resolved, names)), (current, _)), window) in
        mine.into_iter().zip(resolved).zip(current).zip(windows)
    {
        let h = history.domains.get(name);
        let action = plan(
            &Candidate {
                names: &names,
                current: current.as_ref(),
                window: window.as_ref(),
                resolution: &resolved,
                history: h,
            },
            now,
            force,
        );
        rows.push(Row {
            name: name.to_owned(),
            names,
            source: current.as_ref().map(|m| m.source),
            not_after: current.map(|m| m.not_after),
            next_action: action.describe(),
            last_error: h.and_then(|h| h.last_error.clone()),
            failures: h.map_or(0, |h| h.failures),
            action,
        });
    }
    Ok(rows)
}

/// `f` over `items` on a few threads, in order: name lookups of thousands of sites take a
/// while one after the other.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const THREADS: usize = 16;
    let chunk = items.len().div_ceil(THREADS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a lookup thread panicked"))
            .collect()
    })
}

/// What a renewal run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewReport {
    /// Containers that got a new certificate.
    pub installed: Vec<String>,
    /// Containers whose order failed, with the error.
    pub failed: Vec<(String, String)>,
}

/// Order a certificate for every row whose action is [`Action::Order`], recording failures in
/// the state and reporting progress through `progress`. Unless the rows are `only` some of the
/// host's containers, the state forgets containers that are not among them.
#[allow(clippy::too_many_arguments)]
pub fn renew(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
    rows: &[Row],
    only: bool,
    history: &mut AcmeState,
    now: &dyn Fn() -> Timestamp,
    progress: &mut dyn FnMut(&str),
) -> Result<RenewReport, AcmeError> {
    let mut report = RenewReport::default();
    if !only {
        let before = history.domains.len();
        history.retain(rows);
        if history.domains.len() != before {
            history.save(system, paths)?;
        }
    }
    for row in rows {
        let Action::Order(why) = &row.action else {
            progress(&format!("{}: {}", row.name, row.next_action));
            continue;
        };
        progress(&format!(
            "{}: ordering a certificate for {} ({why}) from {}",
            row.name,
            row.names.join(", "),
            settings.directory
        ));
        match obtain(system, paths, settings, &row.name, &row.names, now()) {
            Ok(meta) => {
                progress(&format!(
                    "{}: installed, valid until {}",
                    row.name, meta.not_after
                ));
                history.domains.remove(&row.name);
                report.installed.push(row.name.clone());
            }
            Err(e) => {
                let error = e.to_string();
                let entry = history.domains.entry(row.name.clone()).or_default();
                entry.failed(now(), &error);
                progress(&format!(
                    "{}: failed ({error}); next attempt after {}",
                    row.name,
                    entry.next_attempt.as_deref().unwrap_or("?")
                ));
                report.failed.push((row.name.clone(), error));
            }
        }
        history.save(system, paths)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::testutil::{Fixed, NOW, NoRenewalInfo, decide, t};
    use crate::front::acme::{DomainState, Window};
    use std::path::Path;

    #[test]
    fn a_failed_order_is_recorded_with_its_back_off() {
        use crate::system::Recording;
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let settings = AcmeSettings {
            // Nothing listens on port 1: the directory cannot be fetched.
            directory: "https://127.0.0.1:1/directory".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..AcmeSettings::default()
        };
        let names = vec!["a.example.com".to_owned()];
        let action = decide(None, &Resolution::Here, None, false);
        let row = Row {
            name: "a.example.com".into(),
            names: names.clone(),
            source: None,
            not_after: None,
            next_action: action.describe(),
            last_error: None,
            failures: 0,
            action,
        };
        let mut history = AcmeState {
            domains: [("gone.example.com".to_owned(), DomainState::default())].into(),
        };
        let mut lines = Vec::new();
        let report = renew(
            &sys,
            &paths,
            &settings,
            std::slice::from_ref(&row),
            false,
            &mut history,
            &|| t(NOW),
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap();
        assert!(report.installed.is_empty());
        assert_eq!(report.failed.len(), 1, "{lines:?}");
        assert!(lines[0].contains("ordering"), "{lines:?}");
        assert!(lines[1].contains("failed"), "{lines:?}");
        let saved = AcmeState::load(&sys, &paths).unwrap();
        assert_eq!(saved, history);
        assert_eq!(
            saved.domains.len(),
            1,
            "the destroyed container is forgotten"
        );
        let h = &saved.domains["a.example.com"];
        assert_eq!(h.failures, 1);
        assert_eq!(h.next_attempt.as_deref(), Some("2026-06-01T01:00:00Z"));
        assert!(
            h.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("ACME"))
        );
        // Nothing is attempted before the back-off ends, and nothing on disk but the state.
        assert_eq!(
            decide(None, &Resolution::Here, Some(h), false),
            Action::RetryAt(t("2026-06-01T01:00:00Z"))
        );
        assert!(
            certs::read_meta(&sys, &paths, "a.example.com")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn survey_covers_this_hosts_containers_with_the_names_that_resolve_here() {
        use crate::system::Recording;
        let state = crate::model::State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root", "altnames": ["shop.example.com"]},
              "far.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap();
        let clusters = crate::config::cluster::Clusters::parse(
            Path::new("clusters.json"),
            r#"{"c": {"h1.test": {"host_ip": "192.0.2.11", "hostnet": 1, "role": "ca"},
                      "h2.test": {"host_ip": "192.0.2.12", "hostnet": 2}}}"#,
        )
        .unwrap();
        let host = clusters.host("h1.test").unwrap();
        let resolver = Fixed(vec![
            ("web.example.com", "192.0.2.11"),
            ("shop.example.com", "192.0.2.11"),
            ("far.example.com", "192.0.2.11"),
        ]);
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let survey = |settings: &AcmeSettings| {
            survey(
                &sys,
                &paths,
                &state,
                host,
                settings,
                &resolver,
                &NoRenewalInfo,
                &AcmeState::default(),
                t(NOW),
                None,
                false,
            )
            .unwrap()
        };
        let rows = survey(&AcmeSettings::default());
        assert_eq!(rows.len(), 1, "only this host's containers: {rows:?}");
        assert_eq!(rows[0].name, "web.example.com");
        assert_eq!(rows[0].names, ["web.example.com", "shop.example.com"]);
        assert_eq!(rows[0].action, Action::Order("no certificate".into()));
        // Behind NAT the names point at the public address, not at host_ip.
        let nat = AcmeSettings {
            public_ip: Some("203.0.113.7".parse().unwrap()),
            ..AcmeSettings::default()
        };
        let rows = survey(&nat);
        assert!(
            rows[0]
                .next_action
                .contains("resolves to 192.0.2.11, not to this host"),
            "{rows:?}"
        );
    }

    /// A CA that suggests one window for every chain it is shown, and records them.
    struct Suggests(Window, std::sync::Mutex<Vec<String>>);

    impl RenewalInfo for Suggests {
        fn window(&self, chain_pem: &str) -> Option<Window> {
            self.1.lock().unwrap().push(chain_pem.to_owned());
            Some(self.0)
        }
    }

    #[test]
    fn an_acme_certificate_is_renewed_in_the_window_the_ca_suggests() {
        use crate::front::acme::testutil::meta;
        use crate::system::Recording;
        let state = crate::model::State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap();
        let clusters = crate::config::cluster::Clusters::parse(
            Path::new("clusters.json"),
            r#"{"c": {"h1.test": {"host_ip": "192.0.2.11", "hostnet": 1}}}"#,
        )
        .unwrap();
        let host = clusters.host("h1.test").unwrap();
        let resolver = Fixed(vec![
            ("web.example.com", "192.0.2.11"),
            ("www.web.example.com", "192.0.2.11"),
        ]);
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let names = ["web.example.com", "www.web.example.com"];
        let installed = meta(CertSource::Acme, &names, "2026-08-31T00:00:00Z");
        const CHAIN: &str = "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n";
        const KEY: &str = "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n";
        certs::install(&sys, &paths, "web.example.com", CHAIN, KEY, &installed).unwrap();
        let window = Window {
            start: t("2026-07-10T00:00:00Z"),
            end: t("2026-07-10T00:00:00Z"),
        };
        let ca = Suggests(window, Default::default());
        let rows = survey(
            &sys,
            &paths,
            &state,
            host,
            &AcmeSettings::default(),
            &resolver,
            &ca,
            &AcmeState::default(),
            t(NOW),
            None,
            false,
        )
        .unwrap();
        assert_eq!(rows[0].action, Action::RenewAt(window.start), "{rows:?}");
        let shown = ca.1.lock().unwrap().clone();
        assert_eq!(shown.len(), 1);
        assert!(shown[0].starts_with(CHAIN), "{shown:?}");
        // Without a window: 30 days before expiry.
        let rows = survey(
            &sys,
            &paths,
            &state,
            host,
            &AcmeSettings::default(),
            &resolver,
            &NoRenewalInfo,
            &AcmeState::default(),
            t(NOW),
            None,
            false,
        )
        .unwrap();
        assert_eq!(rows[0].action, Action::RenewAt(t("2026-08-01T00:00:00Z")));
    }
}
