//! How much the privileged service adds: `sc status` and `sc add-ve --no-start` run by root
//! directly on a scratch root, against the same commands run by a non-root caller through
//! `srvctl-service --root … --listen …`.
//!
//! Run as root with `cargo bench --bench service` (it drops to the callers' UIDs). Cargo
//! builds `sc` and `srvctl-service` (release profile) next to the benchmark.
//!
//! Setup (not timed): the farm of `benches/farm` (4,000 containers) with settings.json
//! naming the group `users` as `operator_group`, and the service listening on a socket.
//!
//! Timed, N each (default 50, or `SRVCTL_BENCH_N`), one process after another:
//! - root: `sc --root R status --json` and `sc --root R add-ve … --user U --no-start`;
//! - an operator through the service (a caller in group `users`): the same commands without
//!   `--root`, so the output (4,000 rows) is the same;
//! - a user through the service: `sc status --json` (its own 50 containers) and `sc add-ve …
//!   --no-start` for itself.
//!
//! Printed: min, median, mean, p95 and max wall-clock time per process, in milliseconds.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::HOSTNAME;

/// A command of `bin` with the farm's host name and nothing inherited that would change it.
fn command(bin: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .env_remove("SUDO_USER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Time `n` runs of the command `make(k)` gives for run `k`.
fn series(what: &str, n: usize, make: impl Fn(usize) -> Command) {
    farm::report(what, (0..n).map(|k| farm::timed(make(k)).0).collect());
}

fn main() -> ExitCode {
    let (Some(sc), Some(service)) = (farm::beside("sc"), farm::beside("srvctl-service")) else {
        eprintln!("service bench: run `cargo bench --bench service`, which builds the binaries");
        return ExitCode::FAILURE;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("service bench: needs root, to run the clients as other UIDs");
        return ExitCode::FAILURE;
    }
    let n = farm::runs(50);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    let users = farm::populate(&root);
    std::fs::write(
        root.join("etc/srvctl/settings.json"),
        r#"{"operator_group": "users"}"#,
    )
    .unwrap();
    let operators = nix::unistd::Group::from_name("users")
        .ok()
        .flatten()
        .expect("group users")
        .gid
        .as_raw();
    let state = srvctl::store::read(
        &srvctl::system::Local::new(true),
        &srvctl::system::paths::Paths::rooted(&root),
    )
    .expect("read the datastore");
    let user = &users[1];
    let uid = state.users[&srvctl::model::names::AccountName::new(user).unwrap()].uid;

    let socket = dir.path().join("sc.socket");
    let mut listener = command(&service, &[])
        .arg("--root")
        .arg(&root)
        .arg("--listen")
        .arg(&socket)
        .spawn()
        .expect("start srvctl-service");
    let start = Instant::now();
    while !socket.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let root_arg = root.to_str().unwrap();
    let direct = |args: &[&str]| {
        let mut cmd = command(&sc, &["--root", root_arg]);
        cmd.args(args);
        cmd
    };
    let through = |gid: u32, args: &[&str]| {
        let mut cmd = command(&sc, args);
        cmd.env("SRVCTL_SOCKET", &socket).uid(uid).gid(gid);
        cmd
    };
    println!("farm: 4,000 containers; caller {user} (UID {uid}); {n} runs each");
    series("root, sc --root status --json", n, |_| {
        direct(&["status", "--json"])
    });
    series("operator through the service, sc status --json", n, |_| {
        through(operators, &["status", "--json"])
    });
    series(
        "user through the service, sc status --json (50 rows)",
        n,
        |_| through(uid, &["status", "--json"]),
    );
    series("root, sc --root add-ve --no-start", n, |k| {
        direct(&[
            "add-ve",
            &format!("root{k}.example.com"),
            "--user",
            user,
            "--no-start",
        ])
    });
    series(
        "operator through the service, sc add-ve --no-start",
        n,
        |k| {
            let name = format!("op{k}.example.com");
            through(operators, &["add-ve", &name, "--user", user, "--no-start"])
        },
    );
    series("user through the service, sc add-ve --no-start", n, |k| {
        through(
            uid,
            &["add-ve", &format!("user{k}.example.com"), "--no-start"],
        )
    });
    let _ = listener.kill();
    let _ = listener.wait();
    ExitCode::SUCCESS
}
