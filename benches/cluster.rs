//! How long `sc add-ve` takes through the cluster datastore against a host alone, and how
//! long a change takes to reach another host's cache through its srvctl-sync.
//!
//! Run with `cargo bench --bench cluster` (needs `/usr/bin/etcd`, Debian's etcd-server).
//! Setup (not timed): three real etcd members with TLS on 127.0.0.11..13 (the harness of the
//! integration tests, `tests/common/etcd.rs`), each host a scratch root; a srvctl-sync on h2.
//!
//! Timed: N (default 50, or `SRVCTL_BENCH_N`) complete `sc add-ve NAME --no-start` processes
//! on h1 through etcd, then as many on a host alone (the local JSON); then N `sc add-user` on
//! h1, each from its start until h2's cache holds the new account (the commit, the watch event,
//! the reread of the document and the write of h2's cache). Printed: min, median, mean and p95.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "../tests/common/mod.rs"]
mod common;
mod farm;

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::Farm;
use common::etcd::{self, EtcdCluster};
use farm::report;

const SYNC: &str = env!("CARGO_BIN_EXE_srvctl-sync");

fn runs() -> usize {
    std::env::var("SRVCTL_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50)
}

/// N sequential `sc add-ve --no-start` on `farm`, each timed as a whole process.
fn add_ve(farm: &Farm, prefix: &str) -> Vec<Duration> {
    (0..runs())
        .map(|i| {
            let started = Instant::now();
            farm.sc_ok(&["add-ve", &format!("{prefix}{i}.example.com"), "--no-start"]);
            started.elapsed()
        })
        .collect()
}

/// N `sc add-user` on `from`, each until `to`'s cache holds the account.
fn propagation(from: &Farm, to: &Farm) -> Vec<Duration> {
    (0..runs())
        .map(|i| {
            let name = format!("\"p{i}\"");
            let started = Instant::now();
            from.sc_ok(&["add-user", &format!("p{i}")]);
            while !std::fs::read_to_string(to.datastore_path()).is_ok_and(|d| d.contains(&name)) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{name} never reached h2"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            started.elapsed()
        })
        .collect()
}

fn main() -> ExitCode {
    if !etcd::available("bench cluster") {
        return ExitCode::SUCCESS;
    }
    let cluster = EtcdCluster::start(3);
    report(
        "sc add-ve --no-start through etcd (3 members)",
        add_ve(cluster.farm(0), "e"),
    );
    let alone = Farm::with_clusters(common::ONE_HOST);
    report("sc add-ve --no-start on a host alone", add_ve(&alone, "a"));

    let mut sync = cluster
        .farm(1)
        .command_of(SYNC, &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("start srvctl-sync");
    let start = Instant::now();
    while !std::fs::read_to_string(cluster.farm(1).join("run/srvctl/sync.json"))
        .is_ok_and(|s| s.contains("\"connected\": true"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "srvctl-sync did not connect"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    report(
        "sc add-user on h1 until h2's cache holds it",
        propagation(cluster.farm(0), cluster.farm(1)),
    );
    let _ = sync.kill();
    let _ = sync.wait();
    ExitCode::SUCCESS
}
