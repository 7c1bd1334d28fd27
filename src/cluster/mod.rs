//! The cluster: hosts that share one datastore through etcd, one trust root and one mesh.
//!
//! A host is in a *replicated* cluster when its cluster in clusters.json has more than one
//! host; a single host keeps the local JSON alone and runs none of this.

pub mod acme;
pub mod dns_key;
pub mod enrol;
pub mod etcd;
pub mod feed;
pub mod join;
pub mod keys;
pub mod live;
pub mod member;
pub mod pki;
pub mod renew;
pub mod status;
pub mod sync;

use crate::config::cluster::{Clusters, Host};

/// The hosts of `me`'s cluster, `me` first, then the others in clusters.json order; empty
/// when `me` is in no cluster.
pub fn members<'c>(clusters: &'c Clusters, me: &str) -> Vec<&'c Host> {
    let Some(own) = clusters.host(me) else {
        return Vec::new();
    };
    let others = clusters.members(own).filter(|h| h.name != own.name);
    std::iter::once(own).chain(others).collect()
}

/// Whether host `me` uses the cluster datastore: it is in a replicated cluster and holds its
/// cluster certificate (until then it cannot reach etcd and keeps its local document), as the
/// generator decides for srvctl-etcd and srvctl-sync.
pub fn uses_datastore(
    system: &dyn crate::system::System,
    paths: &crate::system::paths::Paths,
    clusters: &Clusters,
    me: &str,
) -> bool {
    is_replicated(clusters, me) && pki::has_identity(system, paths)
}

/// Whether `me` is in a replicated cluster (one of more than one host).
pub fn is_replicated(clusters: &Clusters, me: &str) -> bool {
    clusters.host(me).is_some_and(|h| clusters.is_replicated(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_start_with_this_host_and_stay_in_its_cluster() {
        let clusters = Clusters::parse(
            "clusters.json".as_ref(),
            r#"{"a": {"h1.a": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
                      "h2.a": {"host_ip": "192.0.2.2", "hostnet": 2}},
                "b": {"h1.b": {"host_ip": "192.0.2.3", "hostnet": 1}}}"#,
        )
        .unwrap();
        let names = |me| -> Vec<_> {
            members(&clusters, me)
                .iter()
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names("h2.a"), ["h2.a", "h1.a"]);
        assert_eq!(names("h1.b"), ["h1.b"]);
        assert!(names("nowhere.a").is_empty());
        assert!(is_replicated(&clusters, "h1.a"));
        assert!(!is_replicated(&clusters, "h1.b"));
    }
}
