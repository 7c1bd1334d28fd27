//! `sc` for callers who are not root, through `srvctl-service --root … --listen …`: each
//! client runs with the UID of a datastore account (we start as root and drop to it), and the
//! service takes the caller from the socket's peer credentials. Reseller alice with her user
//! bob; reseller dave with his user carol.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::real::{Procs, require_root, wait_for};
use common::{Farm, Run, SC};

const SERVICE: &str = env!("CARGO_BIN_EXE_srvctl-service");
const BOB_SITE: &str = "bob-site.example.com";
const CAROL_SITE: &str = "carol-site.example.com";

/// A farm with its service listening, and the tenants' accounts.
struct Tenants {
    farm: Farm,
    socket: PathBuf,
    procs: Procs,
}

impl Tenants {
    /// `None` (the test is skipped) unless we are root, who can drop to the tenants' UIDs.
    fn start(test: &str) -> Option<Self> {
        if !require_root(test) {
            return None;
        }
        let farm = Farm::new();
        // The tenants reach the socket inside the farm's directory.
        std::fs::set_permissions(farm.tmp(), std::fs::Permissions::from_mode(0o755)).unwrap();
        farm.sc_ok(&["add-reseller", "alice"]);
        farm.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
        farm.sc_ok(&["add-reseller", "dave"]);
        farm.sc_ok(&["add-user", "carol", "--reseller", "dave"]);
        let socket = farm.tmp().join("sc.socket");
        let mut service = farm.program(SERVICE);
        service
            .arg("--root")
            .arg(farm.root())
            .arg("--listen")
            .arg(&socket);
        let mut procs = Procs::default();
        procs.spawn("srvctl-service", service, farm.tmp().join("service.log"));
        let listening = wait_for(&mut procs, Duration::from_secs(10), || socket.exists());
        assert!(listening, "the service does not listen:\n{}", procs.logs());
        Some(Self {
            farm,
            socket,
            procs,
        })
    }

    /// `sc ARGS…` as account `user`, without --root: a client of the service.
    fn command(&self, user: &str, args: &[&str]) -> Command {
        let uid = self.farm.uid(user);
        let mut cmd = common::base_command(SC);
        cmd.args(args)
            .env("SRVCTL_SOCKET", &self.socket)
            .uid(uid)
            .gid(uid);
        cmd
    }

    /// Run `sc ARGS…` as `user` to the end.
    fn sc(&self, user: &str, args: &[&str]) -> Run {
        Run::from_output(self.command(user, args).output().expect("run sc"))
    }

    /// Run `sc ARGS…` as `user`, which must succeed; returns its stdout.
    #[track_caller]
    fn sc_ok(&self, user: &str, args: &[&str]) -> String {
        let run = self.sc(user, args);
        assert!(
            run.success(),
            "sc {args:?} as {user} failed: {run:#?}\n{}",
            self.procs.logs()
        );
        run.stdout
    }

    /// Send `request` as is, with this process's (captured) streams, from account `user`:
    /// the client side runs in the child of a `Command` after it took the user's UID, and
    /// exits with the service's answer instead of running a program.
    fn crafted(&self, user: &str, request: &'static str) -> Run {
        let uid = self.farm.uid(user);
        let socket = self.socket.clone();
        let mut cmd = Command::new("/bin/true");
        cmd.uid(uid).gid(uid).stdin(Stdio::null());
        // SAFETY: the closure runs in the forked child only, which exits from it.
        unsafe {
            cmd.pre_exec(move || {
                use std::io::Read;
                use std::os::fd::AsFd;
                let stream = std::os::unix::net::UnixStream::connect(&socket)?;
                let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
                srvctl::system::socket::send_with_fds(
                    &stream,
                    request.as_bytes(),
                    &[i.as_fd(), o.as_fd(), e.as_fd()],
                )?;
                let mut answer = String::new();
                (&stream).read_to_string(&mut answer)?;
                let code = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v["exit"].as_i64())
                    .unwrap_or(255);
                nix::libc::_exit(code as i32)
            });
        }
        Run::from_output(cmd.output().expect("run the crafted client"))
    }
}

#[test]
fn each_tenant_sees_and_acts_in_its_own_scope() {
    let Some(t) = Tenants::start("each_tenant_sees_and_acts_in_its_own_scope") else {
        return;
    };
    let added = t.sc_ok("bob", &["add-ve", BOB_SITE, "--no-start"]);
    assert!(
        added.starts_with(&format!("{BOB_SITE} 10.17.1.")),
        "{added}"
    );
    t.sc_ok("carol", &["add-ve", CAROL_SITE, "--no-start"]);
    t.sc_ok("alice", &["add-ve", "alice.example.com", "--no-start"]);
    t.farm.sc_ok(&["add-ve", "root.example.com", "--no-start"]);
    let state = t.farm.state();
    let owner = |name: &str| {
        let key = srvctl::model::names::ContainerName::new(name).unwrap();
        state.containers[&key].user.to_string()
    };
    assert_eq!(owner(BOB_SITE), "bob");
    assert_eq!(owner(CAROL_SITE), "carol");

    let names = |user: &str| -> Vec<String> {
        let json: serde_json::Value =
            serde_json::from_str(&t.sc_ok(user, &["--json", "status"])).unwrap();
        let rows = json.as_array().expect("a list of rows");
        rows.iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("bob"), [BOB_SITE]);
    assert_eq!(names("carol"), [CAROL_SITE]);
    assert_eq!(names("alice"), ["alice.example.com", BOB_SITE]);
    // What completion offers (`sc names KIND`) is scoped the same way.
    assert_eq!(
        t.sc_ok("carol", &["names", "container"]),
        format!("{CAROL_SITE}\n")
    );
    assert_eq!(t.sc_ok("carol", &["names", "user"]), "carol\n");
    assert_eq!(
        t.sc_ok("alice", &["names", "container"]),
        format!("alice.example.com\n{BOB_SITE}\n")
    );
    // A site's DNS records: another reseller's user cannot list or add them.
    for args in [
        &[BOB_SITE, "dns"][..],
        &[BOB_SITE, "dns", "add", "TXT", "carol-was-here"],
    ] {
        let refused = t.sc("carol", args);
        assert_ne!(refused.code, Some(0), "{args:?}: {refused:#?}");
        assert!(
            refused.stderr.contains("no container"),
            "{args:?}: {refused:#?}"
        );
    }
    t.sc_ok("bob", &[BOB_SITE, "dns", "add", "TXT", "bobs-token"]);
    assert_eq!(t.sc_ok("alice", &[BOB_SITE, "dns"]), "@ TXT bobs-token\n");
    assert_eq!(
        t.farm
            .sc_ok(&["--json", "status"])
            .matches("\"name\"")
            .count(),
        4
    );

    // A user adds containers for itself only; a reseller for its users too.
    let line = t
        .sc(
            "bob",
            &["add-ve", "x.example.com", "--user", "carol", "--no-start"],
        )
        .refused()
        .to_owned();
    assert_eq!(line, "sc: error: no user named carol");
    t.sc_ok(
        "alice",
        &[
            "add-ve",
            "bob-two.example.com",
            "--user",
            "bob",
            "--no-start",
        ],
    );
    let refused = t.sc("bob", &["add-user", "eve"]);
    assert_eq!(refused.code, Some(6), "{refused:#?}");
    t.sc_ok("alice", &["add-user", "eve"]);
    let eve = t.farm.sc_ok(&["get", "user", "eve", "reseller"]);
    assert_eq!(eve.trim(), "alice", "a reseller's users go under it");
}

#[test]
fn only_the_operator_touches_the_cluster_trust_root() {
    let Some(t) = Tenants::start("only_the_operator_touches_the_cluster_trust_root") else {
        return;
    };
    for user in ["bob", "alice"] {
        for args in [
            &["cluster", "request"][..],
            &["cluster", "sign", "-"],
            &["cluster", "accept", "-"],
        ] {
            let run = t.sc(user, args);
            assert_eq!(run.code, Some(6), "{user} {args:?}: {run:#?}");
            assert_eq!(
                run.refused(),
                "sc: error: only the operator may run sc cluster"
            );
        }
    }
    assert!(
        !t.farm.join("var/lib/srvctl/pki/cluster").exists(),
        "a tenant's request made a key"
    );
    // A member of the operator group runs them, but names no path the service would open.
    std::fs::write(
        t.farm.join("etc/srvctl/settings.json"),
        r#"{"operator_group": "users"}"#,
    )
    .unwrap();
    let users = nix::unistd::Group::from_name("users")
        .unwrap()
        .expect("group users");
    let as_operator = |args: &[&str]| {
        let mut cmd = t.command("carol", args);
        cmd.gid(users.gid.as_raw());
        Run::from_output(cmd.output().unwrap())
    };
    let run = as_operator(&["cluster", "sign", "/etc/shadow"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.refused().contains("never opens a path"), "{run:#?}");
    let run = as_operator(&["cluster", "request", "-o", "/etc/srvctl/x.csr"]);
    assert!(run.refused().contains("never opens a path"), "{run:#?}");
    assert!(!t.farm.join("var/lib/srvctl/pki/cluster").exists());
    let run = as_operator(&["--json", "cluster", "request"]);
    assert!(run.ok().contains("\"installed\": true"), "{run:#?}");
}

#[test]
fn another_resellers_user_cannot_see_or_destroy_bobs_container() {
    let Some(t) = Tenants::start("another_resellers_user_cannot_see_or_destroy") else {
        return;
    };
    t.sc_ok("bob", &["add-ve", BOB_SITE, "--no-start"]);
    let before = t.farm.json_files();
    for (args, missing) in [
        (
            vec!["destroy-ve", BOB_SITE],
            vec!["destroy-ve", "nothing.example.com"],
        ),
        (
            vec!["get", "container", BOB_SITE, "ip"],
            vec!["get", "container", "nothing.example.com", "ip"],
        ),
        (vec![BOB_SITE, "stop"], vec!["nothing.example.com", "stop"]),
    ] {
        let run = t.sc("carol", &args);
        let line = run.refused();
        assert_eq!(run.code, Some(3), "not-found: {run:#?}");
        let as_missing = t.sc("carol", &missing);
        assert_eq!(
            line.replace(BOB_SITE, "NAME"),
            as_missing.refused().replace("nothing.example.com", "NAME"),
            "{args:?} answers like a missing name"
        );
    }
    assert!(t.farm.json_files() == before, "the datastore changed");
    let records = t.farm.audit_records();
    let last = records.last().unwrap();
    assert_eq!(last["user"], "carol");
    assert!(
        last["outcome"]
            .as_str()
            .unwrap()
            .starts_with("error: no container")
    );
}

#[test]
fn a_reseller_stops_and_starts_its_users_container_not_another_resellers() {
    let Some(t) = Tenants::start("a_reseller_stops_and_starts") else {
        return;
    };
    t.sc_ok("bob", &["add-ve", BOB_SITE, "--no-start"]);
    t.sc_ok("carol", &["add-ve", CAROL_SITE, "--no-start"]);
    let unit = format!("systemd-nspawn@{BOB_SITE}.service");
    let stop = t.sc("alice", &[BOB_SITE, "stop"]);
    assert!(stop.success(), "{stop:#?}");
    assert!(
        stop.stderr
            .contains(&format!("would ask systemd: stop {unit}")),
        "{stop:#?}"
    );
    let start = t.sc("alice", &[BOB_SITE, "start"]);
    assert!(start.success(), "{start:#?}");
    assert!(
        start
            .stderr
            .contains(&format!("would ask systemd: start {unit}")),
        "{start:#?}"
    );
    let refused = t.sc("alice", &[CAROL_SITE, "stop"]);
    assert_eq!(
        refused.refused(),
        format!("sc: error: no container named {CAROL_SITE}")
    );

    // A session inside is audited with the caller (under --root it is only printed).
    let exec = t.sc("alice", &[BOB_SITE, "exec", "true"]);
    assert!(exec.stderr.contains("would run: systemd-run"), "{exec:#?}");
    let records = t.farm.audit_records();
    let last = records.last().unwrap();
    assert_eq!(last["user"], "alice");
    assert_eq!(
        last["command"],
        serde_json::json!([BOB_SITE, "exec", "true"])
    );
    assert_eq!(last["outcome"], "ok");
}

#[test]
fn a_member_of_the_operator_group_acts_as_the_operator() {
    let Some(t) = Tenants::start("a_member_of_the_operator_group_acts_as_the_operator") else {
        return;
    };
    t.farm.sc_ok(&["add-ve", "root.example.com", "--no-start"]);
    let settings = t.farm.join("etc/srvctl/settings.json");
    std::fs::write(&settings, r#"{"operator_group": "users"}"#).unwrap();
    let users = nix::unistd::Group::from_name("users")
        .unwrap()
        .expect("group users");
    let mut cmd = t.command("carol", &["add-reseller", "zed"]);
    cmd.gid(users.gid.as_raw());
    let run = Run::from_output(cmd.output().unwrap());
    assert!(run.success(), "{run:#?}");
    assert_eq!(t.farm.audit_records().last().unwrap()["user"], "carol");
    let mut status = t.command("carol", &["status"]);
    status.gid(users.gid.as_raw());
    let status = Run::from_output(status.output().unwrap());
    assert!(status.ok().contains("root.example.com"), "{status:#?}");
    // Without the group, carol is a user again.
    assert_eq!(t.sc("carol", &["add-reseller", "zoe"]).code, Some(6));
    let status = t.sc_ok("carol", &["--json", "status"]);
    assert_eq!(
        status.trim(),
        "[]",
        "root's container is out of carol's scope"
    );
}

#[test]
fn the_audit_names_the_kernels_caller_whatever_the_client_claims() {
    let Some(t) = Tenants::start("the_audit_names_the_kernels_caller") else {
        return;
    };
    let mut cmd = t.command("bob", &["add-ve", BOB_SITE, "--no-start"]);
    cmd.env("SUDO_USER", "root");
    let run = Run::from_output(cmd.output().unwrap());
    assert!(run.success(), "{run:#?}");
    let records = t.farm.audit_records();
    let last = records.last().unwrap();
    assert_eq!(last["user"], "bob");
    assert_eq!(last["command"][0], "add-ve");
    let created_by = t.farm.sc_ok(&["get", "container", BOB_SITE, "created_by"]);
    assert_eq!(created_by.trim(), "bob");

    // Hand-crafted requests: another identity, --root, no streams. Nothing changes.
    let before = t.farm.json_files();
    let audited = t.farm.audit_records().len();
    for (request, code, says) in [
        (
            r#"{"argv": ["destroy-ve", "bob-site.example.com"], "user": "root"}"#,
            2,
            "malformed request: unknown field `user`",
        ),
        (
            r#"{"argv": ["add-reseller", "mallory"], "uid": 0}"#,
            2,
            "malformed request: unknown field `uid`",
        ),
        (
            r#"{"argv": ["--root", "/", "add-reseller", "mallory"]}"#,
            6,
            "--root is not accepted through the srvctl service",
        ),
        (
            r#"{"argv": ["add-reseller", "mallory"]}"#,
            6,
            "only the operator may run sc add-reseller",
        ),
        // Files written where the caller says are written by sc as the caller, never by the
        // service.
        (
            r#"{"argv": ["man", "--dir", "/etc"]}"#,
            6,
            "this command runs as its caller in sc itself",
        ),
        // The host's set-up is root's own, never the service's.
        (
            r#"{"argv": ["update-install", "--dry-run"]}"#,
            6,
            "this command runs as its caller in sc itself",
        ),
    ] {
        let run = t.crafted("carol", request);
        assert_eq!(run.code, Some(code), "{request}: {run:#?}");
        assert!(
            run.stderr.starts_with(&format!("sc: error: {says}")),
            "{request}: {run:#?}"
        );
    }
    assert!(
        t.farm.json_files() == before,
        "a crafted request changed the datastore"
    );
    let records = t.farm.audit_records();
    assert_eq!(records.len(), audited + 6, "every refusal is audited");
    for r in &records[audited..] {
        assert_eq!(r["user"], "carol", "{r}");
        assert!(r["outcome"].as_str().unwrap().starts_with("error: "), "{r}");
    }
}

#[test]
fn twenty_users_add_a_container_at_the_same_moment() {
    let Some(t) = Tenants::start("twenty_users_add_a_container_at_the_same_moment") else {
        return;
    };
    let users: Vec<String> = (1..=20).map(|i| format!("u{i}")).collect();
    for user in &users {
        t.farm.sc_ok(&["add-user", user, "--reseller", "alice"]);
    }
    let children: Vec<_> = users
        .iter()
        .map(|u| {
            let name = format!("{u}.example.com");
            let mut cmd = t.command(u, &["add-ve", &name, "--no-start"]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().expect("spawn sc")
        })
        .collect();
    for child in children {
        let run = Run::from_output(child.wait_with_output().unwrap());
        assert!(run.success(), "{run:#?}\n{}", t.procs.logs());
    }
    let state = t.farm.state();
    assert_eq!(state.containers.len(), 20);
    let mut ips: Vec<_> = state.containers.values().map(|c| c.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "distinct addresses");
    for (name, c) in &state.containers {
        assert_eq!(format!("{}.example.com", c.user), name.as_str());
    }
}

#[test]
fn a_tenants_key_file_is_read_by_the_client_never_by_the_service() {
    let Some(t) = Tenants::start("a_tenants_key_file_is_read_by_the_client") else {
        return;
    };
    let keys = t.farm.tmp().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::real::run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob@laptop", "-f"])
            .arg(keys.join("bob")),
    );
    // bob's own .pub file: read by his client and sent as text.
    let pubkey = keys.join("bob.pub");
    let out = t.sc_ok("bob", &["add-publickey", pubkey.to_str().unwrap()]);
    assert!(out.starts_with("bob: key SHA256:"), "{out}");
    // A key file only root may read: bob's client cannot, and the service does not open it
    // for him (its text would be root's to read, not bob's).
    let secret = keys.join("root-only.pub");
    std::fs::copy(&pubkey, &secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = t.farm.json_files();
    let run = t.sc("bob", &["add-publickey", secret.to_str().unwrap()]);
    assert!(
        run.refused().contains("not a file you can read"),
        "{run:#?}"
    );
    // Nor may bob put his key on carol's account, which he cannot see.
    let key = std::fs::read_to_string(&pubkey).unwrap();
    let run = t.sc("bob", &["add-publickey", "carol", key.trim()]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(
        t.farm.json_files() == before,
        "a refused key changed the datastore"
    );
}

#[test]
fn socket_activated_the_service_serves_and_exits_when_idle() {
    let Some(t) = Tenants::start("socket_activated_the_service_serves_and_exits") else {
        return;
    };
    common::real::require_tool("/usr/bin/systemd-socket-activate");
    // systemd's way: the listening socket passed as fd 3 (LISTEN_FDS), as srvctl.socket does.
    let socket = t.farm.tmp().join("activated.socket");
    let mut service = Command::new("systemd-socket-activate");
    service
        .arg("--listen")
        .arg(&socket)
        .arg(SERVICE)
        .arg("--root")
        .arg(t.farm.root())
        .args(["--idle", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = service.spawn().unwrap();
    assert!(
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            socket.exists()
        }),
        "systemd-socket-activate does not listen"
    );
    // srvctl.socket's SocketMode=0666.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = t.command("bob", &["status"]);
    cmd.env("SRVCTL_SOCKET", &socket);
    let run = Run::from_output(cmd.output().unwrap());
    assert!(run.success(), "{run:#?}");
    // Nothing to do for a second: it exits by itself.
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        child.kill().unwrap();
    }
    assert!(exited, "the service did not exit when idle");
}

/// `sc exec-all` and `sc all-containers` through the service act on the caller's scope only:
/// bob his own container, alice her user bob's and her own, carol hers; the operator all.
#[test]
fn bulk_commands_act_only_in_the_callers_scope() {
    let Some(t) = Tenants::start("bulk_commands_act_only_in_the_callers_scope") else {
        return;
    };
    t.sc_ok("bob", &["add-ve", BOB_SITE, "--no-start"]);
    t.sc_ok("carol", &["add-ve", CAROL_SITE, "--no-start"]);
    t.sc_ok("alice", &["add-ve", "alice.example.com", "--no-start"]);
    t.farm.sc_ok(&["add-ve", "root.example.com", "--no-start"]);
    let names = |user: &str, args: &[&str]| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(&t.sc_ok(user, args)).unwrap();
        let rows = json.as_array().expect("one result per container");
        rows.iter()
            .map(|r| r["container"].as_str().unwrap().to_owned())
            .collect()
    };
    let exec = ["--json", "exec-all", "true"];
    assert_eq!(names("bob", &exec), [BOB_SITE]);
    assert_eq!(names("carol", &exec), [CAROL_SITE]);
    assert_eq!(names("alice", &exec), ["alice.example.com", BOB_SITE]);
    let stop = ["--json", "all-containers", "stop"];
    assert_eq!(names("bob", &stop), [BOB_SITE]);
    assert_eq!(names("carol", &stop), [CAROL_SITE]);
    assert_eq!(
        t.sc_ok("bob", &["all-containers", "stop"]),
        format!("{BOB_SITE}: stopped\n")
    );
    let all = t.farm.sc_ok(&["all-containers", "stop"]);
    assert_eq!(all.lines().count(), 4, "{all}");
}
