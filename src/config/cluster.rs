//! The hand-written cluster definition, `/etc/srvctl/clusters.json`, in the srvctl 3 shape:
//! `{ "<cluster>": { "<host fqdn>": { "host_ip", "hostnet", "gateway", "prefix", "dns1", … } } }`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::addr::plan::HostNet;
use crate::config::file::{self, FileError};
use crate::model::names::{ContainerName, shown};
use crate::system::System;

/// A host of a cluster, as clusters.json describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Fully qualified host name, lower-case.
    pub name: String,
    /// Name of the cluster the host belongs to.
    pub cluster: String,
    /// Public IPv4 address.
    pub host_ip: Ipv4Addr,
    /// Public IPv6 address, if the host has one (`host_ip6`): the DNS zones then give the
    /// sites of this host AAAA records beside their A records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip6: Option<Ipv6Addr>,
    /// H of the address plan.
    pub hostnet: HostNet,
    /// Default gateway of the host's uplink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Prefix length of the uplink network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// First resolver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns1: Option<Ipv4Addr>,
    /// Second resolver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns2: Option<Ipv4Addr>,
    /// Whether this is the CA host of its cluster (`"role": "ca"`): the one host that holds
    /// the cluster CA's key and signs the other hosts' certificate requests. Shown as
    /// `"role": "ca"`, as clusters.json writes it.
    #[serde(
        rename = "role",
        serialize_with = "ca_role",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ca: bool,
    /// The host's part in serving the cluster's DNS (`"dns": "master"` or `"slave"`), if any:
    /// only such a host renders DNS configuration ([`crate::dns`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsRole>,
    /// Every other scalar field, kept as text (e.g. `dns_server`, `reverse_proxy`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// What a host does for the cluster's DNS (`"dns"` in clusters.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRole {
    /// It serves every site's zone authoritatively from the datastore, with BIND, and sends
    /// them to the cluster's slaves (NOTIFY, AXFR with TSIG).
    Master,
    /// It serves the same zones as copies transferred from the cluster's master.
    Slave,
}

fn ca_role<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("ca")
}

/// The clusters known to this host.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    hosts: Vec<Host>,
}

/// An error in clusters.json, naming the file, the host and the field.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The file cannot be read or is not of the expected shape.
    #[error(transparent)]
    File(#[from] FileError),
    /// A field of a host is wrong.
    #[error("{path}: cluster {cluster:?}, host {host:?}, field {field:?}: {msg}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The cluster.
        cluster: String,
        /// The host.
        host: String,
        /// The field.
        field: String,
        /// What is wrong.
        msg: String,
    },
}

fn is_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl Clusters {
    /// Read and validate clusters.json.
    pub fn load(system: &dyn System, path: &Path) -> Result<Self, ClusterError> {
        let text = file::read_text(system, path).map_err(|source| FileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate the text of clusters.json; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ClusterError> {
        let shape = |msg: String| ClusterError::File(FileError::shape(path, msg));
        let clusters = file::parse_object(path, text, "clusters")?;
        let mut hosts = Vec::new();
        for (cluster, members) in &clusters {
            if !is_cluster_name(cluster) {
                return Err(shape(format!("cluster name {} is invalid", shown(cluster))));
            }
            let Value::Object(members) = members else {
                return Err(shape(format!(
                    "cluster {cluster:?} must be an object of hosts"
                )));
            };
            let mut seen: BTreeMap<HostNet, &str> = BTreeMap::new();
            for (name, fields) in members {
                let host = parse_host(path, cluster, name, fields)?;
                if let Some(other) = seen.insert(host.hostnet, name) {
                    return Err(ClusterError::Field {
                        path: path.to_owned(),
                        cluster: cluster.clone(),
                        host: name.clone(),
                        field: "hostnet".into(),
                        msg: format!("hostnet {} is already used by host {other:?}", host.hostnet),
                    });
                }
                if hosts.iter().any(|h: &Host| h.name == host.name) {
                    return Err(shape(format!(
                        "host {name:?} appears in more than one cluster"
                    )));
                }
                hosts.push(host);
            }
            check_ca_host(path, cluster, &hosts)?;
            check_dns_master(path, cluster, &hosts)?;
        }
        Ok(Self { hosts })
    }

    /// Every host of every cluster.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host of that name, if any.
    pub fn host(&self, name: &str) -> Option<&Host> {
        let name = name.to_ascii_lowercase();
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every host of `host`'s cluster, `host` included, in the order of clusters.json.
    pub fn members<'c>(&'c self, host: &Host) -> impl Iterator<Item = &'c Host> {
        let cluster = host.cluster.clone();
        self.hosts.iter().filter(move |h| h.cluster == cluster)
    }

    /// Whether `host`'s cluster has more than one host: its datastore is replicated.
    pub fn is_replicated(&self, host: &Host) -> bool {
        self.members(host).nth(1).is_some()
    }

    /// The DNS master of `host`'s cluster (`"dns": "master"`), if it has one.
    pub fn dns_master<'c>(&'c self, host: &Host) -> Option<&'c Host> {
        self.members(host).find(|h| h.dns == Some(DnsRole::Master))
    }

    /// The DNS slaves of `host`'s cluster (`"dns": "slave"`), in the order of clusters.json.
    pub fn dns_slaves<'c>(&'c self, host: &Host) -> impl Iterator<Item = &'c Host> {
        self.members(host).filter(|h| h.dns == Some(DnsRole::Slave))
    }

    /// The CA host of `host`'s cluster (`"role": "ca"`); a single host is its own.
    pub fn ca_host<'c>(&'c self, host: &'c Host) -> &'c Host {
        self.members(host).find(|h| h.ca).unwrap_or(host)
    }
}

/// A cluster of more than one host has exactly one CA host.
fn check_ca_host(path: &Path, cluster: &str, hosts: &[Host]) -> Result<(), ClusterError> {
    let members: Vec<&Host> = hosts.iter().filter(|h| h.cluster == cluster).collect();
    let ca: Vec<&str> = members
        .iter()
        .filter(|h| h.ca)
        .map(|h| h.name.as_str())
        .collect();
    if members.len() < 2 || ca.len() == 1 {
        return Ok(());
    }
    let found = if ca.is_empty() {
        "none has".to_owned()
    } else {
        format!("{} have", ca.join(" and "))
    };
    Err(ClusterError::File(FileError::shape(
        path,
        format!(
            "cluster {cluster:?} has {} hosts, so exactly one of them must be its CA host \
             (\"role\": \"ca\"); {found} it",
            members.len()
        ),
    )))
}

/// A cluster has at most one DNS master, and one when it has a DNS slave (the slaves copy
/// their zones from it).
fn check_dns_master(path: &Path, cluster: &str, hosts: &[Host]) -> Result<(), ClusterError> {
    let members = || hosts.iter().filter(|h| h.cluster == cluster);
    let masters: Vec<&str> = members()
        .filter(|h| h.dns == Some(DnsRole::Master))
        .map(|h| h.name.as_str())
        .collect();
    let msg = match masters.len() {
        0 if members().any(|h| h.dns == Some(DnsRole::Slave)) => {
            "has DNS slaves but no DNS master (\"dns\": \"master\") to copy the zones from"
                .to_owned()
        }
        0 | 1 => return Ok(()),
        _ => format!(
            "has more than one DNS master ({}); one host is the master, the others may be \
             slaves (\"dns\": \"slave\")",
            masters.join(" and ")
        ),
    };
    Err(ClusterError::File(FileError::shape(
        path,
        format!("cluster {cluster:?} {msg}"),
    )))
}

fn parse_host(
    path: &Path,
    cluster: &str,
    name: &str,
    fields: &Value,
) -> Result<Host, ClusterError> {
    let err = |field: &str, msg: String| ClusterError::Field {
        path: path.to_owned(),
        cluster: cluster.to_owned(),
        host: name.to_owned(),
        field: field.to_owned(),
        msg,
    };
    if ContainerName::new(name).is_err() || !name.contains('.') {
        return Err(err(
            "(name)",
            "a host name must be a fully qualified DNS name".into(),
        ));
    }
    let Value::Object(fields) = fields else {
        return Err(err("(host)", "must be an object of fields".into()));
    };
    let ip = |field: &str, required: bool| -> Result<Option<Ipv4Addr>, ClusterError> {
        match fields.get(field) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(err(field, "is required".into())),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| err(field, format!("{} is not an IPv4 address", shown(s)))),
            Some(other) => Err(err(
                field,
                format!("must be an IPv4 address string, not {other}"),
            )),
        }
    };
    let ip6 = |field: &str| -> Result<Option<Ipv6Addr>, ClusterError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| err(field, format!("{} is not an IPv6 address", shown(s)))),
            Some(other) => Err(err(
                field,
                format!("must be an IPv6 address string, not {other}"),
            )),
        }
    };
    let number = |field: &str| -> Result<Option<u64>, ClusterError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| err(field, format!("{n} is not a whole number"))),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| err(field, format!("{} is not a whole number", shown(s)))),
            Some(other) => Err(err(field, format!("must be a number, not {other}"))),
        }
    };
    let hostnet = number("hostnet")?.ok_or_else(|| err("hostnet", "is required".into()))?;
    let hostnet = u32::try_from(hostnet)
        .ok()
        .and_then(|h| HostNet::new(h).ok())
        .ok_or_else(|| err("hostnet", format!("{hostnet} is out of range (1..=15)")))?;
    let prefix = match number("prefix")? {
        Some(p) if p <= 32 => Some(p as u8),
        Some(p) => return Err(err("prefix", format!("{p} is out of range (0..=32)"))),
        None => None,
    };
    Ok(Host {
        name: name.to_ascii_lowercase(),
        cluster: cluster.to_owned(),
        host_ip: ip("host_ip", true)?.expect("required"),
        host_ip6: ip6("host_ip6")?,
        hostnet,
        gateway: ip("gateway", false)?,
        prefix,
        dns1: ip("dns1", false)?,
        dns2: ip("dns2", false)?,
        ca: role(fields, &err)?,
        dns: dns_role(fields, &err)?,
        extra: extra_fields(fields, &err)?,
    })
}

/// The host's `role`: absent (an ordinary host) or `"ca"` (the CA host of its cluster).
fn role(
    fields: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> ClusterError,
) -> Result<bool, ClusterError> {
    match fields.get("role") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) if s == "ca" => Ok(true),
        Some(other) => Err(err(
            "role",
            format!("{other} is not a role; the only role is \"ca\" (the cluster's CA host)"),
        )),
    }
}

/// The host's `dns`: absent (no DNS here), `"master"` or `"slave"`.
fn dns_role(
    fields: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> ClusterError,
) -> Result<Option<DnsRole>, ClusterError> {
    match fields.get("dns") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "master" => Ok(Some(DnsRole::Master)),
        Some(Value::String(s)) if s == "slave" => Ok(Some(DnsRole::Slave)),
        Some(other) => Err(err(
            "dns",
            format!(
                "{other} is not a DNS role; the roles are \"master\" (zones from the datastore) \
                 and \"slave\" (copies of the master's zones)"
            ),
        )),
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "host_ip", "host_ip6", "hostnet", "gateway", "prefix", "dns1", "dns2", "role", "dns",
];

fn extra_fields(
    fields: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> ClusterError,
) -> Result<BTreeMap<String, String>, ClusterError> {
    let mut extra = BTreeMap::new();
    for (key, value) in fields {
        if KNOWN_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        if text.chars().any(char::is_control) || text.len() > 4096 {
            return Err(err(key, "holds control characters or is too long".into()));
        }
        extra.insert(key.clone(), text);
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Clusters, ClusterError> {
        Clusters::parse(Path::new("clusters.json"), text)
    }

    #[test]
    fn example_conf_is_valid() {
        let text = include_str!("../../example-conf/clusters.json");
        let c = parse(text).unwrap();
        assert!(c.hosts().len() >= 2);
    }

    #[test]
    fn errors_name_file_host_and_field() {
        let e = parse(r#"{"c":{"h1.test":{"host_ip":"1.2.3.4","hostnet":16}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("clusters.json") && e.contains("h1.test") && e.contains("hostnet"),
            "{e}"
        );
        let e = parse(r#"{"c":{"h1.test":{"host_ip":"1.2.3","hostnet":1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("host_ip"), "{e}");
        let e = parse(r#"{"c":{"h1.test":{"host_ip":"1.2.3.4","hostnet":1},"h2.test":{"host_ip":"1.2.3.5","hostnet":1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("h2.test") && e.contains("already used"), "{e}");
        assert!(parse(r#"{"c":{"bad name":{"host_ip":"1.2.3.4","hostnet":1}}}"#).is_err());
        assert!(parse(r#"{"c":{"h1.test":{"hostnet":1}}}"#).is_err());
        assert!(parse("[]").is_err());
    }

    #[test]
    fn an_ipv6_address_is_optional_and_validated() {
        let one = |ip6: &str| {
            parse(&format!(
                r#"{{"c":{{"h1.test":{{"host_ip":"1.2.3.4","hostnet":1{ip6}}}}}}}"#
            ))
        };
        assert_eq!(one("").unwrap().host("h1.test").unwrap().host_ip6, None);
        let c = one(r#","host_ip6":"2001:db8::11""#).unwrap();
        let h = c.host("h1.test").unwrap();
        assert_eq!(h.host_ip6, Some("2001:db8::11".parse().unwrap()));
        assert!(!h.extra.contains_key("host_ip6"));
        for bad in [
            r#""1.2.3.4""#,
            r#""2001:db8::1\nx""#,
            "42",
            r#""fe80::1%eth0""#,
        ] {
            let e = one(&format!(r#","host_ip6":{bad}"#))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(r#"host "h1.test""#) && e.contains(r#"field "host_ip6""#),
                "{bad}: {e}"
            );
            assert!(e.contains("IPv6 address"), "{bad}: {e}");
        }
    }

    #[test]
    fn finds_host_case_insensitively() {
        let c = parse(r#"{"c":{"H1.Test":{"host_ip":"1.2.3.4","hostnet":"3","dns_server":"x"}}}"#)
            .unwrap();
        let h = c.host("h1.TEST").unwrap();
        assert_eq!(h.hostnet.get(), 3);
        assert_eq!(h.extra["dns_server"], "x");
    }

    fn two_hosts(role1: &str, role2: &str) -> Result<Clusters, ClusterError> {
        parse(&format!(
            r#"{{"c":{{"h1.test":{{"host_ip":"1.2.3.4","hostnet":1{role1}}},
                   "h2.test":{{"host_ip":"1.2.3.5","hostnet":2{role2}}}}},
               "solo":{{"h9.test":{{"host_ip":"1.2.3.9","hostnet":9}}}}}}"#
        ))
    }

    #[test]
    fn a_replicated_cluster_has_exactly_one_ca_host() {
        let c = two_hosts(r#","role":"ca""#, "").unwrap();
        let h1 = c.host("h1.test").unwrap();
        let h2 = c.host("h2.test").unwrap();
        assert!(h1.ca && !h2.ca && !h1.extra.contains_key("role"));
        assert_eq!(serde_json::to_value(h1).unwrap()["role"], "ca");
        assert!(serde_json::to_value(h2).unwrap().get("role").is_none());
        assert_eq!(c.ca_host(h2).name, "h1.test");
        assert!(c.is_replicated(h2));
        let solo = c.host("h9.test").unwrap();
        assert!(!c.is_replicated(solo) && !solo.ca);
        assert_eq!(c.ca_host(solo).name, "h9.test");
        for (r1, r2, said) in [
            ("", "", "none has it"),
            (
                r#","role":"ca""#,
                r#","role":"ca""#,
                "h1.test and h2.test have it",
            ),
        ] {
            let e = two_hosts(r1, r2).unwrap_err().to_string();
            assert!(e.contains("cluster \"c\"") && e.contains(said), "{e}");
        }
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let e = two_hosts(r#","role":"ca""#, r#","role":"master""#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("h2.test") && e.contains("role") && e.contains("master"),
            "{e}"
        );
        assert!(two_hosts(r#","role":"ca""#, r#","role":true"#).is_err());
    }

    #[test]
    fn the_dns_role_is_master_slave_or_absent() {
        let c = two_hosts(r#","role":"ca","dns":"master""#, "").unwrap();
        let h1 = c.host("h1.test").unwrap();
        assert_eq!(h1.dns, Some(DnsRole::Master));
        assert!(!h1.extra.contains_key("dns"));
        assert_eq!(serde_json::to_value(h1).unwrap()["dns"], "master");
        assert_eq!(c.host("h2.test").unwrap().dns, None);
        assert_eq!(
            c.dns_master(c.host("h2.test").unwrap()).unwrap().name,
            "h1.test"
        );
        assert_eq!(c.dns_master(c.host("h9.test").unwrap()), None);
        let c = two_hosts(r#","role":"ca","dns":"master""#, r#","dns":"slave""#).unwrap();
        let h2 = c.host("h2.test").unwrap();
        assert_eq!(h2.dns, Some(DnsRole::Slave));
        assert_eq!(serde_json::to_value(h2).unwrap()["dns"], "slave");
        let slaves: Vec<&str> = c.dns_slaves(h2).map(|h| h.name.as_str()).collect();
        assert_eq!(slaves, ["h2.test"]);
        for bad in [r#""Slave""#, r#""Master""#, "true", r#""master\n""#] {
            let e = two_hosts(r#","role":"ca""#, &format!(r#","dns":{bad}"#))
                .unwrap_err()
                .to_string();
            assert!(e.contains("h2.test") && e.contains("\"dns\""), "{e}");
        }
    }

    #[test]
    fn slaves_need_the_one_master_of_their_cluster() {
        let e = two_hosts(r#","role":"ca","dns":"slave""#, r#","dns":"slave""#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cluster \"c\"") && e.contains("no DNS master"),
            "{e}"
        );
        let e = two_hosts(r#","role":"ca","dns":"master""#, r#","dns":"master""#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("h1.test and h2.test"), "{e}");
        // Each cluster has its own master: h9's cluster has none and needs none.
        assert!(two_hosts(r#","role":"ca""#, "").is_ok());
    }
}
