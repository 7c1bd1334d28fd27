//! `sc import-v3 DIR`: read a srvctl 3 datastore (`users.json`, `containers.json`,
//! `hosts.json`) into this one, reporting everything that could not be mapped.
//!
//! What maps: resellers (users with a `reseller_id` above 0) get the lowest free id of 1..=15;
//! users get the lowest free index inside their reseller and keep their srvctl 3 UID when it is
//! free (files on disk are owned by it); containers are placed on the host whose srvctl 3
//! `hostnet` matches the second octet of their address, keep their last octet when it is free
//! on the new bridge, and keep `http_port`, `https_port`, `type` (as `image`), their aliases,
//! alternative names and redirects. Every other field is kept verbatim under the record's `v3`
//! key (`{"v3": {"host": …}}`), listed in the report and never used: a srvctl 3 field that
//! happens to share a name with a live field (`memory_max`) does not take effect.
//!
//! The same checks as every other command apply: account names are checked like add-user's,
//! every name of an imported site must be free in the name registry ([`crate::model::claims`]). A
//! name that belongs to someone else refuses the whole import, naming the record and the owner.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::addr::plan::{Bridge, ContainerNumber};
use crate::config::cluster::Clusters;
use crate::model::claims::{self, ClaimError, HostAccounts, Reserved};
use crate::model::names::{AccountName, ContainerName, shown};
use crate::model::web::{Domain, Redirect, WebSettings};
use crate::model::{OPERATOR, State};
use crate::ops::{self, Context, OpError};
use crate::system::System;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Resellers imported.
    pub resellers: Vec<String>,
    /// Users imported.
    pub users: Vec<String>,
    /// Containers imported, with their new address.
    pub containers: Vec<(String, String)>,
    /// Records that were not imported, and why.
    pub skipped: Vec<String>,
    /// Records imported with a change or with fields kept but not used yet.
    pub notes: Vec<String>,
}

/// The import was refused; nothing of it is kept.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file of the srvctl 3 datastore could not be read.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A record claims a name that belongs to someone else or is reserved.
    #[error("{record}: {source}")]
    Claim {
        /// The record, e.g. `container shop.example.com`.
        record: String,
        /// Who holds the name.
        source: ClaimError,
    },
}

/// Why a record was not imported.
enum Refusal {
    /// It cannot be mapped: skipped, and listed in the report.
    Skip(String),
    /// It claims a name that is not free: the import stops.
    Claim(ClaimError),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Self::Skip(why)
    }
}

impl From<&str> for Refusal {
    fn from(why: &str) -> Self {
        Self::Skip(why.to_owned())
    }
}

impl From<OpError> for Refusal {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Claim(c) => Self::Claim(c),
            other => Self::Skip(other.to_string()),
        }
    }
}

/// Note a skipped record in the report, or stop the import at a refused claim.
fn refused(report: &mut ImportReport, record: String, why: Refusal) -> Result<(), ImportError> {
    match why {
        Refusal::Skip(why) => {
            report.skipped.push(format!("{record}: {why}"));
            Ok(())
        }
        Refusal::Claim(source) => Err(ImportError::Claim { record, source }),
    }
}

fn read_object(
    system: &dyn System,
    dir: &Path,
    file: &str,
) -> Result<Map<String, Value>, ImportError> {
    let path = dir.join(file);
    let err = |msg: String| ImportError::File {
        path: path.display().to_string(),
        msg,
    };
    let text = crate::config::file::read_text(system, &path).map_err(|e| err(e.to_string()))?;
    match serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))? {
        Value::Object(m) => Ok(m),
        _ => Err(err("must be a JSON object".into())),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    text(v)?.parse().ok()
}

/// Keep the fields `used` does not consume under the `v3` key of `extra`, noting them.
fn keep_rest(
    kind: &str,
    name: &str,
    rec: &Map<String, Value>,
    used: &[&str],
    extra: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) {
    let kept: Vec<&String> = rec.keys().filter(|k| !used.contains(&k.as_str())).collect();
    if kept.is_empty() {
        return;
    }
    let nested: Map<String, Value> = kept
        .iter()
        .map(|k| ((*k).clone(), rec[k.as_str()].clone()))
        .collect();
    extra.insert(V3.into(), Value::Object(nested));
    let list: Vec<&str> = kept.iter().map(|k| k.as_str()).collect();
    notes.push(format!(
        "{kind} {name}: kept under \"{V3}\", not used: {}",
        list.join(", ")
    ));
}

/// The host's accounts, less those srvctl 3 made: a srvctl 3 user still in the host's passwd
/// (an import on the old host) has the UID its record says, and is the account imported.
#[derive(Debug)]
struct V3Accounts<'a> {
    host: &'a dyn HostAccounts,
    uids: BTreeMap<String, u64>,
}

impl HostAccounts for V3Accounts<'_> {
    fn id_of(&self, name: &str) -> Option<u32> {
        self.host
            .id_of(name)
            .filter(|id| self.uids.get(name) != Some(&u64::from(*id)))
    }
}

/// The key of a record under which the fields srvctl 3 had and this build does not use are
/// kept.
pub const V3: &str = "v3";

/// Import the srvctl 3 datastore in `dir` into `state`. On an error `state` may be half
/// changed: the caller drops it.
pub fn import(
    system: &dyn System,
    state: &mut State,
    clusters: &Clusters,
    ctx: &Context<'_>,
    dir: &Path,
) -> Result<ImportReport, ImportError> {
    let users = read_object(system, dir, "users.json")?;
    let containers = read_object(system, dir, "containers.json")?;
    let hosts = read_object(system, dir, "hosts.json")?;
    let mut report = ImportReport::default();
    let accounts = V3Accounts {
        host: ctx.accounts,
        uids: users
            .iter()
            .filter_map(|(name, rec)| Some((name.clone(), number(rec.get("uid"))?)))
            .collect(),
    };
    let ctx = &Context {
        accounts: &accounts,
        ..ctx.clone()
    };

    let records = |want_reseller: bool| {
        users.iter().filter(move |(name, rec)| {
            let is_reseller = number(rec.get("reseller_id")).is_some_and(|id| id > 0);
            name.as_str() != OPERATOR && is_reseller == want_reseller
        })
    };
    for (name, rec) in records(true) {
        match ops::add_reseller(state, ctx, name) {
            Ok(added) => {
                report.resellers.push(added.name.to_string());
                adopt_user(state, name, rec, &mut report);
            }
            Err(e) => refused(&mut report, format!("reseller {}", shown(name)), e.into())?,
        }
    }
    for (name, rec) in records(false) {
        let reseller = text(rec.get("reseller")).unwrap_or_else(|| OPERATOR.into());
        match ops::add_user(state, ctx, name, Some(&reseller)) {
            Ok(added) => {
                report.users.push(added.name.to_string());
                adopt_user(state, name, rec, &mut report);
            }
            Err(e) => refused(&mut report, format!("user {}", shown(name)), e.into())?,
        }
    }

    let hostnets: BTreeMap<u64, String> = hosts
        .iter()
        .filter_map(|(name, rec)| Some((number(rec.as_object()?.get("hostnet"))?, name.clone())))
        .collect();
    for (name, rec) in &containers {
        let Some(rec) = rec.as_object() else {
            report
                .skipped
                .push(format!("container {}: not an object", shown(name)));
            continue;
        };
        match import_container(state, clusters, ctx, &hostnets, name, rec, &mut report) {
            Ok(ip) => report.containers.push((name.to_ascii_lowercase(), ip)),
            Err(why) => refused(&mut report, format!("container {}", shown(name)), why)?,
        }
    }
    Ok(report)
}

fn adopt_user(state: &mut State, name: &str, rec: &Value, report: &mut ImportReport) {
    let Some(rec) = rec.as_object() else { return };
    let key = AccountName::new(name).expect("added, so valid");
    let taken = |state: &State, id: u32| {
        state
            .users
            .iter()
            .any(|(n, u)| *n != key && (u.uid == id || u.gid == id))
    };
    let old_uid = number(rec.get("uid")).and_then(|u| u32::try_from(u).ok());
    let uid_free =
        old_uid.is_some_and(|id| crate::addr::plan::ACCOUNT_IDS.contains(&id) && !taken(state, id));
    let user = state.users.get_mut(&key).expect("added");
    match old_uid {
        Some(id) if uid_free => {
            user.uid = id;
            user.gid = id;
        }
        Some(id) => report.notes.push(format!(
            "user {name}: UID {id} is taken or out of range; now {}",
            user.uid
        )),
        None => {}
    }
    if let Some(display) = text(rec.get("name"))
        && user.set("display_name", Some(&display)).is_err()
    {
        report.notes.push(format!(
            "user {name}: display name {} dropped",
            shown(&display)
        ));
    }
    if let Some(when) = text(rec.get("added_on_datestamp")) {
        user.created = when;
    }
    if let Some(by) = text(rec.get("added_by_username")) {
        user.created_by = by;
    }
    let used = [
        "uid",
        "name",
        "added_on_datestamp",
        "added_by_username",
        "reseller",
        "reseller_id",
        "user_id",
    ];
    keep_rest("user", name, rec, &used, &mut user.extra, &mut report.notes);
}

fn import_container(
    state: &mut State,
    clusters: &Clusters,
    ctx: &Context<'_>,
    hostnets: &BTreeMap<u64, String>,
    name: &str,
    rec: &Map<String, Value>,
    report: &mut ImportReport,
) -> Result<String, Refusal> {
    if rec.contains_key("bridge") {
        return Err(
            "uses a custom bridge with DHCP, which the address plan does not support".into(),
        );
    }
    let old_ip: std::net::Ipv4Addr = text(rec.get("ip"))
        .and_then(|s| s.parse().ok())
        .ok_or("has no valid ip")?;
    let v3_hostnet = u64::from(old_ip.octets()[1]);
    let host_name = hostnets
        .get(&v3_hostnet)
        .ok_or_else(|| format!("no host in hosts.json has hostnet {v3_hostnet}"))?;
    let host = clusters
        .host(host_name)
        .ok_or_else(|| format!("its host {host_name} is not in clusters.json"))?;
    let here = Context {
        host: Some(host),
        ..ctx.clone()
    };
    let owner = text(rec.get("user")).unwrap_or_else(|| OPERATOR.into());
    let added = ops::add_container(state, &here, name, Some(&owner))?;
    let key = ContainerName::new(name).expect("added, so valid");
    let (bridge, number) = Bridge::of_container_address(added.ip).expect("plan address");
    let wanted = ContainerNumber::new(old_ip.octets()[3].into()).ok();
    let free = |n: ContainerNumber| {
        !state
            .containers
            .iter()
            .any(|(k, c)| *k != key && c.slot() == Some((bridge, n)))
    };
    let c = match wanted {
        Some(n) if n != number && free(n) => n,
        _ => number,
    };
    let web =
        import_front(state, ctx.reserved, &key, rec, &mut report.notes).map_err(Refusal::Claim)?;
    let container = state.containers.get_mut(&key).expect("added");
    container.web = web;
    container.ip = bridge.container_address(c);
    if Some(c) != wanted {
        report.notes.push(format!(
            "container {key}: last octet {} not free or out of range; now {}",
            old_ip.octets()[3],
            container.ip
        ));
    }
    for (field, setting) in [
        ("http_port", "http_port"),
        ("https_port", "https_port"),
        ("type", "image"),
    ] {
        if let Some(v) = text(rec.get(field))
            && container.settings.set(setting, Some(&v)).is_err()
        {
            report
                .notes
                .push(format!("container {key}: {field} {} dropped", shown(&v)));
        }
    }
    if let Some(t) = text(rec.get("creation_time")) {
        container.created = t;
    }
    let used = [
        "ip",
        "user",
        "http_port",
        "https_port",
        "type",
        "creation_time",
        "aliases",
        "altnames",
        "http-redirect",
        "https-redirect",
    ];
    keep_rest(
        "container",
        key.as_str(),
        rec,
        &used,
        &mut container.extra,
        &mut report.notes,
    );
    Ok(container.ip.to_string())
}

/// srvctl 3's `aliases`, `altnames`, `http-redirect` and `https-redirect` of container `key`;
/// what does not validate is dropped with a note, a name that is not free refuses the import.
fn import_front(
    state: &State,
    reserved: &Reserved,
    key: &ContainerName,
    rec: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<WebSettings, ClaimError> {
    let mut web = WebSettings::default();
    for (field, list) in [
        ("aliases", &mut web.aliases),
        ("altnames", &mut web.altnames),
    ] {
        let values = match rec.get(field) {
            Some(Value::Array(a)) => a.iter().map(|v| text(Some(v))).collect(),
            Some(v) => vec![text(Some(v))],
            None => Vec::new(),
        };
        for v in values {
            match v.as_deref().map(Domain::new) {
                Some(Ok(d)) if d.as_str() != key.as_str() && !list.contains(&d) => {
                    claims::check_claim(state, reserved, key, &claims::entry_names(&d))?;
                    list.push(d);
                }
                Some(Ok(_)) => {}
                _ => notes.push(format!(
                    "container {key}: {field} entry {} dropped",
                    shown(v.as_deref().unwrap_or("?"))
                )),
            }
        }
    }
    for (field, https) in [("http-redirect", false), ("https-redirect", true)] {
        let Some(v) = text(rec.get(field)) else {
            continue;
        };
        match Redirect::parse(&v) {
            Ok(r) if https => web.https_redirect = Some(r),
            Ok(r) => web.http_redirect = Some(r),
            Err(_) => notes.push(format!("container {key}: {field} {} dropped", shown(&v))),
        }
    }
    if let Err(e) = web.check_loop() {
        web.https_redirect = None;
        notes.push(format!("container {key}: https-redirect dropped: {e}"));
    }
    Ok(web)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct OldHost;

    impl HostAccounts for OldHost {
        fn id_of(&self, name: &str) -> Option<u32> {
            match name {
                "alpha1" => Some(1025),
                "other" => Some(1030),
                _ => None,
            }
        }
    }

    #[test]
    fn srvctl_3_users_still_on_the_old_host_are_not_host_accounts() {
        let accounts = V3Accounts {
            host: &OldHost,
            uids: [("alpha1".into(), 1025), ("other".into(), 1031)].into(),
        };
        assert_eq!(accounts.id_of("alpha1"), None);
        assert_eq!(accounts.id_of("other"), Some(1030));
        assert_eq!(accounts.id_of("nobody-else"), None);
    }
}
