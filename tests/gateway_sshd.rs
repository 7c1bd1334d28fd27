//! The gateway with the real OpenSSH server and client and the real nss-systemd: sshd runs
//! the shipped `sshd_config`, resolves gateway logins through srvctl's userdb service (bound
//! where nss-systemd looks, `/run/systemd/userdb/io.srvctl.Gateway`), checks the key and
//! starts the session program as the account's UID, which hands the session to `sc` on a
//! scratch root. Everything runs in private mount, network and PID namespaces (a tmpfs over
//! `/run` and `/home`, loopback only), so nothing of the machine is touched or left behind.
//!
//! Two pieces stand in for others: the key source is a four-line script in place of
//! `srvctl-authorized-keys --gateway` (bob's key covers bob's logins), and `sc` runs on a
//! scratch root, so it prints what it would run inside the container instead of running it
//! (the host-in-a-box test enters real containers). Needs root, sshd and nss-systemd.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::Farm;
use common::real::{output, require_root, require_tool, run_ok};

const GATEWAY: &str = env!("CARGO_BIN_EXE_srvctl-gateway");

/// Inside the namespaces: `$1` gateway binary, `$2` directory of `sc`, `$3` scratch root,
/// `$4` work directory (bob's key; logs and results go there), `$5` sshd_config, `$6` banner,
/// `$7` bob's UID.
const SCRIPT: &str = r#"
gateway=$1 bin=$2 root=$3 work=$4 config=$5 banner=$6 bob=$7
ip link set lo up
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /home
mkdir -p /run/sshd /run/systemd/userdb /run/gw /home/bob
chown "$bob:$bob" /home/bob
cp "$work/bob.pub" /run/gw/bob.pub
cat > /run/gw/keys <<'KEYS'
#!/bin/sh
[ "$1" = --gateway ] || exit 0
case "$2" in bob_*) cat /run/gw/bob.pub ;; esac
KEYS
chmod 0755 /run/gw/keys
"$gateway" userdb --listen /run/systemd/userdb/io.srvctl.Gateway --root "$root" 2>"$work/userdb.log" &
/usr/sbin/sshd -D -e -f "$config" \
    -o "AuthorizedKeysCommand=/run/gw/keys --gateway %u" \
    -o "ForceCommand=$gateway session" \
    -o "SetEnv=PATH=$bin:/usr/bin:/bin SRVCTL_ROOT=$root SRVCTL_HOSTNAME=h1.test" \
    -o "Banner=$banner" 2>"$work/sshd.log" &
for i in $(seq 100); do grep -q 'Server listening' "$work/sshd.log" && break; sleep 0.05; done
getent passwd bob_web.ve_www > "$work/getent.out"
run() {
    label=$1; shift
    timeout 20 ssh -p 2222 -i "$work/bob" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 "$@" \
        >"$work/$label.out" 2>"$work/$label.err" </dev/null
    echo $? > "$work/$label.rc"
}
run command -o LogLevel=ERROR bob_web.ve_root@127.0.0.1 'hostname; exit 3'
run pty -o LogLevel=ERROR -tt bob_web.ve_www@127.0.0.1
run sftp -o LogLevel=ERROR -s bob_web.ve_www@127.0.0.1 sftp
run sftp-no-account -o LogLevel=ERROR -s bob_web.ve_deploy@127.0.0.1 sftp
run no-account -o LogLevel=ERROR bob_web.ve_deploy@127.0.0.1 id
run other-user -o LogLevel=ERROR carol_web.ve_root@127.0.0.1 id
run no-user -o LogLevel=ERROR dave_web.ve_root@127.0.0.1 id
run malformed bob-web.ve-root@127.0.0.1 id
"#;

fn read(work: &Path, name: &str) -> String {
    fs::read_to_string(work.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn ssh_through_the_real_sshd_and_nss_systemd_lands_in_sc_as_the_login() {
    if !require_root("gateway_sshd") {
        return;
    }
    for tool in [
        "/usr/sbin/sshd",
        "/usr/bin/ssh",
        "/usr/bin/unshare",
        "/usr/bin/getent",
    ] {
        require_tool(tool);
    }
    let nsswitch = fs::read_to_string("/etc/nsswitch.conf").unwrap();
    assert!(
        nsswitch
            .lines()
            .any(|l| l.starts_with("passwd:") && l.contains("systemd")),
        "nss-systemd is not in /etc/nsswitch.conf: install libnss-systemd"
    );

    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-user", "carol"]);
    farm.sc_ok(&["add-ve", "web.ve", "--user", "bob", "--no-start"]);
    fs::copy("/etc/machine-id", farm.join("etc/machine-id")).unwrap();
    let bob = farm.uid("bob");
    // The session runs `sc` as bob: on a scratch root it reads the datastore itself (the
    // privileged service does that on a host), so the scratch datastore is bob's.
    fs::set_permissions(farm.tmp(), fs::Permissions::from_mode(0o755)).unwrap();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{bob}:{bob}"))
            .arg(farm.state_dir()),
    );

    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(work.join("bob")),
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = Path::new(common::SC).parent().unwrap();
    let out = output(
        Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
            ])
            .args(["sh", "-c", SCRIPT, "sh", GATEWAY])
            .arg(bin)
            .arg(farm.root())
            .arg(work)
            .arg(repo.join("conf/gateway/sshd_config"))
            .arg(repo.join("conf/gateway/banner"))
            .arg(bob.to_string()),
    );
    let logs = || {
        format!(
            "{out:?}\nsshd:\n{}\nuserdb:\n{}",
            read(work, "sshd.log"),
            read(work, "userdb.log")
        )
    };
    assert!(out.status.success(), "{}", logs());
    let result = |label: &str| {
        (
            read(work, &format!("{label}.rc"))
                .trim()
                .parse::<i32>()
                .unwrap(),
            read(work, &format!("{label}.out")),
            read(work, &format!("{label}.err")),
        )
    };

    // nss-systemd resolves the login to bob's UID through the userdb service.
    assert_eq!(
        read(work, "getent.out"),
        format!("bob_web.ve_www:x:{bob}:{bob}:bob_web.ve_www:/home/bob:/bin/sh\n"),
        "{}",
        logs()
    );
    // A command: bob's key, bob's UID, sc's exec as root inside; sc's status comes back.
    let (rc, _, err) = result("command");
    assert_eq!(rc, 0, "{err}\n{}", logs());
    assert!(
        err.contains("would run: systemd-run --machine=web.ve --uid=root")
            && err.contains("-- sh -c hostname; exit 3"),
        "{err}"
    );
    assert!(
        read(work, "sshd.log").contains("Accepted publickey for bob_web.ve_root"),
        "{}",
        logs()
    );
    // An interactive session with a terminal, and the sftp subsystem.
    let (rc, out, err) = result("pty");
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("would run: machinectl shell www@web.ve"),
        "{out}{err}"
    );
    // sshd sends no standard error of a subsystem to the client; the exit status tells what
    // sc said: the scratch container has no sftp-server (11, only `sc NAME sftp` looks for
    // one), or no such account (3).
    let (rc, _, err) = result("sftp");
    assert_eq!(rc, 11, "{err}\n{}", logs());
    assert_eq!(result("sftp-no-account").0, 3);
    // Refusals: a login the container lacks (sc's message and status reach the client), an
    // account whose keys are not bob's, no such account, a malformed login (the banner says
    // what a login looks like).
    let (rc, _, err) = result("no-account");
    assert_eq!(rc, 3, "{err}");
    assert!(
        err.contains("sc: error: container web.ve has no account deploy"),
        "{err}"
    );
    for label in ["other-user", "no-user", "malformed"] {
        let (rc, _, err) = result(label);
        assert_eq!(rc, 255, "{label}: {err}");
        assert!(
            err.contains("Permission denied (publickey)"),
            "{label}: {err}"
        );
    }
    assert!(
        result("malformed")
            .2
            .contains("ssh -p 2222 USER_CONTAINER_LOGIN@host"),
        "the banner is shown"
    );
    let sshd = read(work, "sshd.log");
    assert!(sshd.contains("Invalid user dave_web.ve_root"), "{sshd}");
    assert!(!sshd.contains("Invalid user carol_web.ve_root"), "{sshd}");
}
