//! SSH keys of the accounts, end to end: `sc add-publickey`, `sc publickeys`,
//! `sc remove-publickey` on a scratch farm with real keys made by `ssh-keygen`; refusals that
//! leave the datastore byte for byte as it was; what `srvctl-authorized-keys` gives sshd for
//! host logins and gateway logins; homes; and a real sshd that lets the operator's datastore
//! key in and turns another key away.

// Tests may use the real file system and processes directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::real::{self, Procs, require_root, require_tool, run_ok};
use common::{Farm, Run};

/// `srvctl-authorized-keys`.
const AUTHORIZED_KEYS: &str = env!("CARGO_BIN_EXE_srvctl-authorized-keys");

/// A key pair made by `ssh-keygen` in a temporary directory.
struct KeyPair {
    private: PathBuf,
    public: PathBuf,
}

impl KeyPair {
    /// A new ed25519 key (or `kind`) with comment `comment`, in `dir`.
    fn new(dir: &Path, kind: &str, comment: &str) -> Self {
        let private = dir.join(comment);
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-N", "", "-t", kind, "-C", comment, "-f"])
                .arg(&private),
        );
        Self {
            public: private.with_extension("pub"),
            private,
        }
    }

    /// The public key line as ssh-keygen wrote it.
    fn line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .unwrap()
            .trim_end()
            .to_owned()
    }

    /// The SHA256 fingerprint as `ssh-keygen -l` prints it.
    fn fingerprint(&self) -> String {
        let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(&self.public));
        out.split_whitespace().nth(1).unwrap().to_owned()
    }

    fn path(&self) -> &str {
        self.public.to_str().unwrap()
    }
}

/// A farm with reseller alice, her user bob, reseller carol and her user dave.
fn farm() -> Farm {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-reseller", "carol"]);
    farm.sc_ok(&["add-user", "dave", "--reseller", "carol"]);
    farm
}

fn keydir() -> tempfile::TempDir {
    require_tool("/usr/bin/ssh-keygen");
    tempfile::tempdir().unwrap()
}

/// `srvctl-authorized-keys --root ROOT ARGS…` on `farm`, which must exit 0.
fn authorized(farm: &Farm, args: &[&str]) -> String {
    farm.run_bin(AUTHORIZED_KEYS, args).ok().to_owned()
}

/// `sc ARGS…` with `input` on its standard input.
fn sc_with_stdin(farm: &Farm, args: &[&str], input: &[u8]) -> Run {
    let mut child = farm
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal may stop reading early: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input);
    Run::from_output(child.wait_with_output().unwrap())
}

#[test]
fn keys_are_added_from_text_file_or_stdin_listed_and_removed() {
    let dir = keydir();
    let farm = farm();
    let laptop = KeyPair::new(dir.path(), "ed25519", "bob@laptop");
    let phone = KeyPair::new(dir.path(), "ecdsa", "bob@phone");
    let work = KeyPair::new(dir.path(), "rsa", "bob@work");

    let out = farm.sc_ok(&["add-publickey", "bob", laptop.path()]);
    assert_eq!(
        out.trim(),
        format!(
            "bob: key {} added (ssh-ed25519 bob@laptop)",
            laptop.fingerprint()
        )
    );
    farm.sc_ok(&["add-publickey", "bob", &phone.line()]);
    sc_with_stdin(
        &farm,
        &["add-publickey", "bob", "-"],
        work.line().as_bytes(),
    )
    .ok();

    let list: serde_json::Value =
        serde_json::from_str(&farm.sc_ok(&["--json", "publickeys", "bob"])).unwrap();
    let rows = list.as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["fingerprint"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["comment"].as_str().unwrap(),
            )
        })
        .collect();
    let (fl, fp, fw) = (
        laptop.fingerprint(),
        phone.fingerprint(),
        work.fingerprint(),
    );
    assert_eq!(
        got,
        [
            (fl.as_str(), "ssh-ed25519", "bob@laptop"),
            (fp.as_str(), "ecdsa-sha2-nistp256", "bob@phone"),
            (fw.as_str(), "ssh-rsa", "bob@work"),
        ]
    );
    assert!(rows.iter().all(|r| r["added"].as_str().is_some()));
    let text = farm.sc_ok(&["publickeys", "bob"]);
    assert!(text.starts_with("FINGERPRINT"), "{text}");
    assert!(text.contains(&fl) && text.contains("bob@phone"), "{text}");
    // Stored as the key line, with the fingerprint ssh-keygen computes.
    let stored = &farm.datastore_json()["users"]["bob"]["publickeys"][0];
    assert_eq!(stored["key"], laptop.line());
    assert_eq!(stored["fingerprint"], fl.as_str());

    let out = farm.sc_ok(&["remove-publickey", "bob", "bob@phone"]);
    assert_eq!(out.trim(), format!("bob: key {fp} removed"));
    farm.sc_ok(&["remove-publickey", "bob", &fw]);
    let left: serde_json::Value =
        serde_json::from_str(&farm.sc_ok(&["--json", "publickeys", "bob"])).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["fingerprint"], fl.as_str());

    // USER defaults to the caller: root, the operator.
    farm.sc_ok(&["add-publickey", &work.line()]);
    let root: serde_json::Value =
        serde_json::from_str(&farm.sc_ok(&["--json", "publickeys", "root"])).unwrap();
    assert_eq!(root[0]["fingerprint"], fw.as_str());
    assert_eq!(
        farm.datastore_json()["operator"]["publickeys"][0]["fingerprint"],
        fw.as_str()
    );
    farm.sc_ok(&["remove-publickey", "bob@work"]);
    assert!(farm.datastore_json().get("operator").is_none());
    // Through sudo the caller is root, the operator: its keys are the operator's, and only
    // the audit names the sudo user.
    let run = Run::from_output(
        farm.command(&["add-publickey", phone.path()])
            .env("SUDO_USER", "dave")
            .output()
            .unwrap(),
    );
    assert!(run.ok().starts_with("root: key"), "{run:?}");
    assert_eq!(
        farm.datastore_json()["operator"]["publickeys"][0]["fingerprint"],
        fp.as_str()
    );
    let audit = farm.audit_records();
    assert_eq!(audit.last().unwrap()["user"], "dave");
}

#[test]
fn refused_keys_leave_the_datastore_byte_for_byte_unchanged() {
    let dir = keydir();
    let farm = farm();
    let key = KeyPair::new(dir.path(), "ed25519", "bob@laptop");
    let other = KeyPair::new(dir.path(), "ed25519", "other");
    let weak = KeyPair::new(dir.path(), "rsa", "weak");
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q", "-N", "", "-t", "rsa", "-b", "1024", "-C", "weak", "-f",
            ])
            .arg(dir.path().join("weak1024")),
    );
    farm.sc_ok(&["add-publickey", "bob", key.path()]);
    let line = key.line();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let huge = write(
        "huge.pub",
        &format!("{} {}", other.line(), "a".repeat(20_000)),
    );
    let two_lines = write("two.pub", &format!("{}\n{}\n", other.line(), weak.line()));
    let private = key.private.to_str().unwrap().to_owned();
    let weak1024 = format!("{}.pub", dir.path().join("weak1024").display());
    let moved = line.replace("bob@laptop", "a-new-comment");
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec!["bob".into(), key.path().into()],
            "exists",
            "already exists",
        ),
        (vec!["bob".into(), moved], "exists", "already exists"),
        (
            vec![
                "bob".into(),
                format!("command=\"/bin/sh\" {}", other.line()),
            ],
            "invalid",
            "options",
        ),
        (
            vec!["bob".into(), format!("from=\"*\",no-pty {}", other.line())],
            "invalid",
            "options",
        ),
        (
            vec!["bob".into(), format!("{} {}", other.line(), weak.line())],
            "invalid",
            "another key",
        ),
        (
            vec!["bob".into(), format!("{}\n{}", other.line(), weak.line())],
            "invalid",
            "more than one line",
        ),
        (
            vec!["bob".into(), two_lines],
            "invalid",
            "more than one line",
        ),
        (vec!["bob".into(), huge], "invalid", "longer than"),
        (vec!["bob".into(), private], "invalid", "private key"),
        (vec!["bob".into(), weak1024], "invalid", "2048 bits"),
        (
            vec!["bob".into(), "/dev/zero".into()],
            "invalid",
            "no such file",
        ),
        (
            vec!["bob".into(), "missing.pub".into()],
            "invalid",
            "no such file",
        ),
        (
            vec!["zed".into(), other.line()],
            "not-found",
            "no user named zed",
        ),
        (vec!["Bob\n".into(), other.line()], "invalid", ""),
    ];
    let before = farm.datastore_bytes();
    for (args, kind, words) in &cases {
        let mut argv = vec!["add-publickey"];
        argv.extend(args.iter().map(String::as_str));
        let line = farm.sc(&argv).refused().to_owned();
        assert!(line.contains(words), "{args:?}: {line}");
        argv.insert(0, "--json");
        let run = farm.sc(&argv);
        let error: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(error["error"]["kind"], *kind, "{args:?}: {run:?}");
        assert_eq!(farm.datastore_bytes(), before, "{args:?}");
    }
    // Standard input that never ends is cut off, not read to the end.
    let endless = vec![b'a'; 1 << 20];
    let run = sc_with_stdin(&farm, &["add-publickey", "bob", "-"], &endless);
    assert!(run.refused().contains("more than"), "{run:?}");
    let removes = [
        (vec!["bob", "SHA256:nothing"], "not-found"),
        (vec!["bob", "no-such-comment"], "not-found"),
        (vec!["alice", "bob@laptop"], "not-found"),
        (vec!["zed", "bob@laptop"], "not-found"),
    ];
    for (args, kind) in removes {
        let mut argv = vec!["--json", "remove-publickey"];
        argv.extend(&args);
        let run = farm.sc(&argv);
        let error: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(error["error"]["kind"], kind, "{args:?}: {run:?}");
        assert_eq!(farm.datastore_bytes(), before, "{args:?}");
    }
}

#[test]
fn authorized_keys_covers_own_reseller_and_operator_keys_only() {
    let dir = keydir();
    let farm = farm();
    let keys: Vec<(&str, KeyPair)> = ["alice", "bob", "carol", "dave", "root"]
        .into_iter()
        .map(|who| (who, KeyPair::new(dir.path(), "ed25519", who)))
        .collect();
    for (who, key) in &keys {
        farm.sc_ok(&["add-publickey", who, key.path()]);
    }
    let line = |who: &str| keys.iter().find(|(w, _)| *w == who).unwrap().1.line();
    let lines = |whos: &[&str]| -> String { whos.iter().map(|w| line(w) + "\n").collect() };

    // Host logins: the account's own keys.
    for who in ["alice", "bob", "carol", "dave", "root"] {
        assert_eq!(authorized(&farm, &[who]), lines(&[who]), "{who}");
    }
    // Gateway logins: USER's own, USER's reseller's, the operator's.
    let gateway = |login: &str| authorized(&farm, &["--gateway", login]);
    assert_eq!(
        gateway("bob_bob-site.example.com_www"),
        lines(&["bob", "alice", "root"])
    );
    assert_eq!(gateway("dave_x.ve_root"), lines(&["dave", "carol", "root"]));
    assert_eq!(gateway("alice_a.ve_root"), lines(&["alice", "root"]));
    assert_eq!(gateway("root_a.ve_root"), lines(&["root"]));
    // A reseller's key covers its own users only.
    assert!(!gateway("dave_x.ve_root").contains(&line("alice")));
    assert!(!gateway("bob_x.ve_root").contains(&line("carol")));

    // Unknown and malformed names: nothing, exit 0.
    for name in [
        "nobody",
        "",
        "Bob",
        "bob\n",
        "../bob",
        "bob_",
        "bob_x",
        "bob__www",
        "bob_x.ve_",
        "_x.ve_root",
        "nobody_x.ve_root",
        "Bob_x.ve_root",
    ] {
        assert_eq!(authorized(&farm, &["--gateway", name]), "", "{name:?}");
        if !name.contains('_') {
            assert_eq!(authorized(&farm, &[name]), "", "{name:?}");
        }
    }
    assert_eq!(authorized(&farm, &["bob_x.ve_root"]), "");
}

#[test]
fn a_hand_edited_key_is_set_aside_and_never_printed() {
    let dir = keydir();
    let farm = farm();
    let key = KeyPair::new(dir.path(), "ed25519", "bob@laptop");
    let evil = KeyPair::new(dir.path(), "ed25519", "evil");
    farm.sc_ok(&["add-publickey", "bob", key.path()]);
    let mut doc = farm.datastore_json();
    let keys = doc["users"]["bob"]["publickeys"].as_array_mut().unwrap();
    let injected = format!("{}\ncommand=\"/bin/sh\" {}", key.line(), evil.line());
    keys.push(serde_json::json!({"key": injected, "fingerprint": key.fingerprint(), "added": "t"}));
    keys.push(
        serde_json::json!({"key": evil.line(), "fingerprint": "SHA256:forged", "added": "t"}),
    );
    farm.write_datastore(&doc);
    let before = farm.datastore_bytes();
    assert_eq!(authorized(&farm, &["bob"]), key.line() + "\n");
    let run = farm.regenerate(&[]);
    assert!(run.success(), "{run:?}");
    assert_eq!(
        common::lines_with(&run.stderr, "publickeys of bob").len(),
        2,
        "{run:?}"
    );
    // A change to the account writes the set-aside keys back as they were.
    farm.sc_ok(&["remove-publickey", "bob", "bob@laptop"]);
    let after = farm.datastore_json();
    assert_eq!(
        after["users"]["bob"]["publickeys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(after["users"]["bob"]["publickeys"][0]["key"], injected);
    assert_ne!(farm.datastore_bytes(), before);
    assert_eq!(authorized(&farm, &["bob"]), "");
}

#[test]
fn accounts_get_a_home_owned_by_them_that_is_never_rewritten() {
    if !require_root("homes") {
        return;
    }
    let farm = Farm::new().with_alice_and_bob();
    let home = |name: &str| farm.join(&format!("home/{name}"));
    let meta = |name: &str| {
        let m = std::fs::symlink_metadata(home(name)).unwrap();
        (m.uid(), m.gid(), m.mode() & 0o7777)
    };
    let bob_uid = farm.state().users.values().map(|u| u.uid).max().unwrap();
    assert_eq!(meta("bob"), (bob_uid, bob_uid, 0o700));
    assert_eq!(meta("alice").2, 0o700);
    // regenerate makes a missing home again, and leaves one the tenant changed.
    std::fs::remove_dir(home("bob")).unwrap();
    std::fs::set_permissions(home("alice"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(home("alice").join("site.html"), "mine").unwrap();
    let run = farm.regenerate(&[]);
    assert!(run.success(), "{run:?}");
    assert_eq!(meta("bob"), (bob_uid, bob_uid, 0o700));
    assert_eq!(meta("alice").2, 0o750);
    assert_eq!(
        std::fs::read_to_string(home("alice").join("site.html")).unwrap(),
        "mine"
    );
    // destroy-user keeps the home.
    farm.sc_ok(&["destroy-user", "bob"]);
    assert!(home("bob").is_dir());
    let shell: serde_json::Value =
        serde_json::from_slice(&std::fs::read(farm.join("run/userdb/alice.user")).unwrap())
            .unwrap();
    assert_eq!(shell["shell"], "/bin/bash");
    assert_eq!(shell["homeDirectory"], "/home/alice");
}

/// sshd refuses an AuthorizedKeysCommand unless the program and every directory above it are
/// root's and not writable by group or others: a fresh directory under /run is.
fn install_for_sshd(dir: &Path) -> PathBuf {
    let bin = dir.join("libexec/srvctl-authorized-keys");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(AUTHORIZED_KEYS, &bin).unwrap();
    for p in [dir, bin.parent().unwrap(), &bin] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn a_real_sshd_lets_the_operators_datastore_key_in_and_no_other() {
    if !require_root("sshd") {
        return;
    }
    require_tool("/usr/sbin/sshd");
    require_tool("/usr/bin/ssh");
    let keys = keydir();
    let farm = farm();
    let operator = KeyPair::new(keys.path(), "ed25519", "operator");
    let stranger = KeyPair::new(keys.path(), "ed25519", "stranger");
    let bobs = KeyPair::new(keys.path(), "ed25519", "bob");
    farm.sc_ok(&["add-publickey", "root", operator.path()]);
    farm.sc_ok(&["add-publickey", "bob", bobs.path()]);

    let run_dir = tempfile::Builder::new()
        .prefix("srvctl-sshd-")
        .tempdir_in("/run")
        .unwrap();
    let bin = install_for_sshd(run_dir.path());
    let host_key = run_dir.path().join("host_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", "ed25519", "-f"])
            .arg(&host_key),
    );
    let port = 20000 + (std::process::id() % 20000) as u16;
    let config = run_dir.path().join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile none\n\
             AuthorizedKeysFile none\nAuthorizedKeysCommand {bin} --root {root} %u\n\
             AuthorizedKeysCommandUser root\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             UsePAM no\nStrictModes no\nLogLevel VERBOSE\n",
            host = host_key.display(),
            bin = bin.display(),
            root = farm.root().display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    run_ok(
        Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(&config),
    );
    let mut procs = Procs::default();
    let mut sshd = Command::new("/usr/sbin/sshd");
    sshd.args(["-D", "-e", "-f"]).arg(&config);
    procs.spawn("sshd", sshd, run_dir.path().join("sshd.log"));
    let ssh = |key: &KeyPair, user: &str| {
        Command::new("/usr/bin/ssh")
            .args(["-p", &port.to_string(), "-i"])
            .arg(&key.private)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .args(["echo", "in-as-$(id -un)"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let listening = real::wait_for(&mut procs, Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(listening, "sshd did not listen:\n{}", procs.logs());
    let inside = ssh(&operator, "root");
    assert!(
        inside.status.success(),
        "the operator's key was refused: {inside:?}\n{}",
        procs.logs()
    );
    assert_eq!(String::from_utf8_lossy(&inside.stdout).trim(), "in-as-root");
    for (key, what) in [(&stranger, "a key nobody added"), (&bobs, "bob's key")] {
        let out = ssh(key, "root");
        assert!(!out.status.success(), "{what} let root in: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{what}: {out:?}"
        );
    }
    // After remove-publickey the key opens nothing.
    farm.sc_ok(&["remove-publickey", "root", "operator"]);
    assert!(!ssh(&operator, "root").status.success());
}

#[test]
fn install_sh_points_sshd_at_the_installed_program_under_its_prefix() {
    let dest = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(common::SC).parent().unwrap();
    run_ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
            .env("DESTDIR", dest.path())
            .env("PREFIX", "/opt/srvctl")
            .env("SRVCTL_BIN_DIR", bin_dir),
    );
    let conf =
        std::fs::read_to_string(dest.path().join("etc/ssh/sshd_config.d/50-srvctl.conf")).unwrap();
    assert!(
        conf.contains(
            "\nAuthorizedKeysCommand /opt/srvctl/libexec/srvctl/srvctl-authorized-keys %u\n"
        ),
        "{conf}"
    );
    assert!(
        conf.contains("\nAuthorizedKeysCommandUser root\n"),
        "{conf}"
    );
    let installed = dest
        .path()
        .join("opt/srvctl/libexec/srvctl/srvctl-authorized-keys");
    assert_eq!(std::fs::metadata(installed).unwrap().mode() & 0o7777, 0o755);
}
