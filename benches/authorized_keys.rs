//! How long `srvctl-authorized-keys` (sshd's AuthorizedKeysCommand, run at every SSH login)
//! takes on a full-size datastore.
//!
//! Run with `cargo bench --bench authorized_keys` (as for the other benches, Cargo builds the
//! binary next to the benchmark). Needs `ssh-keygen`.
//!
//! Setup (not timed): 4,000 containers on `h1.test` owned by 1,005 accounts (15 resellers with
//! 66 users each, and their own accounts), every account holding 2 keys (40 ed25519 keys and
//! one RSA 3072 key made by ssh-keygen, shared out), the operator 1.
//!
//! Timed: N (default 100, or `SRVCTL_BENCH_N`) complete processes each of
//! `srvctl-authorized-keys NAME`, `--gateway USER_VE_VEUSER` and `--gateway` of an unknown
//! user. Printed: min, median, mean and p95 wall-clock time per process, in milliseconds.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use farm::{CONTAINERS, Shape, beside, report, timed};
use srvctl::model::State;
use srvctl::system::paths::Paths;

/// Key lines made by ssh-keygen in `dir`: 40 ed25519 keys and one RSA key.
fn make_keys(dir: &Path) -> Vec<String> {
    let make = |name: &str, args: &[&str]| {
        let file = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name])
            .args(args)
            .arg("-f")
            .arg(&file)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success(), "ssh-keygen failed");
        std::fs::read_to_string(file.with_extension("pub")).expect("read key")
    };
    let mut keys: Vec<String> = (0..40)
        .map(|i| make(&format!("k{i}"), &["-t", "ed25519"]))
        .collect();
    keys.push(make("rsa", &["-t", "rsa", "-b", "3072"]));
    keys
}

/// The accounts: 15 resellers with 66 users each (1,005 accounts with the resellers' own).
const SHAPE: Shape = Shape {
    resellers: 15,
    operator_users: 0,
    users_each: 66,
};

/// Write the farm under `root`, every account holding two of `keys` (one in 50 the RSA key)
/// and the operator one; returns a user and one of its containers.
fn populate(root: &Path, keys: &[String]) -> (String, String) {
    let owners = farm::populate_shaped(root, &SHAPE, |state, owners| {
        let add = |state: &mut State, owner: Option<&str>, k: usize| {
            srvctl::accounts::keys::add(state, "root", "2026-01-01T00:00:00Z", owner, &keys[k])
                .expect("add key");
        };
        for (i, owner) in owners.iter().enumerate().skip(1) {
            add(state, Some(owner), i % 40);
            add(
                state,
                Some(owner),
                if i % 50 == 0 { 40 } else { (i + 1) % 40 },
            );
        }
        add(state, None, 7);
    });
    let i = owners.len() / 2;
    (owners[i].clone(), farm::container_name(i))
}

fn main() -> ExitCode {
    let Some(bin) = beside("srvctl-authorized-keys") else {
        eprintln!(
            "authorized_keys bench: cannot find srvctl-authorized-keys next to {:?}; run `cargo bench --bench authorized_keys`",
            std::env::current_exe().ok()
        );
        return ExitCode::FAILURE;
    };
    let n = farm::runs(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = make_keys(dir.path());
    let root = dir.path().join("root");
    let (user, container) = populate(&root, &keys);
    let size = std::fs::metadata(Paths::rooted(&root).datastore())
        .expect("datastore")
        .len();
    println!(
        "setup: {CONTAINERS} containers, 1,005 accounts with 2 keys each, datastore {:.0} KiB",
        size as f64 / 1024.0
    );
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("SRVCTL_ROOT")
            .stdin(Stdio::null());
        timed(cmd)
    };
    let gateway = format!("{user}_{container}_www");
    let (_, printed) = run(&["--gateway", &gateway]);
    assert_eq!(
        printed.lines().count(),
        5,
        "own 2, reseller's 2, operator's 1"
    );
    for (what, args) in [
        ("srvctl-authorized-keys NAME", vec![user.as_str()]),
        (
            "srvctl-authorized-keys --gateway USER_VE_VEUSER",
            vec!["--gateway", &gateway],
        ),
        (
            "srvctl-authorized-keys --gateway of an unknown user",
            vec!["--gateway", "nosuch_x.ve_www"],
        ),
    ] {
        report(what, (0..n).map(|_| run(&args).0).collect());
    }
    ExitCode::SUCCESS
}
