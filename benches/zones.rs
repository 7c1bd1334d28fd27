//! How long srvctl-regenerate takes to render and check the DNS zones of a full-size farm on
//! its DNS master.
//!
//! Run with `cargo bench --bench zones` (named-checkconf must be installed: Debian
//! `bind9-utils`, Fedora `bind-utils`). Cargo builds the release binaries
//! along with the benchmark; this program runs the `sc` and `srvctl-regenerate` next to it.
//!
//! Setup (not timed): the farm of `benches/farm` (4,000 containers on `h1.test`), with
//! `h1.test` the cluster's DNS master (`"dns": "master"`): 4,000 zones, one per site (the farm
//! sets no company domain, whose zone would hold the preview names).
//!
//! Timed, as whole processes:
//! (a) the first `srvctl-regenerate --root R`, which renders every zone and has
//!     `named-checkconf -z` load them all before they are written (the certificates are made in an untimed warm-up
//!     without the DNS role), 3 runs with root/run emptied before each;
//! (b) `sc add-ve` of one more site, then `srvctl-regenerate`: the time of the regenerate
//!     alone, and how many zone files it wrote, 5 runs.
//!
//! Each run count can be scaled with `SRVCTL_BENCH_SCALE` (a multiplier, default 1).

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use farm::{CLUSTERS, CONTAINERS, HOSTNAME, beside, report, timed};

/// The farm's cluster with its first host as the DNS master.
fn dns_master_clusters() -> String {
    let dns = r#""h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca","dns":"master","#;
    let plain = r#""h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca","#;
    assert!(CLUSTERS.contains(plain), "the farm's clusters.json changed");
    CLUSTERS.replace(plain, dns)
}

fn command(bin: &Path, root: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--root")
        .arg(root)
        .env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run srvctl-regenerate under `root`: its time and the zone files it wrote.
fn regenerate(bin: &Path, root: &Path) -> (Duration, usize) {
    let mut cmd = command(bin, root);
    cmd.arg("--json");
    let (t, stdout) = timed(cmd);
    let outcome: serde_json::Value = serde_json::from_str(&stdout).expect("JSON outcome");
    let zones = outcome["written"]
        .as_array()
        .map_or(0, |w| w.iter().filter(|p| is_zone(p)).count());
    (t, zones)
}

fn is_zone(path: &serde_json::Value) -> bool {
    path.as_str()
        .is_some_and(|p| p.contains("/dns/zones/") && p.ends_with(".zone"))
}

fn main() -> ExitCode {
    let (Some(sc), Some(regen)) = (beside("sc"), beside("srvctl-regenerate")) else {
        eprintln!(
            "zones bench: cannot find sc and srvctl-regenerate next to {:?}; run `cargo bench --bench zones`",
            std::env::current_exe().ok()
        );
        return ExitCode::FAILURE;
    };
    let missing: Vec<&str> = ["named-checkconf", "named-checkzone"]
        .into_iter()
        .filter(|p| {
            !Command::new(p)
                .arg("-v")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("zones bench: {} not installed", missing.join(" and "));
        return ExitCode::FAILURE;
    }
    let scale: usize = std::env::var("SRVCTL_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let owners = farm::populate(root);
    // The certificates first, as a host has them before it takes the DNS role.
    regenerate(&regen, root);
    std::fs::write(root.join("etc/srvctl/clusters.json"), dns_master_clusters())
        .expect("write clusters.json");

    // (a) Every zone rendered and checked.
    let mut times = Vec::new();
    for _ in 0..3 * scale {
        std::fs::remove_dir_all(root.join("run")).expect("empty root/run");
        let (t, zones) = regenerate(&regen, root);
        assert_eq!(zones, CONTAINERS, "not every zone was written");
        times.push(t);
    }
    report(
        &format!("regenerate on the DNS master, first run ({CONTAINERS} zones)"),
        times,
    );

    // (b) One more site, then regenerate.
    let mut times = Vec::new();
    let mut written = Vec::new();
    for k in 0..5 * scale {
        let mut add = command(&sc, root);
        add.args([
            "add-ve",
            &format!("zones{k}.example.net"),
            "--no-start",
            "--user",
        ])
        .arg(&owners[k % owners.len()]);
        timed(add);
        let (t, zones) = regenerate(&regen, root);
        assert!(zones >= 1, "the new site's zone was not written");
        times.push(t);
        written.push(zones);
    }
    report(
        &format!("regenerate on the DNS master after one add-ve ({CONTAINERS} sites)"),
        times,
    );
    println!("zone files written by each of those runs: {written:?}");
    ExitCode::SUCCESS
}
