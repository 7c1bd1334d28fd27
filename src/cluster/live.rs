//! The live state of every host of the cluster, as their sync services publish it under
//! `live/<host>`: which containers run, which mesh tunnels are up, how current each cache is.

use std::collections::BTreeMap;

use etcd_client::GetOptions;
use jiff::Timestamp;

use super::etcd::{ClusterError, Connection};
use super::feed::LIVE;
use super::sync::{LIVE_FRESH, LiveReport};

/// Every host's last report, by host name (reports that do not parse are left out).
pub fn read(conn: &Connection) -> Result<BTreeMap<String, LiveReport>, ClusterError> {
    let key = format!("{}{LIVE}", conn.prefix());
    let mut kv = conn.kv();
    let answer = conn.request(
        "the live state",
        kv.get(key, Some(GetOptions::new().with_prefix())),
    )?;
    Ok(answer
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<LiveReport>(kv.value()).ok())
        .map(|r| (r.host.clone(), r))
        .collect())
}

/// Whether a report written at `at` is recent enough to believe at `now`.
pub fn is_fresh(report: &LiveReport, now: Timestamp) -> bool {
    report
        .at
        .parse::<Timestamp>()
        .is_ok_and(|at| now.duration_since(at).unsigned_abs().le(&LIVE_FRESH))
}

/// The state of container `name` of another host, as `sc status` shows it: its host's word
/// for it when the host reported recently, `unknown` otherwise.
pub fn container_state(
    reports: &BTreeMap<String, LiveReport>,
    host: &str,
    name: &str,
    now: Timestamp,
) -> String {
    match reports.get(host) {
        Some(r) if is_fresh(r, now) => r
            .containers
            .get(name)
            .cloned()
            .unwrap_or_else(|| "stopped".into()),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(at: &str) -> LiveReport {
        LiveReport {
            host: "h2.test".into(),
            at: at.into(),
            revision: 9,
            containers: [("web.example.com".to_owned(), "running".to_owned())].into(),
            mesh: BTreeMap::new(),
        }
    }

    #[test]
    fn a_recent_report_is_believed_and_an_old_one_is_not() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let reports = |at| BTreeMap::from([("h2.test".to_owned(), report(at))]);
        let fresh = reports("2026-01-01T00:00:50Z");
        assert_eq!(
            container_state(&fresh, "h2.test", "web.example.com", now),
            "running"
        );
        assert_eq!(
            container_state(&fresh, "h2.test", "other.example.com", now),
            "stopped"
        );
        let old = reports("2026-01-01T00:00:00Z");
        assert_eq!(
            container_state(&old, "h2.test", "web.example.com", now),
            "unknown"
        );
        assert_eq!(
            container_state(&fresh, "h3.test", "web.example.com", now),
            "unknown"
        );
        assert_eq!(
            container_state(&reports("garbage"), "h2.test", "web.example.com", now),
            "unknown"
        );
    }
}
