//! Hooks end to end, with real shell scripts in a scratch root's /etc/srvctl/hooks: a failing
//! before hook refuses the command and leaves the datastore byte for byte as it was; after
//! hooks see the record as JSON and their failure is only a warning; a hook that is not safe
//! to run is refused by name.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use common::Farm;
use srvctl::system::{CommandLine, Local, Program, System};

/// Install hook `name` of `event` (e.g. `before-add-ve`) with `body` and `mode`.
fn hook(farm: &Farm, event: &str, name: &str, body: &str, mode: u32) -> PathBuf {
    let dir = farm.join(&format!("etc/srvctl/hooks/{event}.d"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The hook exit status of refused commands.
const HOOK_REFUSED: i32 = 13;

#[test]
fn a_failing_before_add_ve_hook_refuses_and_changes_no_byte() {
    let farm = Farm::new().with_alice_and_bob();
    let before = farm.datastore_bytes().expect("a datastore");
    let first = hook(&farm, "before-add-ve", "10-ok", "exit 0", 0o755);
    let refusing = hook(
        &farm,
        "before-add-ve",
        "20-quota",
        "echo \"no room left for $SRVCTL_NAME\" >&2; exit 3",
        0o755,
    );
    let run = farm.sc(&["add-ve", "web.example.com", "--user", "bob"]);
    let line = run.refused();
    assert_eq!(run.code, Some(HOOK_REFUSED), "{run:#?}");
    assert!(
        line.contains(&format!("hook {} failed (exit 3)", refusing.display()))
            && line.contains("no room left for web.example.com"),
        "{line}"
    );
    assert!(!line.contains(&first.display().to_string()), "{line}");
    assert_eq!(farm.datastore_bytes().unwrap(), before, "datastore changed");
    let audit = farm.audit_records();
    let last = audit.last().unwrap();
    assert!(
        last["outcome"].as_str().unwrap().contains("20-quota"),
        "{last}"
    );

    // Once the hook lets it, the same command goes through.
    std::fs::remove_file(&refusing).unwrap();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    assert_ne!(farm.datastore_bytes().unwrap(), before);
}

#[test]
fn after_hooks_see_the_record_as_json_and_their_failure_only_warns() {
    let farm = Farm::new().with_alice_and_bob();
    let seen = farm.tmp().join("seen.json");
    let env = farm.tmp().join("env.txt");
    hook(
        &farm,
        "after-add-ve",
        "10-record",
        &format!(
            "cat > {}; env | grep '^SRVCTL_' | sort > {}",
            seen.display(),
            env.display()
        ),
        0o700,
    );
    hook(
        &farm,
        "after-add-ve",
        "20-broken",
        "echo monitoring is down >&2; exit 1",
        0o755,
    );
    let run = farm.sc(&["add-ve", "web.example.com", "--user", "bob"]);
    assert!(run.success(), "{run:#?}");
    assert_eq!(run.stdout, "web.example.com 10.17.1.2\n");
    assert!(
        run.stderr.contains("warning: hook ")
            && run
                .stderr
                .contains("20-broken failed (exit 1): monitoring is down; the change stays"),
        "{}",
        run.stderr
    );
    let input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&seen).expect("the hook ran")).unwrap();
    assert_eq!(input["event"], "after-add-ve");
    assert_eq!(input["host"], "h1.test");
    assert_eq!(input["name"], "web.example.com");
    assert_eq!(input["record"]["ip"], "10.17.1.2");
    assert_eq!(input["record"]["user"], "bob");
    let env = std::fs::read_to_string(&env).unwrap();
    assert!(env.contains("SRVCTL_EVENT=after-add-ve\n"), "{env}");
    assert!(env.contains("SRVCTL_NAME=web.example.com\n"), "{env}");
    assert!(
        env.contains(&format!("SRVCTL_ROOT={}\n", farm.root().display())),
        "{env}"
    );
    assert!(farm.state().containers.len() == 1, "the change stays");
}

#[test]
fn a_before_hook_may_read_the_datastore_with_sc_while_the_change_waits() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "one.example.com", "--user", "bob"]);
    let seen = farm.tmp().join("status.txt");
    hook(
        &farm,
        "before-add-ve",
        "10-count",
        &format!(
            "\"$SC_UNDER_TEST\" --root \"$SRVCTL_ROOT\" status > {}",
            seen.display()
        ),
        0o755,
    );
    let run = common::Run::from_output(
        farm.command(&["add-ve", "two.example.com", "--user", "bob"])
            .env("SC_UNDER_TEST", common::SC)
            .output()
            .unwrap(),
    );
    assert!(run.success(), "{run:#?}");
    let status = std::fs::read_to_string(&seen).unwrap();
    assert!(status.contains("one.example.com"), "{status}");
    assert!(
        !status.contains("two.example.com"),
        "not committed yet: {status}"
    );
}

#[test]
fn before_hooks_guard_destroy_ve_and_add_user_too() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    let before = farm.datastore_bytes().unwrap();
    hook(
        &farm,
        "before-destroy-ve",
        "keep",
        "echo backups first >&2; exit 1",
        0o755,
    );
    let run = farm.sc(&["destroy-ve", "web.example.com"]);
    assert!(run.refused().contains("backups first"), "{run:#?}");
    hook(
        &farm,
        "before-add-user",
        "no",
        "read -r line; echo \"$line\" >&2; exit 1",
        0o755,
    );
    let run = farm.sc(&["add-user", "carol"]);
    let line = run.refused();
    assert!(line.contains(r#""event":"before-add-user""#), "{line}");
    assert!(line.contains(r#""name":"carol""#), "{line}");
    assert_eq!(farm.datastore_bytes().unwrap(), before);
}

#[test]
fn a_hook_writable_by_others_or_not_roots_is_refused_by_name() {
    let farm = Farm::new().with_alice_and_bob();
    let before = farm.datastore_bytes().unwrap();
    let path = hook(&farm, "before-add-ve", "open", "exit 0", 0o777);
    let run = farm.sc(&["add-ve", "web.example.com"]);
    let line = run.refused();
    assert_eq!(run.code, Some(HOOK_REFUSED));
    assert!(
        line.contains(&format!("hook {} was not run: mode 0777", path.display())),
        "{line}"
    );
    assert_eq!(farm.datastore_bytes().unwrap(), before);

    if !common::real::require_root("a_hook_not_roots_is_refused") {
        return;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let line = farm.sc(&["add-ve", "web.example.com"]).refused().to_owned();
    assert!(line.contains("owned by uid 65534, not root"), "{line}");
    assert_eq!(farm.datastore_bytes().unwrap(), before);
}

#[test]
fn regenerate_hooks_refuse_before_and_hear_what_was_done_after() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob", "--no-start"]);
    let stop = hook(
        &farm,
        "before-regenerate",
        "maintenance",
        "echo frozen >&2; exit 1",
        0o755,
    );
    let haproxy = farm.join("run/srvctl/haproxy/haproxy.cfg");
    let _ = std::fs::remove_file(&haproxy);
    let run = farm.sc(&["regenerate"]);
    assert!(run.refused().contains("frozen"), "{run:#?}");
    assert!(
        !haproxy.exists(),
        "nothing is written when a before hook refuses"
    );
    std::fs::remove_file(&stop).unwrap();
    let seen = farm.tmp().join("regenerated.json");
    hook(
        &farm,
        "after-regenerate",
        "log",
        &format!("cat > {}", seen.display()),
        0o755,
    );
    farm.sc_ok(&["regenerate"]);
    let input: serde_json::Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
    assert_eq!(input["event"], "after-regenerate");
    assert!(
        input["record"]["written"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("haproxy.cfg")),
        "{input}"
    );
}

/// The runner of hooks on the real machine.
#[test]
fn a_program_gets_its_input_and_environment_and_is_killed_with_its_children_at_its_limit() {
    let system = Local::new(true);
    let echo = CommandLine::new("sh", ["-c", "cat; echo \"$WHO\" >&2; exit 3"])
        .with_env([("WHO".to_owned(), "hook".into())]);
    let done = system
        .run_program(&Program {
            command: &echo,
            input: b"{}",
            timeout: Duration::from_secs(10),
        })
        .unwrap();
    assert_eq!((done.code, done.timed_out), (Some(3), false));
    assert_eq!(
        (&done.stdout[..], &done.stderr[..]),
        (&b"{}"[..], &b"hook\n"[..])
    );

    // A background child keeps the pipes open: only killing the group ends the wait.
    let slow = CommandLine::new("sh", ["-c", "sleep 30 & sleep 30"]);
    let started = Instant::now();
    let done = system
        .run_program(&Program {
            command: &slow,
            input: b"",
            timeout: Duration::from_millis(300),
        })
        .unwrap();
    assert!(done.timed_out && done.code.is_none(), "{done:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
