//! `sc certificates` (list) and `sc certificates renew [NAME] [--force]`.

use crate::failure::FailureKind;

use super::{Failure, Invocation};
use crate::front::acme::{self, AcmeRenewalInfo, AcmeSettings, AcmeStore, DnsResolver, Row};
use crate::system::{LockKind, Request, System};

/// The ACME store of this host: the cluster's, or its own files.
fn store<'a>(
    inv: &'a Invocation,
    system: &'a dyn System,
    settings: &AcmeSettings,
) -> Result<Box<dyn AcmeStore + 'a>, Failure> {
    let clusters = inv.clusters()?;
    Ok(crate::cluster::acme::store(
        system,
        &inv.paths,
        &clusters,
        &inv.hostname,
        settings,
    )?)
}

fn rows(
    inv: &Invocation,
    system: &dyn System,
    settings: &AcmeSettings,
    store: &dyn AcmeStore,
    only: Option<&str>,
    force: bool,
) -> Result<Vec<Row>, Failure> {
    let clusters = inv.clusters()?;
    let host = clusters.host(&inv.hostname).ok_or_else(|| {
        Failure::new(
            FailureKind::Config,
            format!(
                "this host ({}) is not defined in clusters.json",
                inv.hostname
            ),
        )
    })?;
    let state = inv.caller.visible(crate::store::read(system, &inv.paths)?);
    if let Some(name) = only
        && !state
            .containers
            .iter()
            .any(|(n, c)| n.as_str() == name && (store.cluster_wide() || c.host == host.name))
    {
        return Err(Failure::new(
            FailureKind::NotFound,
            format!("no container {name} on this host"),
        ));
    }
    let resolver = DnsResolver::for_host(system, &inv.paths, host, settings);
    let ari = AcmeRenewalInfo::new(store, settings)?;
    Ok(acme::survey(
        system,
        &inv.paths,
        &state,
        host,
        settings,
        &resolver,
        store,
        &ari,
        system.now(),
        only,
        force,
    )?)
}

/// `sc certificates`: one row per container of this host.
pub fn list(inv: &Invocation, json: bool) -> Result<(), Failure> {
    let system = inv.system();
    let settings = AcmeSettings::load(system, &inv.paths)?;
    let store = store(inv, system, &settings)?;
    let rows = rows(inv, system, &settings, store.as_ref(), None, false)?;
    if json {
        Failure::print(&serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.source
                    .map_or("none", |s| match s {
                        crate::front::certs::CertSource::Internal => "internal",
                        crate::front::certs::CertSource::Acme => "acme",
                    })
                    .to_owned(),
                r.not_after.clone().unwrap_or_else(|| "-".into()),
                r.next_action.clone(),
                r.last_error
                    .as_deref()
                    .map(|e| format!("{} ({} failures)", e.replace('\n', " "), r.failures))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NAME", "SOURCE", "NOT_AFTER", "NEXT", "LAST_ERROR"].map(String::from);
    let mut widths = [0usize; 4];
    for line in std::iter::once(&header).chain(&table) {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in std::iter::once(&header).chain(&table) {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            match widths.get(i) {
                Some(w) => text.push_str(&format!("{cell:<w$}  ")),
                None => text.push_str(cell),
            }
        }
        Failure::print(text.trim_end())?;
    }
    Ok(())
}

/// `sc certificates renew [NAME] [--force]`: run the policy now; progress on stderr. Fails
/// (non-zero exit) when an order failed, so the timer's unit shows up as failed.
pub fn renew(inv: &Invocation, json: bool, only: Option<&str>, force: bool) -> Result<(), Failure> {
    let system = inv.system();
    let settings = AcmeSettings::load(system, &inv.paths)?;
    let dir = acme::acme_dir(&inv.paths);
    system.create_dir(&dir, 0o700)?;
    let lock_path = dir.join("renew.lock");
    let _lock = system
        .lock(&lock_path, LockKind::ExclusiveNow)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Failure::new(
                FailureKind::InUse,
                "another `sc certificates renew` is running",
            ),
            _ => Failure::new(FailureKind::System, format!("{}: {e}", lock_path.display())),
        })?;
    let store = store(inv, system, &settings)?;
    let rows = rows(inv, system, &settings, store.as_ref(), only, force)?;
    let report = acme::renew(
        system,
        &inv.paths,
        &settings,
        store.as_ref(),
        &rows,
        only.is_some(),
        &|| system.now(),
        &mut |line| eprintln!("sc: certificates: {line}"),
    )?;
    if !report.installed.is_empty() {
        // haproxy picks the new certificates up with the next regenerate.
        if let Err(e) = system.systemd(&Request::Start(super::regenerate::UNIT.into())) {
            eprintln!("sc: certificates: installed, but regenerating failed: {e}");
        }
    }
    inv.audit(&if report.failed.is_empty() {
        format!("ok: {} installed", report.installed.len())
    } else {
        format!(
            "error: {} installed, {} failed",
            report.installed.len(),
            report.failed.len()
        )
    });
    if json {
        Failure::print(&serde_json::to_string_pretty(&report)?)?;
    }
    match report.failed.len() {
        0 => Ok(()),
        n => Err(Failure::new(
            FailureKind::System,
            format!(
                "{n} order(s) failed: {}",
                report
                    .failed
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
