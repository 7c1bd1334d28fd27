//! How long the generator and srvctl-regenerate take on a full-size datastore.
//!
//! Run with `cargo bench --bench generate`. Cargo builds the release binaries along with the
//! benchmark; this program runs the `srvctl-generator` and `srvctl-regenerate` next to it
//! (`current_exe()/../../`).
//!
//! Setup (not timed): a scratch root holding the farm of `benches/farm` (4,000 containers on
//! `h1.test` of a two-host cluster, so the host mesh and its certificates are part of the run).
//!
//! Timed, as whole processes:
//! (a) `srvctl-generator` into a fresh output directory (on /dev/shm when there is one, as
//!     systemd's generator directories are on tmpfs), 20 runs; target under 50 ms.
//! (b) the first full `srvctl-regenerate --root R` (root/run emptied and etc/hosts removed
//!     before each run; the certificates, made once in an untimed warm-up, are kept), 5 runs;
//!     target under 2 s. root/run is a tmpfs directory (on /dev/shm) like /run.
//! (c) `srvctl-regenerate --root R` with nothing to change, 20 runs; target under 250 ms.
//!
//! Each run count can be scaled with `SRVCTL_BENCH_SCALE` (a multiplier, default 1).

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::{CONTAINERS, HOSTNAME, Summary, beside, ms, timed};
use srvctl::system::paths::Paths;

fn command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Print the figures; returns whether the median met `target`.
fn report(what: &str, times: Vec<Duration>, target: Duration) -> bool {
    let s = Summary::of(times);
    let met = s.median < target;
    println!(
        "{what}: median {:.1} ms, min {:.1} ms, mean {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={}; target < {:.0} ms: {})",
        ms(s.median),
        ms(s.min),
        ms(s.mean),
        ms(s.p95),
        ms(s.max),
        s.n,
        ms(target),
        if met { "met" } else { "MISSED" }
    );
    met
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.expect("dir entry"))
        .map(|e| {
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn main() -> ExitCode {
    let (Some(generator), Some(regenerate)) =
        (beside("srvctl-generator"), beside("srvctl-regenerate"))
    else {
        eprintln!(
            "generate bench: cannot find srvctl-generator and srvctl-regenerate next to {:?}; \
             run `cargo bench --bench generate`",
            std::env::current_exe().ok()
        );
        return ExitCode::FAILURE;
    };
    let scale: usize = std::env::var("SRVCTL_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    // /run and systemd's generator directories are tmpfs on every systemd host: so are they
    // here when /dev/shm exists (root/run is a link to a tmpfs directory; etc and var stay on
    // the disk of the temporary directory).
    let tmpfs = || {
        let shm = Path::new("/dev/shm");
        shm.is_dir()
            .then(|| tempfile::tempdir_in(shm).ok())
            .flatten()
            .unwrap_or_else(|| tempfile::tempdir().expect("tempdir"))
    };
    let out_base = tmpfs();
    let run_dir = tmpfs();
    std::fs::create_dir_all(&root).expect("create the root");
    std::os::unix::fs::symlink(run_dir.path(), root.join("run")).expect("link root/run");

    let start = Instant::now();
    let owners = farm::populate(&root).len();
    // Every container has its root filesystem (empty here): the generator wants each one.
    for i in 0..CONTAINERS {
        std::fs::create_dir_all(root.join("var/lib/machines").join(farm::container_name(i)))
            .expect("create a root filesystem");
    }
    // SRVCTL_BENCH_KEEP=DIR keeps a copy of the populated root there, to profile by hand.
    if let Some(keep) = std::env::var_os("SRVCTL_BENCH_KEEP") {
        let status = std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(root.join("etc"))
            .arg(root.join("var"))
            .arg(&keep)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "copy to SRVCTL_BENCH_KEEP"
        );
    }
    let size = std::fs::metadata(Paths::rooted(&root).datastore())
        .expect("datastore")
        .len();
    println!(
        "setup: {CONTAINERS} containers of {owners} owners on {HOSTNAME}, datastore {:.0} KiB, built in {:.0} ms",
        size as f64 / 1024.0,
        ms(start.elapsed())
    );
    println!(
        "generator output under {}, root/run -> {}, the rest of the root under {}",
        out_base.path().display(),
        run_dir.path().display(),
        root.display()
    );

    // (a) The generator, into a fresh directory each run.
    let gen_run = |k: usize| {
        let out = out_base.path().join(format!("run{k}"));
        let mut cmd = command(&generator);
        cmd.env("SRVCTL_ROOT", &root)
            .arg(&out)
            .arg(out_base.path().join("early"))
            .arg(out_base.path().join("late"));
        let (t, _) = timed(cmd);
        (t, out)
    };
    let (_, warm) = gen_run(0);
    let links = count_files(&warm.join("machines.target.wants"));
    let batches = CONTAINERS.div_ceil(srvctl::containers::units::STAGGER_BATCH);
    assert_eq!(
        links,
        CONTAINERS + batches,
        "the generator did not link every container and start batch"
    );
    let times: Vec<Duration> = (1..=20 * scale)
        .map(|k| {
            let (t, out) = gen_run(k);
            std::fs::remove_dir_all(out).expect("remove the generator output");
            t
        })
        .collect();
    let mut all_met = report(
        &format!("generator ({CONTAINERS} containers)"),
        times,
        Duration::from_millis(50),
    );

    // (b) A first full regenerate: the warm-up also makes the certificates.
    let regen = || {
        let mut cmd = command(&regenerate);
        cmd.arg("--root").arg(&root).arg("--json");
        timed(cmd)
    };
    regen();
    let fresh = || {
        std::fs::remove_dir_all(run_dir.path()).expect("empty root/run");
        std::fs::create_dir(run_dir.path()).expect("empty root/run");
        let _ = std::fs::remove_file(root.join("etc/hosts"));
    };
    let mut times = Vec::new();
    for _ in 0..5 * scale {
        fresh();
        let (t, stdout) = regen();
        let outcome: serde_json::Value = serde_json::from_str(&stdout).expect("JSON outcome");
        let written = outcome["written"].as_array().map_or(0, Vec::len);
        assert!(written > 2 * CONTAINERS, "only {written} files written");
        times.push(t);
    }
    println!(
        "regenerate wrote {} files under run/ and etc/hosts",
        count_files(&root.join("run")) + 1
    );
    all_met &= report(
        &format!("regenerate, first full run ({CONTAINERS} containers)"),
        times,
        Duration::from_secs(2),
    );

    // (c) Nothing to change.
    let times: Vec<Duration> = (0..20 * scale)
        .map(|_| {
            let (t, stdout) = regen();
            let outcome: serde_json::Value = serde_json::from_str(&stdout).expect("JSON outcome");
            assert_eq!(outcome["written"], serde_json::json!([]), "not a no-op");
            assert_eq!(outcome["removed"], serde_json::json!([]), "not a no-op");
            t
        })
        .collect();
    all_met &= report(
        &format!("regenerate, nothing to change ({CONTAINERS} containers)"),
        times,
        Duration::from_millis(250),
    );
    if !all_met {
        println!("at least one target was missed");
    }
    ExitCode::SUCCESS
}
