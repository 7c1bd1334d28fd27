//! ACME stored once for a cluster: three hosts with real etcd members (127.0.0.11..13, real
//! TLS), each running srvctl-sync, and a real ACME CA (Debian's `pebble`) on loopback.
//!
//! `pebble-challtestsrv` is the DNS of srvctl (`acme_resolvers`) and of pebble: the site's
//! names point at h3 (127.0.0.13) alone, which is a host of the cluster, so h1 and h2 may
//! order it, and pebble fetches the tokens from h3's responder (its srvctl-sync's, on
//! 127.0.0.13 at pebble's `httpPort`; h1's and h2's listen on their own addresses).
//!
//! Proves: h1 and h2 renewing at the same time make exactly one order reach pebble (the
//! other host finds the name's lock taken, or the certificate already stored); h3's
//! responder answers the tokens from etcd; one account, one certificate in etcd, no lock and
//! no token left; every host ends with the same certificate and key installed (0600) by
//! itself; a second run orders nothing on any host.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::etcd::{self, EtcdCluster};
use common::real::pebble::{CHALLTESTSRV, PEBBLE, Pebble, free_port};
use common::sync::{SyncService, until};
use common::{Farm, SC};

const SITE: &str = "site.example.com";

/// Every key below the cluster's `acme/`, after the prefix, with its value.
fn acme_keys(cluster: &EtcdCluster) -> Vec<(String, Vec<u8>)> {
    cluster.keys_under(0, "acme/")
}

fn installed(farm: &Farm) -> Option<String> {
    fs::read_to_string(farm.join(&format!("var/lib/srvctl/certs/{SITE}.pem"))).ok()
}

/// `sc certificates renew` started on every farm at once; each one's success and stderr.
fn renew_at_once(farms: &[&Farm]) -> Vec<(bool, String)> {
    let children: Vec<_> = farms
        .iter()
        .map(|farm| {
            farm.command_of(SC, &["certificates", "renew"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sc")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

/// pebble (validating on h3's `acme_listen`), three hosts with their etcd members and
/// srvctl-sync, and a site placed on h1 that every cache has; `None` when etcd or pebble is
/// missing outside CI.
fn hosts(test: &str) -> Option<(Pebble, EtcdCluster, Vec<SyncService>)> {
    if !etcd::available(test) {
        return None;
    }
    if !Path::new(PEBBLE).exists() && std::env::var_os("CI").is_none() {
        eprintln!("{test}: skipped: pebble is not installed (scripts/test-deps.sh)");
        return None;
    }
    common::real::require_tool(PEBBLE);
    common::real::require_tool(CHALLTESTSRV);
    let answering = free_port();
    let pebble = Pebble::start(answering, None);
    let cluster = EtcdCluster::start(3);
    for i in 0..3 {
        let listen = format!("{}:{answering}", etcd::host_ip(i));
        write_settings(cluster.farm(i), &pebble.directory, &pebble, &listen);
    }
    for name in [SITE.to_owned(), format!("www.{SITE}")] {
        pebble.add_a(&name, &etcd::host_ip(2).to_string());
    }
    let syncs: Vec<SyncService> = (0..3)
        .map(|i| SyncService::start(cluster.farm(i)))
        .collect();
    let connected = |farm: &Farm| {
        fs::read_to_string(farm.join("run/srvctl/sync.json"))
            .is_ok_and(|s| s.contains("\"connected\": true"))
    };
    for i in 0..3 {
        until(Duration::from_secs(15), "srvctl-sync is up", || {
            connected(cluster.farm(i))
        });
    }
    cluster.farm(0).sc_ok(&["add-ve", SITE]);
    for i in 0..3 {
        until(
            Duration::from_secs(5),
            "the site reaches every cache",
            || fs::read_to_string(cluster.farm(i).datastore_path()).is_ok_and(|d| d.contains(SITE)),
        );
    }
    Some((pebble, cluster, syncs))
}

/// settings.json of `farm`: the ACME directory, pebble's TLS CA and DNS, the responder on
/// `listen`.
fn write_settings(farm: &Farm, directory: &str, pebble: &Pebble, listen: &str) {
    let settings = serde_json::json!({
        "acme_directory": directory,
        "acme_ca_file": pebble.tls_ca(),
        "acme_listen": listen,
        "acme_resolvers": [pebble.dns],
    });
    fs::write(farm.join("etc/srvctl/settings.json"), settings.to_string()).unwrap();
}

#[test]
fn two_hosts_renew_at_once_one_orders_a_third_answers_and_all_serve_it() {
    let Some((pebble, cluster, syncs)) = hosts("acme_cluster") else {
        return;
    };
    let farms: Vec<&Farm> = (0..3).map(|i| cluster.farm(i)).collect();

    // h1 and h2 renew at once: one of them orders.
    let started = std::time::Instant::now();
    let runs = renew_at_once(&farms[..2]);
    let renewed = started.elapsed();
    let logs = || {
        format!(
            "{}\n--- h1 ---\n{}\n--- h2 ---\n{}",
            pebble.procs.logs(),
            runs[0].1,
            runs[1].1
        )
    };
    assert!(runs.iter().all(|(ok, _)| *ok), "{}", logs());
    let ordering: Vec<usize> = (0..2)
        .filter(|&i| runs[i].1.contains(&format!("{SITE}: ordering")))
        .collect();
    assert_eq!(ordering.len(), 1, "exactly one host orders:\n{}", logs());
    let other = 1 - ordering[0];
    let orderer = etcd::host_name(ordering[0]);
    let waited = runs[other]
        .1
        .contains(&format!("{SITE}: {orderer} orders it now"))
        || runs[other]
            .1
            .contains(&format!("{SITE}: installed the cluster's certificate"));
    assert!(
        waited,
        "the other host neither waited nor took it:\n{}",
        logs()
    );
    let orders = pebble.procs.logs().matches("POST /order-plz").count();
    assert_eq!(orders, 1, "orders that reached pebble:\n{}", logs());

    // Stored once: one account, one certificate; no lock and no token left behind.
    let keys = acme_keys(&cluster);
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|k| k.starts_with("acme/account/"))
            .count(),
        1,
        "{names:?}"
    );
    assert!(
        names.contains(&format!("acme/cert/{SITE}").as_str()),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|k| k.starts_with("acme/lock/") || k.starts_with("acme/challenge/")),
        "{names:?}"
    );
    let stored: serde_json::Value = serde_json::from_slice(
        &keys
            .iter()
            .find(|(k, _)| k == &format!("acme/cert/{SITE}"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(stored["meta"]["source"], "acme", "{stored}");

    // Every host installs it by itself: the same chain and key, 0600.
    for farm in &farms {
        until(
            Duration::from_secs(10),
            "the certificate reaches every host",
            || installed(farm).is_some_and(|p| p.contains("PRIVATE KEY")),
        );
    }
    eprintln!(
        "two hosts renewing at once: {renewed:?} to the end of both runs, every host serving it {:?} after the start",
        started.elapsed()
    );
    let first = installed(farms[0]).unwrap();
    for farm in &farms {
        assert_eq!(installed(farm).unwrap(), first, "the same certificate");
        let pem = farm.join(&format!("var/lib/srvctl/certs/{SITE}.pem"));
        assert_eq!(
            fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let listed: serde_json::Value =
            serde_json::from_str(&farm.sc_ok(&["certificates", "--json"])).unwrap();
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == SITE)
            .cloned()
            .unwrap_or_else(|| panic!("{SITE} not listed: {listed}"));
        assert_eq!(row["source"], "acme", "{row}");
    }
    assert!(first.starts_with(stored["chain_pem"].as_str().unwrap().trim_end()));
    assert!(first.contains(stored["key_pem"].as_str().unwrap().trim_end()));

    // A second run on every host orders nothing.
    let again = renew_at_once(&farms);
    for (ok, log) in &again {
        assert!(ok, "{log}");
        assert!(!log.contains("ordering"), "{log}");
        assert!(log.contains(&format!("{SITE}: renew after")), "{log}");
    }
    assert_eq!(pebble.procs.logs().matches("POST /order-plz").count(), 1);
    let printed: Vec<String> = syncs.into_iter().map(SyncService::stop).collect();
    assert!(
        printed[2].contains(&format!("installed the cluster's certificate of {SITE}")),
        "h3's srvctl-sync installs it:\n{}",
        printed[2]
    );
}

#[test]
fn a_host_that_dies_while_ordering_frees_the_name_when_its_lease_expires() {
    let Some((pebble, cluster, _syncs)) = hosts("acme_cluster_lease") else {
        return;
    };
    // h2's CA accepts connections and never answers: its order hangs with the lock held.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let directory = format!("https://{}/dir", silent.local_addr().unwrap());
    let listen = format!("{}:{}", etcd::host_ip(1), free_port());
    write_settings(cluster.farm(1), &directory, &pebble, &listen);
    let mut h2 = cluster
        .farm(1)
        .command_of(SC, &["certificates", "renew"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = format!("acme/lock/{SITE}");
    let holder = |cluster: &EtcdCluster| {
        acme_keys(cluster)
            .into_iter()
            .find(|(k, _)| *k == lock)
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
    };
    until(Duration::from_secs(10), "h2 takes the lock", || {
        holder(&cluster).as_deref() == Some("h2.test")
    });
    // h2 dies: nothing revokes its lease.
    h2.kill().unwrap();
    h2.wait().unwrap();
    let died = std::time::Instant::now();
    let busy = renew_at_once(&[cluster.farm(0)]);
    assert!(busy[0].0, "{}", busy[0].1);
    assert!(
        busy[0]
            .1
            .contains(&format!("{SITE}: h2.test orders it now")),
        "{}",
        busy[0].1
    );
    let freed = until(Duration::from_secs(45), "the lease expires", || {
        holder(&cluster).is_none()
    });
    let freed = died.elapsed().max(freed);
    eprintln!("the lock of a host killed while ordering was free after {freed:?}");
    assert!(
        freed >= Duration::from_secs(20),
        "freed before its lease ended: {freed:?}"
    );
    let after = renew_at_once(&[cluster.farm(0)]);
    assert!(after[0].0, "{}\n{}", after[0].1, pebble.procs.logs());
    assert!(
        after[0].1.contains(&format!("{SITE}: installed")),
        "{}",
        after[0].1
    );
    for i in 0..3 {
        until(Duration::from_secs(10), "every host installs it", || {
            installed(cluster.farm(i)).is_some_and(|p| p.contains("PRIVATE KEY"))
        });
    }
    drop(silent);
}
