//! `sc cluster status`: the members of the cluster, which one leads, the datastore's revision
//! and how far each host's cache lags behind it, and the mesh tunnels of every host.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::etcd::{Connection, MemberState};
use super::live;
use super::sync::{LiveReport, SyncStatus};

/// The whole cluster as one host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// The datastore's revision (of its last commit), when etcd answered.
    pub revision: Option<i64>,
    /// Whether a majority of the members answered.
    pub quorum: bool,
    /// One row per host.
    pub members: Vec<MemberRow>,
    /// This host's sync service, if it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    /// Why etcd could not be asked, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One host of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// The host.
    pub host: String,
    /// Its etcd member: `up`, or `down: why`.
    pub etcd: String,
    /// Whether its member is the leader.
    pub leader: bool,
    /// The revision its cache holds, from its last live report.
    pub cache_revision: Option<i64>,
    /// How many revisions its cache is behind the datastore.
    pub lag: Option<i64>,
    /// When it last reported (RFC 3339); `None` if never.
    pub seen: Option<String>,
    /// Whether that report is recent.
    pub reporting: bool,
    /// Its mesh tunnels and their states.
    pub mesh: BTreeMap<String, String>,
}

/// Put together what the members said (`states`, in the order of `hosts`), the datastore's
/// revision and the hosts' live reports.
pub fn assemble(
    cluster: &str,
    hosts: &[String],
    states: &[Result<MemberState, String>],
    revision: Option<i64>,
    reports: &BTreeMap<String, LiveReport>,
    now: Timestamp,
) -> ClusterStatus {
    let leader = states
        .iter()
        .find_map(|s| s.as_ref().ok().map(|s| s.leader));
    let up = states.iter().filter(|s| s.is_ok()).count();
    let members = hosts
        .iter()
        .zip(states)
        .map(|(host, state)| {
            let report = reports.get(host);
            let cache_revision = report.map(|r| r.revision);
            MemberRow {
                host: host.clone(),
                etcd: match state {
                    Ok(_) => "up".into(),
                    Err(why) => format!("down: {why}"),
                },
                leader: matches!((state, leader), (Ok(s), Some(l)) if s.id == l),
                cache_revision,
                lag: revision.zip(cache_revision).map(|(r, c)| (r - c).max(0)),
                seen: report.map(|r| r.at.clone()),
                reporting: report.is_some_and(|r| live::is_fresh(r, now)),
                mesh: report.map(|r| r.mesh.clone()).unwrap_or_default(),
            }
        })
        .collect();
    ClusterStatus {
        cluster: cluster.to_owned(),
        revision,
        quorum: up * 2 > hosts.len(),
        members,
        sync: None,
        error: None,
    }
}

/// Ask the members, the datastore and the live reports.
pub fn gather(conn: &Connection, now: Timestamp) -> ClusterStatus {
    let hosts: Vec<String> = conn.members().iter().map(|m| m.name.clone()).collect();
    let states = conn.member_states();
    let head = conn.head_revision();
    let reports = live::read(conn);
    let mut status = assemble(
        conn.cluster(),
        &hosts,
        &states,
        head.as_ref().ok().copied(),
        reports.as_ref().unwrap_or(&BTreeMap::new()),
        now,
    );
    status.error = head.err().or(reports.err()).map(|e| e.to_string());
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, revision: i64, at: &str) -> LiveReport {
        LiveReport {
            host: host.into(),
            at: at.into(),
            revision,
            containers: BTreeMap::new(),
            mesh: [("server".to_owned(), "running".to_owned())].into(),
        }
    }

    #[test]
    fn rows_show_the_leader_the_lag_and_who_is_down() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hosts = ["h1.test", "h2.test", "h3.test"].map(String::from);
        let states = [
            Ok(MemberState { id: 1, leader: 2 }),
            Ok(MemberState { id: 2, leader: 2 }),
            Err("connection refused".to_owned()),
        ];
        let reports = BTreeMap::from([
            (
                "h1.test".to_owned(),
                report("h1.test", 40, "2026-01-01T00:00:55Z"),
            ),
            (
                "h3.test".to_owned(),
                report("h3.test", 31, "2026-01-01T00:00:00Z"),
            ),
        ]);
        let s = assemble("e2e", &hosts, &states, Some(42), &reports, now);
        assert!(s.quorum);
        let [h1, h2, h3] = &s.members[..] else {
            panic!("{s:?}")
        };
        assert!(!h1.leader && h2.leader && !h3.leader);
        assert_eq!((h1.lag, h1.reporting), (Some(2), true));
        assert_eq!((h2.lag, h2.seen.as_deref()), (None, None));
        assert_eq!(h3.etcd, "down: connection refused");
        assert_eq!((h3.lag, h3.reporting), (Some(11), false));
        assert_eq!(h1.mesh["server"], "running");
    }

    #[test]
    fn one_of_three_up_is_no_quorum() {
        let hosts = ["h1.test", "h2.test", "h3.test"].map(String::from);
        let states = [
            Ok(MemberState { id: 1, leader: 0 }),
            Err("down".to_owned()),
            Err("down".to_owned()),
        ];
        let s = assemble(
            "e2e",
            &hosts,
            &states,
            None,
            &BTreeMap::new(),
            Timestamp::UNIX_EPOCH,
        );
        assert!(!s.quorum);
        assert!(s.members.iter().all(|m| !m.leader));
    }
}
