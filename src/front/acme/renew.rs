//! The certificates of this host's containers: the survey and the renewal run.

use jiff::Timestamp;
use serde::Serialize;

use super::{
    AcmeError, AcmeSettings, AcmeStore, Action, Candidate, Locked, RenewalInfo, Resolution,
    Resolver, StoredCert, io_at, obtain, plan, public_ip, resolution,
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

/// The certificates of this host's containers (of every container of the cluster when the
/// store is the cluster's), or only `only`, and the policy's decision for each at `now`, with
/// the CA's renewal windows from `ari`.
#[allow(clippy::too_many_arguments)]
pub fn survey(
    system: &dyn System,
    paths: &Paths,
    state: &crate::model::State,
    host: &crate::config::cluster::Host,
    settings: &AcmeSettings,
    resolver: &dyn Resolver,
    store: &dyn AcmeStore,
    ari: &dyn RenewalInfo,
    now: Timestamp,
    only: Option<&str>,
    force: bool,
) -> Result<Vec<Row>, AcmeError> {
    // A broken settings.json is reported by srvctl-regenerate; here it only loses the preview
    // names.
    let site = crate::config::site::Settings::load(system, paths).unwrap_or_default();
    let history = store.history()?;
    let everywhere = store.cluster_wide();
    let mine: Vec<(&str, Vec<String>)> = state
        .containers
        .iter()
        .filter(|(name, c)| {
            (everywhere || c.host == host.name) && only.is_none_or(|o| o == name.as_str())
        })
        .map(|(name, _)| (name.as_str(), certs::names_of(state, name, &site)))
        .collect();
    let mut here = vec![public_ip(host, settings)];
    here.extend(store.other_hosts());
    let resolved: Vec<(Resolution, Vec<String>)> =
        parallel(&mine, |(_, names)| resolution(resolver, names, &here));
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
    /// Containers that got a new certificate (ordered here, or the cluster's, installed).
    pub installed: Vec<String>,
    /// Containers whose order failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Containers that another host of the cluster orders now, with that host.
    pub elsewhere: Vec<(String, String)>,
}

/// Order a certificate for every row whose action is [`Action::Order`], once its name's
/// order lock is this host's, recording failures in the store's history and reporting
/// progress through `progress`. A certificate that another host stored in the meantime is
/// installed instead of ordered. Unless the rows are `only` some of the containers, the
/// history forgets containers that are not among them.
#[allow(clippy::too_many_arguments)]
pub fn renew(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
    store: &dyn AcmeStore,
    rows: &[Row],
    only: bool,
    now: &dyn Fn() -> Timestamp,
    progress: &mut dyn FnMut(&str),
) -> Result<RenewReport, AcmeError> {
    let mut report = RenewReport::default();
    let history = store.history()?;
    if !only {
        for name in history.domains.keys() {
            if !rows.iter().any(|r| &r.name == name) {
                store.record(name, None)?;
            }
        }
    }
    for row in rows {
        let Action::Order(why) = &row.action else {
            progress(&format!("{}: {}", row.name, row.next_action));
            continue;
        };
        let _held = match store.lock(&row.name)? {
            Locked::Held(lock) => lock,
            Locked::Busy(holder) => {
                progress(&format!("{}: {holder} orders it now", row.name));
                report.elsewhere.push((row.name.clone(), holder));
                continue;
            }
        };
        if let Some(stored) = newer_in_store(store, row, now())? {
            stored.install(system, paths, &row.name)?;
            progress(&format!(
                "{}: installed the cluster's certificate, valid until {}",
                row.name, stored.meta.not_after
            ));
            report.installed.push(row.name.clone());
            continue;
        }
        progress(&format!(
            "{}: ordering a certificate for {} ({why}) from {}",
            row.name,
            row.names.join(", "),
            settings.directory
        ));
        match obtain(store, settings, &row.names) {
            Ok(issued) => {
                let cert = StoredCert {
                    meta: crate::front::certs::CertMeta {
                        source: CertSource::Acme,
                        names: row.names.clone(),
                        not_after: issued.not_after.to_string(),
                        issued: now().to_string(),
                        issuer: None,
                    },
                    chain_pem: issued.chain_pem,
                    key_pem: issued.key_pem,
                };
                store.put_certificate(&row.name, &cert)?;
                progress(&format!(
                    "{}: installed, valid until {}",
                    row.name, cert.meta.not_after
                ));
                store.record(&row.name, None)?;
                report.installed.push(row.name.clone());
            }
            Err(e) => {
                let error = e.to_string();
                let mut entry = history.domains.get(&row.name).cloned().unwrap_or_default();
                entry.failed(now(), &error);
                store.record(&row.name, Some(&entry))?;
                progress(&format!(
                    "{}: failed ({error}); next attempt after {}",
                    row.name,
                    entry.next_attempt.as_deref().unwrap_or("?")
                ));
                report.failed.push((row.name.clone(), error));
            }
        }
    }
    Ok(report)
}

/// The certificate the store holds for `row` if it is not the one the survey saw and the
/// policy would keep it (another host ordered it since).
fn newer_in_store(
    store: &dyn AcmeStore,
    row: &Row,
    now: Timestamp,
) -> Result<Option<StoredCert>, AcmeError> {
    let Some(stored) = store.certificate(&row.name)? else {
        return Ok(None);
    };
    if row.not_after.as_deref() == Some(stored.meta.not_after.as_str()) {
        return Ok(None);
    }
    let keep = Candidate {
        names: &row.names,
        current: Some(&stored.meta),
        window: None,
        resolution: &Resolution::Here,
        history: None,
    };
    Ok(matches!(plan(&keep, now, false), Action::RenewAt(_)).then_some(stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::testutil::{Fixed, NOW, NoRenewalInfo, decide, t};
    use crate::front::acme::{AcmeState, DomainState, LocalAcme, Window};
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
        AcmeState {
            domains: [("gone.example.com".to_owned(), DomainState::default())].into(),
        }
        .save(&sys, &paths)
        .unwrap();
        let store = LocalAcme::new(&sys, &paths, &settings);
        let mut lines = Vec::new();
        let report = renew(
            &sys,
            &paths,
            &settings,
            &store,
            std::slice::from_ref(&row),
            false,
            &|| t(NOW),
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap();
        assert!(report.installed.is_empty());
        assert_eq!(report.failed.len(), 1, "{lines:?}");
        assert!(lines[0].contains("ordering"), "{lines:?}");
        assert!(lines[1].contains("failed"), "{lines:?}");
        let saved = AcmeState::load(&sys, &paths).unwrap();
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

    /// A cluster's store as a fake: the lock held by `busy` if set, `stored` as the
    /// certificate another host put.
    #[derive(Default)]
    struct Shared {
        busy: Option<String>,
        stored: Option<StoredCert>,
    }

    impl AcmeStore for Shared {
        fn cluster_wide(&self) -> bool {
            true
        }
        fn other_hosts(&self) -> Vec<std::net::IpAddr> {
            Vec::new()
        }
        fn account(&self, _: &str) -> Result<Option<Vec<u8>>, AcmeError> {
            Ok(None)
        }
        fn put_account(&self, _: &str, json: &[u8]) -> Result<Vec<u8>, AcmeError> {
            Ok(json.to_vec())
        }
        fn lock(&self, _: &str) -> Result<Locked, AcmeError> {
            Ok(match &self.busy {
                Some(h) => Locked::Busy(h.clone()),
                None => Locked::Held(None),
            })
        }
        fn publish(&self, _: &str, _: &str) -> Result<(), AcmeError> {
            Ok(())
        }
        fn withdraw(&self, _: &str) -> Result<(), AcmeError> {
            Ok(())
        }
        fn history(&self) -> Result<AcmeState, AcmeError> {
            Ok(AcmeState::default())
        }
        fn record(&self, _: &str, _: Option<&DomainState>) -> Result<(), AcmeError> {
            Ok(())
        }
        fn certificate(&self, _: &str) -> Result<Option<StoredCert>, AcmeError> {
            Ok(self.stored.clone())
        }
        fn put_certificate(&self, _: &str, _: &StoredCert) -> Result<(), AcmeError> {
            unreachable!("nothing is ordered here")
        }
    }

    #[test]
    fn a_name_another_host_orders_or_just_stored_is_not_ordered_again() {
        use crate::front::certs::CertMeta;
        use crate::system::Recording;
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        // An order would fail at once: nothing listens on port 1.
        let settings = AcmeSettings {
            directory: "https://127.0.0.1:1/directory".into(),
            ..AcmeSettings::default()
        };
        let action = decide(None, &Resolution::Here, None, false);
        let row = Row {
            name: "a.example.com".into(),
            names: vec!["a.example.com".to_owned()],
            source: None,
            not_after: None,
            next_action: action.describe(),
            last_error: None,
            failures: 0,
            action,
        };
        let run = |store: &Shared| {
            let mut lines = Vec::new();
            let report = renew(
                &sys,
                &paths,
                &settings,
                store,
                std::slice::from_ref(&row),
                false,
                &|| t(NOW),
                &mut |l| lines.push(l.to_owned()),
            )
            .unwrap();
            (report, lines)
        };
        let busy = Shared {
            busy: Some("h2.test".into()),
            ..Shared::default()
        };
        let (report, lines) = run(&busy);
        assert_eq!(
            report.elsewhere,
            [("a.example.com".into(), "h2.test".into())]
        );
        assert!(report.installed.is_empty() && report.failed.is_empty());
        assert_eq!(lines, ["a.example.com: h2.test orders it now"]);

        let stored = StoredCert {
            chain_pem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----".into(),
            meta: CertMeta {
                source: CertSource::Acme,
                names: vec!["a.example.com".into()],
                not_after: "2026-09-01T00:00:00Z".into(),
                issued: NOW.into(),
                issuer: None,
            },
        };
        let fresh = Shared {
            stored: Some(stored.clone()),
            ..Shared::default()
        };
        let (report, lines) = run(&fresh);
        assert_eq!(report.installed, ["a.example.com"], "{lines:?}");
        assert!(report.failed.is_empty(), "nothing was ordered: {lines:?}");
        assert!(
            lines[0].contains("installed the cluster's certificate"),
            "{lines:?}"
        );
        assert_eq!(
            certs::read_meta(&sys, &paths, "a.example.com").unwrap(),
            Some(stored.meta.clone())
        );

        // A stored certificate that is due itself is ordered anew.
        let due = Shared {
            stored: Some(StoredCert {
                meta: CertMeta {
                    not_after: "2026-06-10T00:00:00Z".into(),
                    ..stored.meta
                },
                ..stored
            }),
            ..Shared::default()
        };
        let (report, lines) = run(&due);
        assert_eq!(report.failed.len(), 1, "{lines:?}");
        assert!(lines[0].contains("ordering"), "{lines:?}");
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
                &LocalAcme::new(&sys, &paths, settings),
                &NoRenewalInfo,
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
        let settings = AcmeSettings::default();
        let store = LocalAcme::new(&sys, &paths, &settings);
        let rows = survey(
            &sys,
            &paths,
            &state,
            host,
            &settings,
            &resolver,
            &store,
            &ca,
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
            &settings,
            &resolver,
            &store,
            &NoRenewalInfo,
            t(NOW),
            None,
            false,
        )
        .unwrap();
        assert_eq!(rows[0].action, Action::RenewAt(t("2026-08-01T00:00:00Z")));
    }
}
