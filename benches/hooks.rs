//! What hooks cost `sc add-ve`, and how long `sc diagnose` takes.
//!
//! Run with `cargo bench --bench hooks` (it builds the release `sc` it runs).
//!
//! Setup (not timed): a scratch root with the 4,000-container farm of `benches/farm`.
//!
//! Timed: N (default 50, or `SRVCTL_BENCH_N`) `sc --root … add-ve benchK.example.com
//! --no-start` processes without hooks, then N with three before-add-ve hooks and one
//! after-add-ve hook (each `/bin/sh` reading its JSON input), then N `sc --root … diagnose`
//! (every check on the 4,000 containers; the host has no resolver, so DNS is not waited for).
//! Printed: min, median, mean, p95 and max wall-clock time per process, in milliseconds.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::{HOSTNAME, report};

fn sc(bin: &Path, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// `n` add-ve processes, the names numbered from `first`.
fn add_ves(bin: &Path, root: &Path, first: usize, n: usize) -> Vec<Duration> {
    (first..first + n)
        .map(|k| {
            let name = format!("bench{k}.example.com");
            farm::timed(sc(bin, root, &["add-ve", &name, "--no-start"])).0
        })
        .collect()
}

fn hook(root: &Path, event: &str, name: &str, body: &str) {
    let dir = root.join(format!("etc/srvctl/hooks/{event}.d"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn main() -> ExitCode {
    let Some(bin) = farm::beside("sc") else {
        eprintln!("hooks bench: no sc binary beside it; run `cargo bench --bench hooks`");
        return ExitCode::FAILURE;
    };
    let n = farm::runs(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let start = Instant::now();
    farm::populate(root);
    // No resolver: the DNS check reports that at once.
    std::fs::write(
        root.join("etc/srvctl/clusters.json"),
        r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
    )
    .unwrap();
    println!(
        "setup: {} containers in {:.0} ms",
        farm::CONTAINERS,
        farm::ms(start.elapsed())
    );
    farm::timed(sc(&bin, root, &["status"]));

    report("add-ve, no hooks", add_ves(&bin, root, 0, n));
    for name in ["10-a", "20-b", "30-c"] {
        hook(root, "before-add-ve", name, "cat > /dev/null");
    }
    hook(root, "after-add-ve", "10-log", "cat > /dev/null");
    report("add-ve, 3 before + 1 after hook", add_ves(&bin, root, n, n));

    let diagnose: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            // Unhealthy (no certificates were issued on this scratch root) exits 1: timed all
            // the same.
            let out = sc(&bin, root, &["diagnose"]).output().expect("run");
            assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
            started.elapsed()
        })
        .collect();
    report("diagnose", diagnose);
    ExitCode::SUCCESS
}
