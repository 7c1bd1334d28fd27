//! srvctl's context as environment variables, for `sc exec-function CMD…` and custom commands:
//! this host and its cluster, where srvctl's files are, and settings.json's values.
//!
//! | variable | value |
//! |---|---|
//! | `SRVCTL_HOST` | this host's name |
//! | `SRVCTL_CLUSTER`, `SRVCTL_HOSTNET`, `SRVCTL_HOST_IP` | from clusters.json (when it names this host) |
//! | `SRVCTL_ROOT` | the scratch root (empty on a real host) |
//! | `SRVCTL_CONFIG_DIR`, `SRVCTL_CLUSTERS`, `SRVCTL_SETTINGS` | /etc/srvctl and its two files |
//! | `SRVCTL_STATE_DIR`, `SRVCTL_DATASTORE`, `SRVCTL_AUDIT_LOG` | /var/lib/srvctl and its files |
//! | `SRVCTL_VERSION` | srvctl's version |
//! | `SRVCTL_SETTING_<KEY>` | each text, number or true/false value of settings.json, its key upper-cased |

use std::ffi::OsString;

use crate::config::cluster::Clusters;
use crate::system::System;
use crate::system::paths::Paths;

/// The variables, in the order of the table above.
pub fn variables(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
    clusters: &Clusters,
) -> Vec<(String, OsString)> {
    let path = |p: std::path::PathBuf| p.into_os_string();
    let mut vars: Vec<(String, OsString)> = vec![("SRVCTL_HOST".into(), hostname.into())];
    if let Some(host) = clusters.host(hostname) {
        vars.push(("SRVCTL_CLUSTER".into(), host.cluster.clone().into()));
        vars.push(("SRVCTL_HOSTNET".into(), host.hostnet.to_string().into()));
        vars.push(("SRVCTL_HOST_IP".into(), host.host_ip.to_string().into()));
    }
    let root = paths.root().map(|r| r.as_os_str().to_owned());
    vars.extend([
        ("SRVCTL_ROOT".into(), root.unwrap_or_default()),
        ("SRVCTL_CONFIG_DIR".into(), path(paths.host("/etc/srvctl"))),
        ("SRVCTL_CLUSTERS".into(), path(paths.clusters())),
        (
            "SRVCTL_SETTINGS".into(),
            path(crate::config::site::path(paths)),
        ),
        ("SRVCTL_STATE_DIR".into(), path(paths.state_dir())),
        ("SRVCTL_DATASTORE".into(), path(paths.datastore())),
        ("SRVCTL_AUDIT_LOG".into(), path(paths.audit_log())),
        ("SRVCTL_VERSION".into(), env!("CARGO_PKG_VERSION").into()),
    ]);
    vars.extend(settings(system, paths));
    vars
}

/// `SRVCTL_SETTING_<KEY>` for each scalar value of settings.json whose key is made of
/// letters, digits, `_` and `-` (which becomes `_`); lists, objects and null are left out,
/// as is a file that is missing or not JSON (`sc diagnose` reports that one).
fn settings(system: &dyn System, paths: &Paths) -> Vec<(String, OsString)> {
    let Ok(Some(bytes)) = system.read(&crate::config::site::path(paths)) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&bytes) else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .filter_map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let key = k.to_ascii_uppercase().replace('-', "_");
            Some((format!("SRVCTL_SETTING_{key}"), value.into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn host_cluster_paths_and_scalar_settings() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        system
            .write(
                &crate::config::site::path(&paths),
                br#"{"company_domain": "co.test", "hsts": false, "acme_contacts": ["a"], "bad key": "x"}"#,
                0o644,
                false,
            )
            .unwrap();
        let clusters = Clusters::parse(
            std::path::Path::new("clusters.json"),
            r#"{"farm": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 3}}}"#,
        )
        .unwrap();
        let vars = variables(&system, &paths, "h1.test", &clusters);
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("SRVCTL_HOST").as_deref(), Some("h1.test"));
        assert_eq!(get("SRVCTL_CLUSTER").as_deref(), Some("farm"));
        assert_eq!(get("SRVCTL_HOSTNET").as_deref(), Some("3"));
        assert_eq!(get("SRVCTL_ROOT").as_deref(), Some("/r"));
        assert_eq!(
            get("SRVCTL_DATASTORE").as_deref(),
            Some("/r/var/lib/srvctl/datastore.json")
        );
        assert_eq!(
            get("SRVCTL_SETTING_COMPANY_DOMAIN").as_deref(),
            Some("co.test")
        );
        assert_eq!(get("SRVCTL_SETTING_HSTS").as_deref(), Some("false"));
        assert_eq!(get("SRVCTL_SETTING_ACME_CONTACTS"), None);
        assert!(vars.iter().all(|(k, _)| !k.contains(' ')), "{vars:?}");
    }
}
