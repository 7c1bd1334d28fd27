//! The replicated datastore against real etcd members (three on 127.0.0.11..13, real TLS):
//! concurrent writes from two hosts, writes with one member down, refusal without quorum (one
//! line, quickly, the cache untouched, reads still answered), and recovery. Needs no root.

// Tests may use the real file system and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use common::Run;
use common::etcd::{self, EtcdCluster};
use srvctl::cluster::keys;
use srvctl::model::State;

/// The datastore as etcd holds it, joined into one document.
fn etcd_state(cluster: &EtcdCluster) -> State {
    let keys = cluster.document_keys(0);
    let doc = keys::join(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
    State::from_json(&doc).unwrap()
}

fn finish(child: Child) -> Run {
    Run::from_output(child.wait_with_output().expect("wait for sc"))
}

#[test]
fn fifty_concurrent_add_ve_from_two_hosts_all_land_with_distinct_addresses() {
    if !etcd::available("fifty_concurrent_add_ve") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    let children: Vec<(String, Child)> = (0..50)
        .map(|i| {
            let name = format!("c{i}.example.com");
            let farm = cluster.farm(i % 2);
            let child = farm
                .command(&["add-ve", &name, "--no-start"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sc");
            (name, child)
        })
        .collect();
    for (name, child) in children {
        let run = finish(child);
        assert!(run.success(), "add-ve {name}: {run:#?}\n{}", cluster.logs());
    }
    let state = etcd_state(&cluster);
    assert_eq!(state.containers.len(), 50);
    let addresses: BTreeSet<_> = state.containers.values().map(|c| c.ip).collect();
    assert_eq!(addresses.len(), 50, "{addresses:?}");
    for i in 0..2 {
        let audited = cluster.farm(i).audit_records();
        assert_eq!(
            audited.len(),
            25,
            "one audit record per command: {audited:#?}"
        );
    }
    // The third host's cache catches up on its first write.
    let third = cluster.farm(2);
    third.sc_ok(&["add-user", "carol"]);
    let cached = third.state();
    assert_eq!(cached.containers.len(), 50);
    assert_eq!(cached, etcd_state(&cluster));
}

#[test]
fn writes_go_on_with_one_member_down_and_are_refused_without_quorum() {
    if !etcd::available("writes_without_quorum") {
        return;
    }
    let mut cluster = EtcdCluster::start(3);
    let h1 = cluster.farm(0);
    h1.sc_ok(&["add-ve", "first.example.com", "--no-start"]);

    cluster.stop_member(2);
    let h1 = cluster.farm(0);
    h1.sc_ok(&["add-ve", "second.example.com", "--no-start"]);

    cluster.stop_member(1);
    let h1 = cluster.farm(0);
    let before = h1.json_files();
    let started = Instant::now();
    let run = h1.sc(&["add-ve", "third.example.com", "--no-start"]);
    let took = started.elapsed();
    let line = run.refused();
    assert!(line.contains("no quorum"), "{line}");
    assert!(
        line.contains("1 of 3 etcd members reachable: h1.test"),
        "{line}"
    );
    assert_eq!(run.code, Some(12), "the unavailable kind: {run:#?}");
    assert!(took < Duration::from_secs(8), "refused after {took:?}");
    assert_eq!(h1.json_files(), before, "a refused write changes no file");
    // Reads answer from the cache.
    let status = h1.sc_ok(&["status"]);
    assert!(status.contains("second.example.com"), "{status}");
    let ip = h1.sc_ok(&["get", "container", "first.example.com", "ip"]);
    assert!(ip.starts_with("10.16.0."), "{ip}");
    println!("refused without quorum after {took:?}");

    cluster.start_members(&[1, 2]);
    cluster
        .farm(1)
        .sc_ok(&["add-ve", "fourth.example.com", "--no-start"]);
    let h1 = cluster.farm(0);
    h1.sc_ok(&["add-ve", "fifth.example.com", "--no-start"]);
    let names: Vec<String> = h1
        .state()
        .containers
        .keys()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "fifth.example.com",
            "first.example.com",
            "fourth.example.com",
            "second.example.com"
        ]
    );
}

#[test]
fn a_datastore_of_thousands_of_records_seeds_the_cluster_and_reaches_another_host() {
    if !etcd::available("thousands_of_records") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    // 5,000 records of about 1 KB (set aside: their user does not exist; kept as found),
    // more than the 4 MiB a gRPC client reads by default.
    let note = "n".repeat(900);
    let containers: serde_json::Map<String, serde_json::Value> = (0..5000)
        .map(|i| {
            let record = serde_json::json!({"user": "nobody", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root", "note": note});
            (format!("bulk{i}.example.com"), record)
        })
        .collect();
    let h1 = cluster.farm(0);
    h1.write_datastore(&serde_json::json!({"schema_version": 1, "containers": containers}));
    h1.sc_ok(&["add-user", "seed"]);
    assert_eq!(
        cluster.document_keys(0).len(),
        5000 + 3,
        "records, user, version, head"
    );
    let h3 = cluster.farm(2);
    h3.sc_ok(&["add-user", "other"]);
    let state = h3.state();
    assert_eq!(state.set_aside.len(), 5000);
    assert!(state.users.keys().any(|u| u.as_str() == "seed"));
    assert_eq!(state, etcd_state(&cluster));
}

#[test]
fn a_host_identity_from_another_issuer_is_refused_in_one_line() {
    if !etcd::available("identity_from_another_issuer") {
        return;
    }
    let cluster = EtcdCluster::start(3);
    let impostor = etcd::impostor(&cluster, 2);
    let run = impostor.sc(&["add-user", "mallory"]);
    let line = run.refused();
    assert!(line.contains("certificate not accepted"), "{line}");
    assert_eq!(impostor.datastore_bytes(), None);
    assert!(cluster.document_keys(0).is_empty(), "nothing reached etcd");
}
