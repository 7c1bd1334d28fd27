//! The sync service against real etcd members (three on 127.0.0.11..13, real TLS): a write
//! on one host reaches the cache of the others by itself, the service says when etcd is out of
//! reach and catches up when it is back, and `sc regenerate all-hosts` reaches every host.
//! A host whose certificate nears its end gets a new one from the CA host through the
//! datastore. The DNS master makes the cluster's transfer key once and a slave installs the
//! same one. Each host is a scratch root, so the service prints the systemd requests it would
//! make.

// Tests may use the real file system and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::Farm;
use common::etcd::{self, EtcdCluster};
use common::sync::{SyncService, until};
use srvctl::cluster::pki;
use srvctl::config::cluster::Clusters;
use srvctl::system::Local;
use srvctl::system::paths::Paths;

fn cache_has(farm: &Farm, needle: &str) -> bool {
    std::fs::read_to_string(farm.datastore_path()).is_ok_and(|d| d.contains(needle))
}

fn sync_status(farm: &Farm) -> serde_json::Value {
    std::fs::read(farm.join("run/srvctl/sync.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[test]
fn a_write_on_one_host_reaches_the_others_caches_by_itself() {
    if !etcd::available("sync_propagation") {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let syncs: Vec<SyncService> = (1..3)
        .map(|i| SyncService::start(cluster.farm(i)))
        .collect();
    for i in 1..3 {
        until(Duration::from_secs(10), "the sync service is up", || {
            sync_status(cluster.farm(i))["connected"] == true
        });
    }

    // From the start of the command that writes (its commit is somewhere inside).
    let start = Instant::now();
    cluster.farm(0).sc_ok(&["add-user", "bob"]);
    let mut figures = Vec::new();
    for i in 1..3 {
        until(Duration::from_secs(2), "bob reaches the cache", || {
            cache_has(cluster.farm(i), "\"bob\"")
        });
        figures.push(start.elapsed());
    }
    eprintln!("sc add-user on h1 to the other hosts' caches: {figures:?}");
    let uid = |farm: &Farm| farm.sc_ok(&["get", "user", "bob", "uid"]);
    assert_eq!(uid(cluster.farm(1)), uid(cluster.farm(0)));

    // Two of three members gone: the service says so, and keeps the cache it has.
    cluster.stop_member(0);
    cluster.stop_member(2);
    until(Duration::from_secs(20), "the service notices", || {
        sync_status(cluster.farm(1))["connected"] == false
    });
    let error = sync_status(cluster.farm(1))["error"].to_string();
    assert!(
        error.contains("quorum") || error.contains("reachable"),
        "{error}"
    );
    assert!(cache_has(cluster.farm(1), "\"bob\""));

    // Back again: a write on h1 reaches h2 without anyone touching h2.
    cluster.start_members(&[0, 2]);
    cluster.farm(0).sc_ok(&["add-user", "carol"]);
    let took = until(Duration::from_secs(20), "h2 catches up", || {
        cache_has(cluster.farm(1), "\"carol\"")
    });
    eprintln!("catch-up after quorum came back: {took:?}");
    // The status file follows at the end of the round that refreshed the cache.
    until(
        Duration::from_secs(5),
        "the service says it is current",
        || sync_status(cluster.farm(1))["connected"] == true,
    );

    // The service reruns the configuration when the document changed.
    let printed: Vec<String> = syncs.into_iter().map(SyncService::stop).collect();
    for out in &printed {
        assert!(out.contains("srvctl-regenerate.service"), "{out}");
        assert!(out.contains("machines.target"), "{out}");
    }
}

#[test]
fn regenerate_all_hosts_reaches_every_sync_service() {
    if !etcd::available("regenerate_all_hosts") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    let sync = SyncService::start(cluster.farm(2));
    until(Duration::from_secs(10), "the sync service is up", || {
        sync_status(cluster.farm(2))["connected"] == true
    });
    cluster.farm(0).sc_ok(&["regenerate", "all-hosts"]);
    std::thread::sleep(Duration::from_secs(1));

    // sc cluster status on h1: three members, one leader, and h3's report through its sync.
    let status: serde_json::Value =
        serde_json::from_str(&cluster.farm(0).sc_ok(&["--json", "cluster", "status"])).unwrap();
    assert_eq!(status["quorum"], true, "{status:#}");
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{status:#}");
    assert_eq!(members.iter().filter(|m| m["leader"] == true).count(), 1);
    assert!(members.iter().all(|m| m["etcd"] == "up"), "{status:#}");
    let h3 = &members[2];
    assert_eq!(h3["host"], etcd::host_name(2));
    assert_eq!(h3["reporting"], true, "{status:#}");
    assert_eq!(
        members[1]["seen"],
        serde_json::Value::Null,
        "h2 runs no sync service"
    );
    let text = cluster.farm(0).sc_ok(&["cluster", "status"]);
    assert!(
        text.contains("quorum yes") && text.contains(&etcd::host_name(2)),
        "{text}"
    );

    let out = sync.stop();
    assert!(out.contains("srvctl-regenerate.service"), "{out}");
}

#[test]
fn a_host_near_expiry_renews_its_certificate_through_the_ca_host() {
    if !etcd::available("renewal") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    let (h1, h2) = (cluster.farm(0), cluster.farm(1));
    let text = std::fs::read_to_string(h1.join("etc/srvctl/clusters.json")).unwrap();
    let clusters = Clusters::parse("clusters.json".as_ref(), &text).unwrap();
    let (ca, me) = (
        clusters.host(&etcd::host_name(0)).unwrap(),
        clusters.host(&etcd::host_name(1)).unwrap(),
    );
    let system = Local::new(true);
    let (paths1, paths2) = (Paths::rooted(h1.root()), Paths::rooted(h2.root()));
    // h2's identity, as it joined by hand, but with 10 days left.
    let csr = pki::request(&system, &paths2, &clusters, me)
        .unwrap()
        .csr
        .unwrap();
    let signed = pki::sign(&system, &paths1, &clusters, ca, &csr, 10).unwrap();
    pki::accept(&system, &paths2, me, &signed.bundle).unwrap();
    let key = |farm: &Farm| std::fs::read(farm.join(pki::HOST_KEY.trim_start_matches('/')));
    let old_key = key(h2).unwrap();
    let expiry = || pki::expiry(&system, &paths2).unwrap();
    let old_expiry = expiry();

    let syncs = [SyncService::start(h1), SyncService::start(h2)];
    let took = until(Duration::from_secs(10), "h2 renews its certificate", || {
        expiry() > old_expiry && !pki::has_next_key(&system, &paths2)
    });
    eprintln!("renewal through the datastore: {took:?}");
    assert!(expiry().duration_since(old_expiry).as_hours() > 24 * 300);
    assert_ne!(key(h2).unwrap(), old_key, "a new key");
    // The round that installed it has logged once the next round writes its status.
    let seen = sync_status(h2)["updated"].clone();
    until(Duration::from_secs(10), "h2's next status", || {
        sync_status(h2)["updated"] != seen
    });
    let [out1, out2] = syncs.map(SyncService::stop);
    assert!(out1.contains("signed the renewal of h2.test"), "{out1}");
    assert!(
        out2.contains("installed the renewed host certificate"),
        "{out2}"
    );
    assert!(out2.contains("srvctl-etcd.service"), "{out2}");

    // The requests are gone from the datastore, and no key ever was in it: the CA key is
    // on h1 only.
    let conn = cluster.connect(0).expect("connect");
    let mut kv = conn.kv();
    let all = conn
        .request(
            "the test's read",
            kv.get(
                conn.prefix(),
                Some(etcd_client::GetOptions::new().with_prefix()),
            ),
        )
        .expect("read every key");
    for kv in all.kvs() {
        let name = String::from_utf8_lossy(kv.key());
        assert!(
            !name.contains("/csr/") && !name.contains("/cert/"),
            "{name}"
        );
        assert!(
            !String::from_utf8_lossy(kv.value()).contains("PRIVATE KEY"),
            "{name}"
        );
    }
    let ca_key = pki::CA_KEY.trim_start_matches('/');
    assert!(h1.join(ca_key).is_file());
    for i in 1..3 {
        assert!(!cluster.farm(i).join(ca_key).exists());
    }
}

#[test]
fn the_dns_master_makes_the_transfer_key_once_and_a_slave_installs_it() {
    // The key's directory is handed to root and named's group: root only.
    if !etcd::available("dns_transfer_key") || !common::real::require_root("dns_transfer_key") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    let (h1, h2) = (cluster.farm(0), cluster.farm(1));
    // h1 the DNS master, h2 its slave, h3 no DNS; named's group is the test's own.
    let gid = nix::unistd::getgid().as_raw();
    for farm in [h1, h2] {
        let path = farm.join("etc/srvctl/clusters.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["test"][etcd::host_name(0)]["dns"] = "master".into();
        doc["test"][etcd::host_name(1)]["dns"] = "slave".into();
        std::fs::write(&path, doc.to_string()).unwrap();
        std::fs::write(
            farm.join("etc/group"),
            format!("root:x:0:\nbind:x:{gid}:\n"),
        )
        .unwrap();
    }
    let file = |farm: &Farm| std::fs::read(farm.join("var/lib/srvctl/dns/transfer.key")).ok();
    let syncs = [SyncService::start(h1), SyncService::start(h2)];
    let took = until(Duration::from_secs(15), "both hosts have the key", || {
        file(h1).is_some() && file(h2).is_some()
    });
    eprintln!("transfer key on the master and the slave: {took:?}");
    assert_eq!(file(h1), file(h2), "one key for the cluster");
    let stored = cluster.keys_under(0, "dns/");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let secret = String::from_utf8(stored[0].1.clone()).unwrap();
    assert_eq!(
        file(h1).unwrap(),
        srvctl::cluster::dns_key::key_file(&secret)
            .unwrap()
            .into_bytes()
    );
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(h2.join("var/lib/srvctl/dns")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.gid()), (0o750, gid));
    let [out1, out2] = syncs.map(SyncService::stop);
    for out in [&out1, &out2] {
        assert!(
            out.contains("installed the cluster's DNS transfer key"),
            "{out}"
        );
    }
}
