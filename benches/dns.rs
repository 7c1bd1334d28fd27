//! The DNS master at full size: render and check the zones of 4,000 sites, and what one
//! site's change costs once each zone keeps its serial until it changes.
//!
//! Run with `cargo bench --bench dns`. Needs named-checkconf (Debian
//! `bind9-utils`, scripts/test-deps.sh); without them the regenerate figures are of unchecked
//! zones, and say so.
//!
//! Setup (not timed): the farm of `benches/farm` (4,000 containers on `h1.test`), expanded
//! once by `srvctl-regenerate --root R` (which issues the internal certificates), then h1 made
//! the cluster's DNS master.
//!
//! Timed:
//! (a) render: the 4,000 zones and the named.conf fragment in-process, 20 runs;
//! (b) the first regenerate as master: 4,000 zone files written, all of them loaded by one
//!     `named-checkconf -z` (and the fragment checked by named-checkconf), 1 run;
//! (c) regenerate after one site's record is added (`sc NAME dns add`): that zone alone is
//!     written, checked and reloaded, 5 runs;
//! (d) regenerate after a change of every zone (the host's address): 4,000 zones written and
//!     checked, 1 run. That is what any write of the datastore cost while every zone carried
//!     the datastore's time as its serial.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::{CLUSTERS, CONTAINERS, HOSTNAME, beside, ms, report, timed};
use srvctl::config::cluster::Clusters;
use srvctl::dns::zones;
use srvctl::system::paths::Paths;

/// `PROGRAM --root ROOT ARGS` as the farm's host; panics if it fails. Returns the time and
/// the outcome `--json` printed, if any.
fn run(program: &Path, root: &Path, args: &[&str]) -> (Duration, serde_json::Value) {
    let mut cmd = Command::new(program);
    cmd.env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (t, out) = timed(cmd);
    (t, serde_json::from_str(&out).unwrap_or_default())
}

/// How many zone files an outcome says were written.
fn zones_written(outcome: &serde_json::Value) -> usize {
    outcome["written"].as_array().map_or(0, |w| {
        w.iter()
            .filter(|p| p.as_str().is_some_and(|p| p.ends_with(".zone")))
            .count()
    })
}

fn main() -> ExitCode {
    let (Some(regenerate), Some(sc)) = (beside("srvctl-regenerate"), beside("sc")) else {
        eprintln!("dns bench: cannot find srvctl-regenerate and sc; run `cargo bench --bench dns`");
        return ExitCode::FAILURE;
    };
    let system = srvctl::system::Local::new(true);
    let checked = srvctl::dns::guard::Checkers::find(&system).is_some();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("create the root");
    farm::populate(&root);
    run(&regenerate, &root, &["--json"]);
    let master = CLUSTERS.replace(r#""role":"ca","#, r#""role":"ca","dns":"master","#);
    let clusters_json = root.join("etc/srvctl/clusters.json");
    std::fs::write(&clusters_json, &master).expect("write clusters.json");
    let checks = if checked {
        "loaded by named-checkconf -z"
    } else {
        "UNCHECKED: named-checkconf is not installed"
    };

    // (a) Render, in-process.
    let paths = Paths::rooted(&root);
    let state = srvctl::store::read(&system, &paths).expect("datastore");
    let clusters = Clusters::parse(&clusters_json, &master).expect("clusters");
    let me = clusters.host(HOSTNAME).expect("h1");
    let servers = [(me.name.as_str(), me.host_ip)];
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..farm::runs(20) {
        let start = Instant::now();
        let all = zones::zones(&state, &clusters, me, None);
        let bytes: usize = all
            .values()
            .map(|z| zones::zone_file(z, &servers, 1).len())
            .sum::<usize>()
            + zones::named_conf(all.keys(), &srvctl::dns::transfer::Transfers::Refused).len();
        times.push(start.elapsed());
        assert!(bytes > 0);
        count = all.len();
    }
    report(&format!("(a) render {count} zones + fragment"), times);

    // (b) The first regenerate as master.
    let (t, outcome) = run(&regenerate, &root, &["--json"]);
    let written = zones_written(&outcome);
    assert_eq!(written, CONTAINERS, "{outcome}");
    println!(
        "(b) first regenerate as DNS master: {written} zones written, {checks}: {:.0} ms",
        ms(t)
    );

    // (c) One site's record.
    let mut times = Vec::new();
    for k in 0..farm::runs(5) {
        let site = farm::container_name(k);
        let ip = format!("192.0.2.{}", 100 + k);
        run(
            &sc,
            &root,
            &[&site, "dns", "add", "--name", "api", "A", &ip],
        );
        let (t, outcome) = run(&regenerate, &root, &["--json"]);
        assert_eq!(zones_written(&outcome), 1, "{outcome}");
        assert_eq!(
            outcome["reloads"],
            serde_json::json!([format!("rndc reload {site} (if named.service runs)")]),
            "{outcome}"
        );
        times.push(t);
    }
    report(
        &format!("(c) regenerate after one site's record: 1 zone written, {checks}"),
        times,
    );

    // (d) Every zone changed.
    std::fs::write(
        &clusters_json,
        master.replace(r#""host_ip":"192.0.2.1","#, r#""host_ip":"192.0.2.9","#),
    )
    .expect("write clusters.json");
    let (t, outcome) = run(&regenerate, &root, &["--json"]);
    let written = zones_written(&outcome);
    assert_eq!(written, CONTAINERS, "{outcome}");
    println!(
        "(d) regenerate after a change of every zone: {written} zones written, {checks}: {:.0} ms",
        ms(t)
    );
    ExitCode::SUCCESS
}
