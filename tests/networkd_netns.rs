//! The bridge files of `sc regenerate` are applied by a real systemd-networkd.
//!
//! networkd runs directly (no systemd as PID 1, no D-Bus) in a fresh network namespace and a
//! private mount namespace where:
//! - a tmpfs covers `/run`, holding `/run/systemd/network` with the generated files and the
//!   state directory `/run/systemd/netif` (owned by `systemd-network`, the user networkd
//!   drops to);
//! - every other `.network`/`.netdev` directory of the machine is masked by an empty tmpfs, so
//!   only srvctl's files (and the control file below) are seen;
//! - `/sys` is read-only. networkd waits for udev to initialise every link unless udev is
//!   unavailable, which it judges by `/sys` being read-only (the container interface); with a
//!   writable `/sys` and no udevd, links stay "pending udev initialization" forever.
//!
//! Without D-Bus networkd only logs that it waits for the bus socket and carries on. The test
//! waits for the bridge to exist as a bridge with the gateway address, checks that networkd
//! masquerades nothing of it (srvctl's own nftables table does that, only towards the outside
//! of the cluster), and that networkd complained about none of srvctl's files; a
//! deliberately broken control file proves that such complaints are seen.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::Farm;
use common::real::{Netns, Procs, require_root, require_tool, unique};

const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"172.31.99.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"172.31.99.2","hostnet":2}}}"#;
const NETWORKD: &str = "/lib/systemd/systemd-networkd";
const BRIDGE: &str = "sc-br-17-1";
const GATEWAY: &str = "10.17.1.1/24";

/// A file networkd must complain about (an invalid address), matching no interface.
const CONTROL_NAME: &str = "90-srvctl-test-control.network";
const CONTROL: &str = "[Match]\nName=sc-test-none\n\n[Network]\nAddress=lots\n";

/// Sets up the mount namespace (`$1`: directory of the files to serve) and execs the rest.
const MOUNTS: &str = r#"set -e
files=$1; shift
mount -t tmpfs -o mode=0755 srvctl-test /run
mkdir -p /run/systemd/network /run/systemd/netif
cp "$files"/* /run/systemd/network/
if id -u systemd-network >/dev/null 2>&1; then
    chown systemd-network:systemd-network /run/systemd/netif
fi
for d in /etc/systemd/network /usr/local/lib/systemd/network /usr/lib/systemd/network /lib/systemd/network; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 srvctl-test "$d"; fi
done
mount -o remount,bind,ro /sys
exec "$@"
"#;

#[test]
fn networkd_creates_the_bridge_from_generated_files() {
    if !require_root("networkd_netns") {
        return;
    }
    require_tool(NETWORKD);
    require_tool("/usr/sbin/nft");

    let root = Farm::with_clusters(CLUSTERS);
    root.sc_ok(&["add-reseller", "alice"]);
    root.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
    root.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    root.sc_ok(&["regenerate"]);
    let generated = root.join("run/systemd/network");
    let mut names: Vec<String> = fs::read_dir(&generated)
        .expect("regenerate wrote run/systemd/network")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("50-{BRIDGE}.netdev"),
            format!("50-{BRIDGE}.network")
        ]
    );

    // What networkd gets to see: the generated files plus the control file.
    let files = tempfile::tempdir().unwrap();
    common::real::assert_root_outside_masked_dirs(files.path());
    for name in &names {
        fs::copy(generated.join(name), files.path().join(name)).unwrap();
    }
    fs::write(files.path().join(CONTROL_NAME), CONTROL).unwrap();

    let ns = Netns::new(&format!("srvctl-test-{}", unique("nd")));
    let logs = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    let mut cmd = ns.exec(&["unshare", "--mount", "sh", "-c", MOUNTS, "sh"]);
    cmd.arg(files.path())
        .arg(NETWORKD)
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .env("SYSTEMD_LOG_TARGET", "console")
        .env("SYSTEMD_LOG_COLOR", "0")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    procs.spawn("systemd-networkd", cmd, logs.path().join("networkd.log"));

    let applied = common::real::wait_for(&mut procs, Duration::from_secs(20), || {
        let Ok(out) = ns
            .exec(&["ip", "-4", "-o", "addr", "show", "dev", BRIDGE])
            .output()
        else {
            return false;
        };
        String::from_utf8_lossy(&out.stdout).contains(&format!("inet {GATEWAY} "))
    });
    if !applied {
        let exited = procs.exited().unwrap_or_default();
        let links = ns.ip(&["-d", "addr"]);
        panic!(
            "{BRIDGE} did not get {GATEWAY} within 20 s. {exited}\n{links}\n{}",
            procs.logs()
        );
    }
    let link = ns.ip(&["-d", "link", "show", BRIDGE]);
    assert!(
        link.lines().any(|l| l.trim_start().starts_with("bridge ")),
        "{BRIDGE} is not a bridge:\n{link}"
    );
    // No IPMasquerade=: networkd masquerades nothing (srvctl's own table masquerades only what
    // leaves the cluster, see tests/mesh_traffic.rs), so its nat table never holds the bridge.
    let ruleset = common::real::run_ok(&mut ns.exec(&["nft", "list", "ruleset"]));
    assert!(
        !ruleset.contains("10.17.1.0/24"),
        "networkd masquerades the bridge's network:\n{ruleset}"
    );
    procs.kill_all();

    // networkd's verdict on the files: parse problems are logged as "FILE:LINE: …".
    let log = procs.log("systemd-networkd");
    let complaints = |name: &str| -> Vec<&str> {
        let path = format!("/run/systemd/network/{name}:");
        log.lines().filter(|l| l.starts_with(&path)).collect()
    };
    assert!(
        !complaints(CONTROL_NAME).is_empty(),
        "networkd did not complain about the control file; are its warnings captured?\n{log}"
    );
    for name in &names {
        let c = complaints(name);
        assert!(
            c.is_empty(),
            "networkd complained about {name}:\n{}",
            c.join("\n")
        );
    }
    assert!(
        log.contains(&format!(
            "{BRIDGE}: Configuring with /run/systemd/network/50-{BRIDGE}.network"
        )),
        "networkd did not use srvctl's .network for {BRIDGE}:\n{log}"
    );
    let name = ns.name().to_owned();
    drop(procs);
    drop(ns);
    let left = common::real::run_ok(Command::new("ip").args(["netns", "list"]));
    assert!(
        !left.split_whitespace().any(|n| n == name),
        "{name} was not deleted"
    );
}
