//! What the benchmarks share: a full-size farm built in-process, the binaries Cargo built next
//! to the benchmark, and timing of whole processes.
//!
//! The farm: 4,000 containers on `h1.test` (of a two-host cluster, so the host mesh and its
//! certificates are part of a regenerate), owned by 80 accounts: the operator and 4 of its
//! users, and 15 resellers with 4 users each (50 containers per bridge; a bridge holds at most
//! 251). Built with `srvctl::ops` and written with `srvctl::store::Writer`, in about 50 ms.

// Each benchmark uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use srvctl::config::cluster::Clusters;
use srvctl::model::State;
use srvctl::ops::{self, Context};
use srvctl::store::Writer;
use srvctl::system::Local;
use srvctl::system::paths::Paths;

/// The cluster definition of the farm.
pub const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca","dns1":"192.0.2.53"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2,"dns1":"192.0.2.53"}}}"#;
/// The host the containers live on.
pub const HOSTNAME: &str = "h1.test";
/// How many containers the farm holds.
pub const CONTAINERS: usize = 4_000;
/// How many accounts a farm holds.
pub struct Shape {
    /// Resellers besides the operator.
    pub resellers: usize,
    /// Users of the operator.
    pub operator_users: usize,
    /// Users of each reseller, besides the reseller's own account.
    pub users_each: usize,
}

/// The farm of the benches: 80 owners.
pub const FARM: Shape = Shape {
    resellers: 15,
    operator_users: 4,
    users_each: 4,
};

/// The name of the farm's container `i`.
pub fn container_name(i: usize) -> String {
    format!("site{i}.example.com")
}

/// A binary Cargo built next to this benchmark (`current_exe()/../../NAME`).
pub fn beside(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(name)))
        .filter(|p| p.is_file())
}

/// Write the farm's clusters.json and datastore under `root`; returns the owners' names.
pub fn populate(root: &Path) -> Vec<String> {
    populate_shaped(root, &FARM, |_, _| {})
}

/// Write a farm of `shape` under `root`, with `CONTAINERS` containers shared out over its
/// owners; `more` may add to its accounts (given the state and the owners) before the
/// containers are added. Returns the owners' names.
pub fn populate_shaped(
    root: &Path,
    shape: &Shape,
    more: impl FnOnce(&mut State, &[String]),
) -> Vec<String> {
    let etc = root.join("etc/srvctl");
    std::fs::create_dir_all(&etc).expect("create etc/srvctl");
    std::fs::write(etc.join("clusters.json"), CLUSTERS).expect("write clusters.json");
    let clusters = Clusters::parse(&etc.join("clusters.json"), CLUSTERS).expect("clusters");
    let ctx = Context {
        host: clusters.host(HOSTNAME),
        hostname: HOSTNAME,
        caller: &srvctl::access::Caller::operator_root(),
        now: "2026-01-01T00:00:00Z",
        reserved: &srvctl::model::claims::Reserved::default(),
        accounts: &srvctl::model::claims::NoHostAccounts,
    };
    let mut state = State::default();
    let mut owners = vec!["root".to_owned()];
    for u in 1..=shape.operator_users {
        let user = format!("op{u}");
        ops::add_user(&mut state, &ctx, &user, None).expect("add user");
        owners.push(user);
    }
    for r in 1..=shape.resellers {
        let reseller = format!("reseller{r}");
        ops::add_reseller(&mut state, &ctx, &reseller).expect("add reseller");
        owners.push(reseller.clone());
        for u in 1..=shape.users_each {
            let user = format!("user{r}-{u}");
            ops::add_user(&mut state, &ctx, &user, Some(&reseller)).expect("add user");
            owners.push(user);
        }
    }
    more(&mut state, &owners);
    for i in 0..CONTAINERS {
        let owner = &owners[i % owners.len()];
        ops::add_container(&mut state, &ctx, &container_name(i), Some(owner))
            .expect("add container");
    }
    let system = Local::new(true);
    let (mut writer, _) = Writer::lock(&system, &Paths::rooted(root)).expect("lock the datastore");
    writer.commit(&state).expect("write the datastore");
    owners
}

/// Run `cmd` once, timed; panics if it fails. Returns the time and stdout.
pub fn timed(mut cmd: Command) -> (Duration, String) {
    let start = Instant::now();
    let out = cmd.output().expect("run");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How many runs a timed series makes: `SRVCTL_BENCH_N` when it is a positive number, else
/// `default`.
pub fn runs(default: usize) -> usize {
    std::env::var("SRVCTL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Print one line for the series `what`: how many runs, and their min, median, mean, p95 and
/// max in milliseconds.
pub fn report(what: &str, times: Vec<Duration>) {
    let s = Summary::of(times);
    println!(
        "{what}: n={} min={:.2} ms median={:.2} ms mean={:.2} ms p95={:.2} ms max={:.2} ms",
        s.n,
        ms(s.min),
        ms(s.median),
        ms(s.mean),
        ms(s.p95),
        ms(s.max),
    );
}

/// The distribution of a set of timings.
pub struct Summary {
    /// Fastest.
    pub min: Duration,
    /// Middle.
    pub median: Duration,
    /// Average.
    pub mean: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// Slowest.
    pub max: Duration,
    /// How many.
    pub n: usize,
}

impl Summary {
    /// Summarise `times` (at least one).
    pub fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2
        };
        Self {
            min: times[0],
            median,
            mean: times.iter().sum::<Duration>() / n as u32,
            p95: times[((n * 95).div_ceil(100)).saturating_sub(1)],
            max: times[n - 1],
            n,
        }
    }
}
