//! How long one `sc add-ve` and one `sc get` take on a full-size datastore.
//!
//! Run with `cargo bench --bench add_ve`. Cargo builds the `sc` binary (release profile) along
//! with a benchmark, and this program runs it from the same target directory: the `sc` next
//! to `target/release/deps/add_ve-*`, that is `current_exe()/../../sc`.
//!
//! Setup (not timed): a scratch root whose datastore holds 4,000 containers on `h1.test`,
//! spread over 15 resellers × 2 users (about 134 per bridge; a bridge holds at most 251),
//! built in-process with `srvctl::ops` and written with `srvctl::store::Writer`.
//!
//! Timed: N (default 100, or `SRVCTL_BENCH_N`) complete `sc --root … add-ve benchK.example.com
//! --user U` processes, one after another (each parses its arguments, takes the lock, reads
//! the datastore, allocates an address, writes the whole document atomically with fsync and
//! appends to the audit log), then N `sc --root … get container NAME ip` processes.
//! Printed: min, median, mean and p95 wall-clock time per process, in milliseconds.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use srvctl::cluster::Clusters;
use srvctl::model::State;
use srvctl::ops::{self, Context};
use srvctl::paths::Paths;
use srvctl::store::Writer;

const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#;
const HOSTNAME: &str = "h1.test";
const CONTAINERS: usize = 4_000;
const RESELLERS: usize = 15;
const USERS_PER_RESELLER: usize = 2;

/// The `sc` binary Cargo built for this benchmark.
fn find_sc() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("sc")))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        option_env!("CARGO_BIN_EXE_sc")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    })
}

/// Write a datastore of `CONTAINERS` containers under `root`; returns the owners' names and
/// the containers' names.
fn populate(root: &Path) -> (Vec<String>, Vec<String>) {
    let etc = root.join("etc/srvctl");
    std::fs::create_dir_all(&etc).expect("create etc/srvctl");
    std::fs::write(etc.join("clusters.json"), CLUSTERS).expect("write clusters.json");
    let clusters = Clusters::parse(&etc.join("clusters.json"), CLUSTERS).expect("clusters");
    let ctx = Context {
        host: clusters.host(HOSTNAME),
        hostname: HOSTNAME,
        caller: "root",
        now: "2026-01-01T00:00:00Z",
    };
    let mut state = State::default();
    let mut users = Vec::new();
    for r in 1..=RESELLERS {
        let reseller = format!("reseller{r}");
        ops::add_reseller(&mut state, &ctx, &reseller).expect("add reseller");
        for u in 1..=USERS_PER_RESELLER {
            let user = format!("user{r}-{u}");
            ops::add_user(&mut state, &ctx, &user, Some(&reseller)).expect("add user");
            users.push(user);
        }
    }
    let mut names = Vec::with_capacity(CONTAINERS);
    for i in 0..CONTAINERS {
        let name = format!("site{i}.example.com");
        let owner = &users[i % users.len()];
        ops::add_container(&mut state, &ctx, &name, Some(owner)).expect("add container");
        names.push(name);
    }
    let paths = Paths::rooted(root);
    let (mut writer, _) = Writer::lock(&paths).expect("lock the datastore");
    writer.commit(&state).expect("write the datastore");
    (users, names)
}

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

/// Run `cmd` once, timed; panics if it fails.
fn timed(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("run sc");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let n = times.len();
    let mean = times.iter().sum::<Duration>() / n as u32;
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    };
    let p95 = times[((n * 95).div_ceil(100)).saturating_sub(1)];
    println!(
        "{what}: n={n} min={:.2} ms median={:.2} ms mean={:.2} ms p95={:.2} ms max={:.2} ms",
        ms(times[0]),
        ms(median),
        ms(mean),
        ms(p95),
        ms(times[n - 1]),
    );
}

fn main() -> ExitCode {
    let Some(bin) = find_sc() else {
        eprintln!(
            "add_ve bench: cannot find the sc binary next to {:?}; \
             run `cargo bench --bench add_ve` (which builds it) or `cargo build --release --bin sc`",
            std::env::current_exe().ok()
        );
        return ExitCode::FAILURE;
    };
    let n: usize = std::env::var("SRVCTL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();

    let start = Instant::now();
    let (users, names) = populate(root);
    let size = std::fs::metadata(Paths::rooted(root).datastore())
        .expect("datastore")
        .len();
    println!("sc: {}", bin.display());
    println!(
        "setup: {CONTAINERS} containers, {} users under {RESELLERS} resellers, datastore {:.0} KiB, built in {:.0} ms",
        users.len(),
        size as f64 / 1024.0,
        ms(start.elapsed())
    );

    // Warm the page cache and the binary once, untimed.
    timed(sc(&bin, root, &["get", "container", &names[0], "ip"]));

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
            let name = &names[(k * 37) % names.len()];
            timed(sc(&bin, root, &["get", "container", name, "ip"]))
        })
        .collect();
    report("sc get container NAME ip (read only)", get);

    let state = srvctl::store::read(&Paths::rooted(root)).expect("read the datastore");
    assert_eq!(state.containers.len(), CONTAINERS + n);
    ExitCode::SUCCESS
}
