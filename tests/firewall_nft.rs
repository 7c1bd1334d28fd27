//! srvctl's firewall table (`sc update-install` on a host without firewalld), loaded with the
//! real nft into a network namespace of the test's own: from a peer namespace, the ports srvctl
//! serves answer (a connection to a port nobody listens on is refused: the packet got in),
//! another port gets no answer at all (dropped), ICMP passes, and from an `sc-*` interface (a
//! container bridge, a mesh tunnel) every port answers.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::real::{Netns, output, require_root, require_tool, run_ok, unique};
use srvctl::ops::install::firewall::{self, FirewallView};
use srvctl::ops::install::{HostView, Role};
use srvctl::ops::versions::PackageManager;

/// How a TCP connection attempt from `from` to `to:port` ended.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Refused (no listener; the packet was let in) or connected.
    Answered,
    /// No answer within the time limit: dropped.
    Silent,
}

fn connect(from: &Netns, to: &str, port: u16) -> Answer {
    let start = Instant::now();
    let out = output(&mut from.exec(&[
        "timeout",
        "2",
        "bash",
        "-c",
        &format!("exec 3<>/dev/tcp/{to}/{port}"),
    ]));
    match out.status.code() {
        Some(124) => Answer::Silent,
        _ => {
            assert!(start.elapsed() < Duration::from_secs(2));
            Answer::Answered
        }
    }
}

#[test]
fn the_table_lets_in_what_srvctl_serves_and_drops_the_rest() {
    if !require_root("firewall_nft") {
        return;
    }
    require_tool("/usr/sbin/nft");
    let tag = unique("fw");
    let host = Netns::new(&format!("srvctl-test-{tag}-h"));
    let peer = Netns::new(&format!("srvctl-test-{tag}-p"));
    let container = Netns::new(&format!("srvctl-test-{tag}-c"));
    host.veth("uplink0", &peer, "eth0");
    host.ip(&["addr", "add", "192.0.2.1/24", "dev", "uplink0"]);
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    host.veth("sc-br-17-1", &container, "host0");
    host.ip(&["addr", "add", "10.17.1.1/24", "dev", "sc-br-17-1"]);
    container.ip(&["addr", "add", "10.17.1.2/24", "dev", "host0"]);

    let view = HostView {
        manager: PackageManager::Dpkg,
        installed: Default::default(),
        hostname: None,
        limits: Vec::new(),
        units: Default::default(),
        firewall: FirewallView::Nftables { file: None },
        ssh_ports: vec![22],
        role: Role {
            cluster: true,
            dns_server: false,
        },
        selinux_enforcing: None,
    };
    // Before: nothing is filtered.
    assert_eq!(connect(&peer, "192.0.2.1", 8080), Answer::Answered);

    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("firewall.nft");
    fs::write(&file, firewall::table(&firewall::ports(&view))).unwrap();
    // As on a minimal host: no /etc/protocols, no /etc/services to name things by.
    let load = || {
        run_ok(&mut host.exec(&[
            "unshare",
            "--mount",
            "sh",
            "-c",
            "mount --bind /dev/null /etc/protocols && mount --bind /dev/null /etc/services \
             && exec nft -f \"$1\"",
            "sh",
            &file.to_string_lossy(),
        ]))
    };
    load();
    // Loading it again replaces the table in one transaction (as a restart of its unit does).
    load();
    let listed = run_ok(&mut host.exec(&["nft", "list", "table", "inet", "srvctl-firewall"]));
    assert_eq!(listed.matches("chain input").count(), 1, "{listed}");

    for port in [22, 25, 80, 443, 2222, 2379, 2380] {
        assert_eq!(
            connect(&peer, "192.0.2.1", port),
            Answer::Answered,
            "port {port} from the uplink"
        );
    }
    for port in [8080, 110, 53] {
        assert_eq!(
            connect(&peer, "192.0.2.1", port),
            Answer::Silent,
            "port {port} from the uplink"
        );
    }
    assert!(peer.ping(None, "192.0.2.1"), "ICMP from the uplink");
    // A container reaches every port of the host through its bridge.
    assert_eq!(connect(&container, "10.17.1.1", 8080), Answer::Answered);
    // The host's own connections out get their answers back.
    assert!(host.ping(None, "192.0.2.2"));
    let status = Command::new("ip")
        .args(["netns", "exec", host.name(), "nft", "delete", "table"])
        .args(["inet", "srvctl-firewall"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(connect(&peer, "192.0.2.1", 8080), Answer::Answered);
}
