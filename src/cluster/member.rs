//! The registry module `etcd`: the configuration of this host's etcd member
//! (`/run/srvctl/etcd/etcd.conf.yml`, etcd's `--config-file`), read by srvctl-etcd.service.
//!
//! Only a host of a replicated cluster (more than one host in clusters.json) that holds its
//! cluster identity (`cluster/host.crt`, see [`crate::cluster::pki`]) has a member. Every
//! member listens on its host's `host_ip` only (clients on 2379, peers on 2380), is named by
//! the host's fqdn, and trusts only the cluster CA, for peers and for clients alike: a site
//! certificate of the internal CA never reaches etcd.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use crate::cluster::enrol::Joined;
use crate::cluster::pki;
use crate::config::cluster::{Clusters, Host};
use crate::engine::registry::{Inputs, Module};
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::Tree;
use crate::system::Request;

/// Where the member's configuration lives, relative to the host root.
pub const CONFIG_DIR: &str = "run/srvctl/etcd";
/// The member's configuration file, relative to the host root.
pub const CONFIG: &str = "run/srvctl/etcd/etcd.conf.yml";
/// The member's data directory.
pub const DATA_DIR: &str = "/var/lib/srvctl/etcd";
/// The unit that runs the member.
pub const UNIT: &str = "srvctl-etcd.service";
/// The port of etcd's clients.
pub const CLIENT_PORT: u16 = 2379;
/// The port of etcd's peers.
pub const PEER_PORT: u16 = 2380;

/// The client URL of `host`'s member: `https://HOST_IP:2379`.
pub fn client_url(host: &Host) -> String {
    url(host.host_ip, CLIENT_PORT)
}

/// The peer URL of `host`'s member: `https://HOST_IP:2380`.
pub fn peer_url(host: &Host) -> String {
    url(host.host_ip, PEER_PORT)
}

fn url(ip: Ipv4Addr, port: u16) -> String {
    format!("https://{ip}:{port}")
}

/// What systemd is asked once a host holds its cluster certificate (`sc cluster accept`, or
/// `sc cluster request` on the CA host): the generator now wants the member, the sync service
/// and the mesh tunnels, regenerate renders their configuration, and they are started without
/// waiting (a member of a new cluster waits for the others).
pub fn bring_up(clusters: &Clusters, me: &Host) -> Vec<Request> {
    let mut requests = vec![
        Request::DaemonReload,
        Request::Start(crate::ops::follow_up::REGENERATE_UNIT.into()),
        Request::Trigger(UNIT.into()),
        Request::Trigger(crate::cluster::sync::UNIT.into()),
    ];
    requests.extend(
        crate::mesh::openvpn::instances(clusters, &me.name)
            .iter()
            .map(|i| Request::Trigger(crate::mesh::openvpn::mesh_unit(i))),
    );
    requests
}

/// Whether `me` runs an etcd member: in a replicated cluster, once it holds its identity.
pub fn runs_member(clusters: &Clusters, me: &Host, identity: bool) -> bool {
    identity && clusters.is_replicated(me)
}

#[derive(Serialize)]
struct Member<'a> {
    name: &'a str,
    data_dir: &'a str,
    client_url: String,
    peer_url: String,
    initial_cluster: String,
    state: &'static str,
    token: &'a str,
    ca: &'a str,
    cert: &'a str,
    key: &'a str,
}

/// Add `me`'s member configuration to `tree` (nothing unless [`runs_member`]).
pub fn render(
    tree: &mut Tree,
    clusters: &Clusters,
    me: &Host,
    identity: bool,
    joined: Option<&Joined>,
    templates: &Templates,
) -> Result<(), TemplateError> {
    if !runs_member(clusters, me, identity) {
        return Ok(());
    }
    // A member added to a running cluster joins it with the membership it was added to; the
    // members of a cluster that forms together all start from clusters.json.
    let (initial_cluster, state) = match joined {
        Some(j) => (j.initial_cluster.clone(), "existing"),
        None => (
            clusters
                .members(me)
                .map(|h| format!("{}={}", h.name, peer_url(h)))
                .collect::<Vec<_>>()
                .join(","),
            "new",
        ),
    };
    let member = Member {
        name: &me.name,
        data_dir: DATA_DIR,
        client_url: client_url(me),
        peer_url: peer_url(me),
        initial_cluster,
        state,
        token: &me.cluster,
        ca: pki::CA_CERT,
        cert: pki::HOST_CERT,
        key: pki::HOST_KEY,
    };
    tree.file(CONFIG, templates.render("etcd.conf.yml", &member)?);
    Ok(())
}

/// The etcd module: this host's member configuration. A changed configuration restarts the
/// member if it runs (a member that has data ignores the `initial-*` settings).
pub struct Etcd;

impl Module for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
        render(
            tree,
            inputs.clusters,
            inputs.me,
            inputs.cluster_identity,
            inputs.joined,
            inputs.templates,
        )
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[CONFIG_DIR]
    }

    fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
        if changed.iter().any(|p| *p == Path::new(CONFIG)) {
            vec![Request::TryRestart(UNIT.into())]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"{"c": {
        "h1.test": {"host_ip": "127.0.0.11", "hostnet": 1, "role": "ca"},
        "h2.test": {"host_ip": "127.0.0.12", "hostnet": 2},
        "h3.test": {"host_ip": "127.0.0.13", "hostnet": 3}},
      "solo": {"h9.test": {"host_ip": "127.0.0.19", "hostnet": 1}}}"#;

    fn rendered(name: &str, identity: bool) -> Option<String> {
        rendered_joined(name, identity, None)
    }

    fn rendered_joined(name: &str, identity: bool, joined: Option<&Joined>) -> Option<String> {
        let clusters = Clusters::parse(Path::new("clusters.json"), THREE).unwrap();
        let templates = Templates::load(&crate::system::Recording::default(), None).unwrap();
        let mut tree = Tree::default();
        let me = clusters.host(name).unwrap();
        render(&mut tree, &clusters, me, identity, joined, &templates).unwrap();
        tree.entries()
            .map(|(path, entry)| {
                assert_eq!(path, Path::new(CONFIG));
                match entry {
                    crate::engine::tree::Entry::File { bytes, .. } => {
                        String::from_utf8(bytes.clone()).unwrap()
                    }
                    other => panic!("{other:?}"),
                }
            })
            .next()
    }

    #[test]
    fn a_member_listens_on_its_host_ip_and_knows_every_peer() {
        let text = rendered("h2.test", true).unwrap();
        for line in [
            r#"name: "h2.test""#,
            r#"data-dir: "/var/lib/srvctl/etcd""#,
            r#"listen-client-urls: "https://127.0.0.12:2379""#,
            r#"advertise-client-urls: "https://127.0.0.12:2379""#,
            r#"listen-peer-urls: "https://127.0.0.12:2380""#,
            r#"initial-cluster: "h1.test=https://127.0.0.11:2380,h2.test=https://127.0.0.12:2380,h3.test=https://127.0.0.13:2380""#,
            r#"initial-cluster-token: "c""#,
            r#"  trusted-ca-file: "/var/lib/srvctl/pki/cluster/ca.crt""#,
            r#"  cert-file: "/var/lib/srvctl/pki/cluster/host.crt""#,
            r#"  client-cert-auth: true"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("127.0.0.1:"), "{text}");
    }

    #[test]
    fn a_member_added_to_a_running_cluster_joins_it_as_existing() {
        let formed = rendered("h3.test", true).unwrap();
        assert!(
            formed.contains("initial-cluster-state: \"new\"\n"),
            "{formed}"
        );
        let joined = Joined {
            initial_cluster: "h1.test=https://127.0.0.11:2380,h3.test=https://127.0.0.13:2380"
                .into(),
        };
        let text = rendered_joined("h3.test", true, Some(&joined)).unwrap();
        assert!(
            text.contains("initial-cluster-state: \"existing\"\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "initial-cluster: \"{}\"\n",
                joined.initial_cluster
            )),
            "{text}"
        );
    }

    #[test]
    fn no_member_alone_or_without_an_identity() {
        assert_eq!(rendered("h9.test", true), None);
        assert_eq!(rendered("h2.test", false), None);
    }

    fn member<'a>(name: &'a str, data_dir: &'a str) -> Member<'a> {
        Member {
            name,
            data_dir,
            client_url: "u".into(),
            peer_url: "p".into(),
            initial_cluster: "i".into(),
            state: "new",
            token: "t",
            ca: "c",
            cert: "c",
            key: "k",
        }
    }

    #[test]
    fn a_hostile_value_stays_inside_its_quotes() {
        let templates = Templates::load(&crate::system::Recording::default(), None).unwrap();
        let render = |m: &Member| templates.render("etcd.conf.yml", m).unwrap();
        let plain = render(&member("h1", "/x"));
        let text = render(&member(
            "h1\ninitial-cluster-state: existing",
            "/x\"\n  client-cert-auth: false",
        ));
        assert_eq!(text.lines().count(), plain.lines().count(), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&r#"name: "h1\ninitial-cluster-state: existing""#),
            "{text}"
        );
        assert!(
            lines.contains(&r#"data-dir: "/x\"\n  client-cert-auth: false""#),
            "{text}"
        );
    }

    #[test]
    fn only_a_changed_configuration_restarts_the_member() {
        assert_eq!(
            Etcd.reloads(&[Path::new(CONFIG)]),
            [Request::TryRestart(UNIT.into())]
        );
        assert!(Etcd.reloads(&[]).is_empty());
    }

    #[test]
    fn a_host_with_its_certificate_starts_its_member_sync_and_tunnels_without_waiting() {
        let clusters = Clusters::parse(Path::new("clusters.json"), THREE).unwrap();
        let requests = bring_up(&clusters, clusters.host("h2.test").unwrap());
        assert_eq!(
            requests[..2],
            [
                Request::DaemonReload,
                Request::Start("srvctl-regenerate.service".into())
            ]
        );
        let triggered: Vec<&str> = requests[2..]
            .iter()
            .map(|r| match r {
                Request::Trigger(u) => u.as_str(),
                other => panic!("{other:?} waits"),
            })
            .collect();
        assert_eq!(
            triggered,
            [
                "srvctl-etcd.service",
                "srvctl-sync.service",
                "srvctl-mesh@server.service",
                "srvctl-mesh@client-1.service",
                "srvctl-mesh@client-3.service"
            ]
        );
    }
}
