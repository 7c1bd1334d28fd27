//! Read-only views of the datastore: the fields `sc get` and `sc out` show, and the rows of
//! `sc status`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::cluster::Clusters;
use crate::containers::units::container_unit;
use crate::model::names::{AccountName, ContainerName};
use crate::model::{OPERATOR, Owner, State};
use crate::ops::OpError;
use crate::system::systemd::UnitState;

/// What kind of record a view is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A container.
    Container,
    /// A user account.
    User,
    /// A reseller.
    Reseller,
    /// A host of clusters.json.
    Host,
}

/// The fields of one record, in a stable order: computed ones first, then stored extras.
pub type Fields = Vec<(String, String)>;

/// Add the stored fields this build does not know. Only lower-case names that no computed
/// field has are shown, so a hand-edited field can never pose as `ip` or, once sourced from
/// `sc out`, as an environment variable such as `PATH`.
fn extras(fields: &mut Fields, extra: &Map<String, Value>) {
    for (k, v) in extra {
        let plain = k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !plain || fields.iter().any(|(known, _)| known == k) {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        fields.push((k.clone(), text));
    }
}

fn reseller_name(state: &State, id: crate::addr::plan::ResellerId) -> String {
    state
        .reseller_by_id(id)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| OPERATOR.into())
}

/// The fields a record of `kind` may show besides its stored extras: `sc get` answers "not
/// set" for these and "unknown field" for every other name that the record does not have.
pub fn known_fields(kind: Kind) -> Vec<&'static str> {
    let (computed, settable): (&[&str], &[(&str, &str)]) = match kind {
        Kind::Container => (
            &[
                "name",
                "ip",
                "user",
                "reseller",
                "reseller_id",
                "user_index",
                "host",
                "hostnet",
                "bridge",
                "gateway",
                "number",
                "created",
                "created_by",
                "aliases",
                "altnames",
                "http_redirect",
                "https_redirect",
            ],
            crate::model::settings::CONTAINER_KEYS,
        ),
        Kind::User | Kind::Reseller => (
            &[
                "name",
                "reseller",
                "reseller_id",
                "index",
                "uid",
                "gid",
                "is_reseller",
                "containers",
                "created",
                "created_by",
            ],
            crate::model::settings::USER_KEYS,
        ),
        Kind::Host => (
            &[
                "name", "cluster", "host_ip", "hostnet", "gateway", "prefix", "dns1", "dns2",
                "role",
            ],
            &[],
        ),
    };
    computed
        .iter()
        .copied()
        .chain(settable.iter().map(|(k, _)| *k))
        .collect()
}

/// The fields of a record.
pub fn fields(
    state: &State,
    clusters: &Clusters,
    kind: Kind,
    name: &str,
) -> Result<Fields, OpError> {
    let not_found = |kind| OpError::NotFound {
        kind,
        name: crate::model::names::shown(name),
    };
    let mut f: Fields = Vec::new();
    let mut put = |k: &str, v: String| f.push((k.to_owned(), v));
    match kind {
        Kind::Container => {
            let key = ContainerName::new(name)?;
            let c = state
                .containers
                .get(&key)
                .ok_or_else(|| not_found("container"))?;
            let (bridge, number) = c.slot().expect("loaded containers have plan addresses");
            let (reseller, user_index) = state.owner_slot(&c.user).expect("loaded owners exist");
            put("name", key.to_string());
            put("ip", c.ip.to_string());
            put("user", c.user.to_string());
            put("reseller", reseller_name(state, reseller));
            put("reseller_id", reseller.to_string());
            put("user_index", user_index.to_string());
            put("host", c.host.clone());
            put("hostnet", bridge.host.to_string());
            put("bridge", bridge.interface());
            put("gateway", bridge.gateway().to_string());
            put("number", number.to_string());
            put("created", c.created.clone());
            put("created_by", c.created_by.clone());
            for (k, v) in c.settings.values() {
                put(k, v);
            }
            let join = |l: &[crate::model::web::Domain]| {
                l.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if !c.web.aliases.is_empty() {
                put("aliases", join(&c.web.aliases));
            }
            if !c.web.altnames.is_empty() {
                put("altnames", join(&c.web.altnames));
            }
            if let Some(r) = &c.web.http_redirect {
                put("http_redirect", r.to_string());
            }
            if let Some(r) = &c.web.https_redirect {
                put("https_redirect", r.to_string());
            }
            extras(&mut f, &c.extra);
        }
        Kind::User | Kind::Reseller => {
            let key = AccountName::new(name)?;
            let u = state.users.get(&key).ok_or_else(|| not_found("user"))?;
            if kind == Kind::Reseller && !state.resellers.contains_key(&key) {
                return Err(not_found("reseller"));
            }
            put("name", key.to_string());
            put("reseller", reseller_name(state, u.reseller_id));
            put("reseller_id", u.reseller_id.to_string());
            put("index", u.index.to_string());
            put("uid", u.uid.to_string());
            put("gid", u.gid.to_string());
            put(
                "is_reseller",
                state.resellers.contains_key(&key).to_string(),
            );
            let owner = Owner::Account(key.clone());
            let count = state
                .containers
                .values()
                .filter(|c| c.user == owner)
                .count();
            put("containers", count.to_string());
            put("created", u.created.clone());
            put("created_by", u.created_by.clone());
            if let Some(v) = &u.display_name {
                put("display_name", v.clone());
            }
            if let Some(v) = &u.email {
                put("email", v.clone());
            }
            extras(&mut f, &u.extra);
        }
        Kind::Host => {
            let h = clusters.host(name).ok_or_else(|| not_found("host"))?;
            let Value::Object(map) = serde_json::to_value(h).expect("serialisable") else {
                unreachable!("a host serialises to an object")
            };
            extras(&mut f, &map);
        }
    }
    Ok(f)
}

/// Quote a value for a POSIX shell: single quotes, with `'` written as `'\''`. Whatever the
/// value holds, sourcing the line assigns exactly it.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Turn a field name into a shell variable name, or `None` if it cannot be one.
fn shell_key(prefix: &str, key: &str) -> Option<String> {
    let k = format!("{prefix}{}", key.replace('-', "_"));
    let ok = !k.is_empty()
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(k)
}

/// The `sc out` lines of a record: `C='name'` / `U='name'` / `SC_HOSTNAME='name'`, then
/// `key='value'` for every field whose name can be a shell variable.
pub fn shell_lines(kind: Kind, fields: &Fields) -> Vec<String> {
    let (head, prefix, upper) = match kind {
        Kind::Container => ("C", "", false),
        Kind::User | Kind::Reseller => ("U", "", false),
        Kind::Host => ("SC_HOSTNAME", "SC_", true),
    };
    let mut lines = Vec::new();
    for (k, v) in fields {
        let key = if k == "name" {
            Some(head.to_owned())
        } else if upper {
            shell_key(prefix, &k.to_ascii_uppercase())
        } else {
            shell_key(prefix, k)
        };
        if let Some(key) = key {
            lines.push(format!("{key}={}", shell_quote(v)));
        }
    }
    lines
}

/// One row of `sc status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// Container name.
    pub name: String,
    /// Owner.
    pub user: String,
    /// Owner's reseller.
    pub reseller: String,
    /// Host it lives on.
    pub host: String,
    /// Its address.
    pub ip: String,
    /// `running`, `starting`, `stopping`, `stopped`, `failed`; `elsewhere` for a container of
    /// another host; `unknown` when systemd was not asked (under `--root`); `destroying`
    /// while `sc destroy-ve` is removing it (or was interrupted: run it again).
    pub state: String,
    /// Since when it is in that state (RFC 3339), if known.
    pub since: Option<String>,
}

/// What systemd says about the container units of this host, by unit name; `None` when
/// systemd was not asked.
pub type Live = Option<HashMap<String, UnitState>>;

/// What the other hosts of the cluster last reported of their containers, and the time
/// `sc status` asks at; no report (or an old one) is `unknown`.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    /// Every host's last live report, by host.
    pub reports: std::collections::BTreeMap<String, crate::cluster::sync::LiveReport>,
    /// Now.
    pub now: jiff::Timestamp,
}

fn live_state(
    live: &Live,
    elsewhere: Option<&Elsewhere>,
    (name, host, here): (&str, &str, bool),
    unit: &str,
) -> (String, Option<String>) {
    let Some(units) = live else {
        return ("unknown".into(), None);
    };
    if !here {
        let state = match elsewhere {
            Some(e) => crate::cluster::live::container_state(&e.reports, host, name, e.now),
            None => "elsewhere".into(),
        };
        return (state, None);
    }
    let Some(u) = units.get(unit) else {
        return ("stopped".into(), None);
    };
    let state = run_state(&u.active);
    let since = (u.since_usec > 0)
        .then(|| jiff::Timestamp::from_microsecond(u.since_usec as i64).ok())
        .flatten()
        .map(|t| t.to_string());
    (state.into(), since)
}

/// A container's state as `sc status` words it, from its unit's ActiveState.
pub fn run_state(active: &str) -> &str {
    match active {
        "active" => "running",
        "activating" => "starting",
        "deactivating" => "stopping",
        "inactive" => "stopped",
        other => other,
    }
}

/// Every container, by name, with its live state: from systemd (`live`) for those of
/// `hostname`, from the other hosts' reports (`elsewhere`, in a cluster) for the others.
pub fn status(
    state: &State,
    hostname: &str,
    live: &Live,
    elsewhere: Option<&Elsewhere>,
) -> Vec<StatusRow> {
    state
        .containers
        .iter()
        .map(|(name, c)| {
            let reseller = state
                .owner_slot(&c.user)
                .map(|(r, _)| reseller_name(state, r))
                .unwrap_or_default();
            let (run, since) = if c.destroying {
                ("destroying".into(), None)
            } else {
                live_state(
                    live,
                    elsewhere,
                    (name.as_str(), &c.host, c.host == hostname),
                    &container_unit(name),
                )
            };
            StatusRow {
                name: name.to_string(),
                user: c.user.to_string(),
                reseller,
                host: c.host.clone(),
                ip: c.ip.to_string(),
                state: run,
                since,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_states_are_joined() {
        let mut state = State::default();
        let c = crate::config::cluster::Clusters::parse(
            std::path::Path::new("c.json"),
            r#"{"t":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
        )
        .unwrap();
        for (host, name) in [
            ("h1.test", "a.ve"),
            ("h1.test", "b.ve"),
            ("h2.test", "c.ve"),
        ] {
            let ctx = crate::ops::Context {
                host: c.host(host),
                hostname: host,
                caller: &crate::access::Caller::operator_root(),
                now: "t",
                reserved: &crate::model::claims::Reserved::default(),
                accounts: &crate::model::claims::NoHostAccounts,
            };
            crate::ops::add_container(&mut state, &ctx, name, None).unwrap();
        }
        let units = HashMap::from([(
            "systemd-nspawn@a.ve.service".to_string(),
            UnitState {
                name: "systemd-nspawn@a.ve.service".into(),
                active: "active".into(),
                sub: "running".into(),
                since_usec: 1_700_000_000_000_000,
            },
        )]);
        let rows = status(&state, "h1.test", &Some(units.clone()), None);
        let states: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("a.ve", "running"),
                ("b.ve", "stopped"),
                ("c.ve", "elsewhere")
            ]
        );
        assert_eq!(rows[0].since.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert!(
            status(&state, "h1.test", &None, None)
                .iter()
                .all(|r| r.state == "unknown")
        );
        // In a cluster: what h2 reported, while its report is recent.
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let report = |at: &str| crate::cluster::sync::LiveReport {
            host: "h2.test".into(),
            at: at.into(),
            revision: 1,
            containers: [("c.ve".to_owned(), "failed".to_owned())].into(),
            mesh: Default::default(),
        };
        let elsewhere = |at| Elsewhere {
            reports: [("h2.test".to_owned(), report(at))].into(),
            now,
        };
        let c_state = |e: &Elsewhere| {
            status(&state, "h1.test", &Some(units.clone()), Some(e))[2]
                .state
                .clone()
        };
        assert_eq!(c_state(&elsewhere("2026-01-01T00:00:59Z")), "failed");
        assert_eq!(c_state(&elsewhere("2025-12-31T00:00:00Z")), "unknown");
        crate::ops::mark_destroying(&mut state, "b.ve").unwrap();
        assert_eq!(
            status(&state, "h1.test", &None, None)[1].state,
            "destroying"
        );
    }

    #[test]
    fn shell_quoting_survives_hostile_values() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        let fields = vec![
            ("name".to_string(), "x".to_string()),
            ("weird key; rm".to_string(), "v".to_string()),
            ("http-port".to_string(), "$(reboot)\n'".to_string()),
        ];
        let lines = shell_lines(Kind::Container, &fields);
        assert_eq!(lines[0], "C='x'");
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("http_port='"));
    }
}
