//! How long one `sc add-ve` and one `sc get` take on a full-size datastore.
//!
//! Run with `cargo bench --bench add_ve`. Cargo builds the `sc` binary (release profile) along
//! with a benchmark, and this program runs it from the same target directory: the `sc` next
//! to `target/release/deps/add_ve-*`, that is `current_exe()/../../sc`.
//!
//! Setup (not timed): a scratch root holding the farm of `benches/farm` (4,000 containers).
//!
//! Timed: N (default 100, or `SRVCTL_BENCH_N`) complete `sc --root … add-ve benchK.example.com
//! --user U` processes, one after another (each parses its arguments, takes the lock, reads
//! the datastore, allocates an address, writes the whole document atomically with fsync and
//! appends to the audit log), then N `sc --root … get container NAME ip` processes.
//! Printed: min, median, mean and p95 wall-clock time per process, in milliseconds.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::{CONTAINERS, HOSTNAME, ms, report};
use srvctl::system::paths::Paths;

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

fn timed(cmd: Command) -> Duration {
    farm::timed(cmd).0
}

fn main() -> ExitCode {
    let Some(bin) = farm::beside("sc") else {
        eprintln!(
            "add_ve bench: cannot find the sc binary next to {:?}; \
             run `cargo bench --bench add_ve` (which builds it) or `cargo build --release --bin sc`",
            std::env::current_exe().ok()
        );
        return ExitCode::FAILURE;
    };
    let n = farm::runs(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();

    let start = Instant::now();
    let users = farm::populate(root);
    let size = std::fs::metadata(Paths::rooted(root).datastore())
        .expect("datastore")
        .len();
    println!("sc: {}", bin.display());
    println!(
        "setup: {CONTAINERS} containers of {} owners, datastore {:.0} KiB, built in {:.0} ms",
        users.len(),
        size as f64 / 1024.0,
        ms(start.elapsed())
    );

    // Warm the page cache and the binary once, untimed.
    timed(sc(
        &bin,
        root,
        &["get", "container", &farm::container_name(0), "ip"],
    ));

    let add: Vec<Duration> = (0..n)
        .map(|k| {
            let name = format!("bench{k}.example.com");
            let user = &users[k % users.len()];
            timed(sc(&bin, root, &["add-ve", &name, "--user", user]))
        })
        .collect();
    report(
        "sc add-ve (lock, read, allocate, fsync'd atomic write, audit)",
        add,
    );

    let get: Vec<Duration> = (0..n)
        .map(|k| {
            let name = farm::container_name((k * 37) % CONTAINERS);
            timed(sc(&bin, root, &["get", "container", &name, "ip"]))
        })
        .collect();
    report("sc get container NAME ip (read only)", get);

    // The datastore side of `sc status` (under --root systemd is not asked for live states).
    let status: Vec<Duration> = (0..n.min(20))
        .map(|_| timed(sc(&bin, root, &["status", "--json"])))
        .collect();
    report("sc status --json, every container (datastore side)", status);

    let system = srvctl::system::Local::new(true);
    let state = srvctl::store::read(&system, &Paths::rooted(root)).expect("read the datastore");
    assert_eq!(state.containers.len(), CONTAINERS + n);
    ExitCode::SUCCESS
}
