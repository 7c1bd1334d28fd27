//! A host added to a cluster that already runs: its etcd member must be added to the cluster
//! before it first starts, and must then start as a member of an *existing* cluster.
//!
//! The members of a cluster that forms together all start with `initial-cluster-state: new`
//! and the same `initial-cluster` from clusters.json. A host that is added later (a fourth
//! host in clusters.json) would do the same and be refused by the running members. So when a
//! host receives its certificate, it asks the running cluster for its members (its new
//! certificate lets it in as a client): if its own peer URL is not among them, it adds its
//! member (etcd's MemberAdd) and records the cluster's membership in [`JOIN_FILE`], from which
//! the `etcd` module renders `initial-cluster-state: existing`. A cluster that does not answer
//! is still forming (or is down): the member then starts as one of a new cluster, as before.

use serde::{Deserialize, Serialize};

use super::etcd::{ClusterError, Connection};
use super::member::{DATA_DIR, peer_url};
use crate::config::cluster::{Clusters, Host};
use crate::system::System;
use crate::system::paths::Paths;

/// Where a host added to a running cluster keeps the membership it joined.
pub const JOIN_FILE: &str = "/var/lib/srvctl/etcd-join.json";

/// The membership a host added to a running cluster starts its member with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// etcd's `initial-cluster`: every member's `name=peer URL`, this host's included.
    pub initial_cluster: String,
}

impl Joined {
    /// The recorded membership, if this host was added to a running cluster (the file stays:
    /// once the member has data, etcd ignores its `initial-*` settings).
    pub fn load(system: &dyn System, paths: &Paths) -> Option<Self> {
        let bytes = system.read(&paths.host(JOIN_FILE)).ok()??;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What [`enrol`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "enrolment")]
pub enum Enrolment {
    /// The member has data already: nothing to do.
    HasData,
    /// The running cluster already counts this host among its members (it formed with it).
    Member,
    /// No cluster answers: it is forming, and this member starts as one of a new cluster.
    Forming {
        /// Why none answered.
        reason: String,
    },
    /// The member was added to the running cluster.
    Added {
        /// The membership recorded in [`JOIN_FILE`].
        initial_cluster: String,
    },
}

/// Make sure `me`'s etcd member will be accepted by its cluster (see the module's text).
pub fn enrol(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
) -> Result<Enrolment, ClusterError> {
    if system.kind(&paths.host(DATA_DIR).join("member")).is_some() {
        return Ok(Enrolment::HasData);
    }
    let conn = match Connection::open(system, paths, clusters, &me.name) {
        Ok(conn) => conn,
        Err(e) => {
            return Ok(Enrolment::Forming {
                reason: e.to_string(),
            });
        }
    };
    let own = peer_url(me);
    let mut client = conn.client();
    let listed = conn.request("listing the cluster's members", client.member_list())?;
    if listed
        .members()
        .iter()
        .any(|m| m.peer_urls().contains(&own))
    {
        return Ok(Enrolment::Member);
    }
    let mut client = conn.client();
    let added = conn.request(
        "adding this host's etcd member",
        client.member_add([own.as_str()], None),
    )?;
    let members: Vec<(String, Vec<String>)> = added
        .member_list()
        .iter()
        .map(|m| (m.name().to_owned(), m.peer_urls().to_vec()))
        .collect();
    let joined = Joined {
        initial_cluster: initial_cluster(clusters, me, &members),
    };
    let mut json = serde_json::to_vec_pretty(&joined).expect("serialises");
    json.push(b'\n');
    let path = paths.host(JOIN_FILE);
    system
        .write(&path, &json, 0o644, true)
        .map_err(|e| ClusterError::Refused {
            what: format!("writing {}", path.display()),
            cause: e.to_string(),
        })?;
    Ok(Enrolment::Added {
        initial_cluster: joined.initial_cluster,
    })
}

/// etcd's `initial-cluster` for a member joining `members` (name and peer URLs as etcd lists
/// them): a member that has not started yet has no name in etcd's list, so names come from
/// clusters.json by peer URL, and this host's own is its fqdn.
fn initial_cluster(clusters: &Clusters, me: &Host, members: &[(String, Vec<String>)]) -> String {
    let mut entries: Vec<String> = members
        .iter()
        .flat_map(|(name, urls)| {
            urls.iter().map(move |url| {
                let known = clusters
                    .members(me)
                    .find(|h| &peer_url(h) == url)
                    .map(|h| h.name.clone());
                let name = known.unwrap_or_else(|| name.clone());
                format!("{name}={url}")
            })
        })
        .collect();
    entries.sort();
    entries.dedup();
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn clusters() -> Clusters {
        Clusters::parse(
            Path::new("clusters.json"),
            r#"{"c": {
              "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
              "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2},
              "h4.test": {"host_ip": "192.0.2.4", "hostnet": 4}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_new_member_and_the_unstarted_ones_are_named_from_clusters_json() {
        let clusters = clusters();
        let me = clusters.host("h4.test").unwrap();
        let members = vec![
            (
                "h1.test".to_owned(),
                vec!["https://192.0.2.1:2380".to_owned()],
            ),
            // Added, not started: etcd knows no name yet.
            (String::new(), vec!["https://192.0.2.2:2380".to_owned()]),
            (String::new(), vec!["https://192.0.2.4:2380".to_owned()]),
        ];
        assert_eq!(
            initial_cluster(&clusters, me, &members),
            "h1.test=https://192.0.2.1:2380,h2.test=https://192.0.2.2:2380,\
             h4.test=https://192.0.2.4:2380"
        );
    }

    #[test]
    fn a_member_with_data_is_left_alone() {
        let clusters = clusters();
        let me = clusters.host("h4.test").unwrap();
        let system = crate::system::Recording::default();
        let paths = Paths::rooted("/r");
        system
            .create_dir(&paths.host(DATA_DIR).join("member"), 0o700)
            .unwrap();
        assert_eq!(
            enrol(&system, &paths, &clusters, me).unwrap(),
            Enrolment::HasData
        );
        assert!(Joined::load(&system, &paths).is_none());
    }
}
