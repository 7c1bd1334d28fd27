//! The mesh carries the cluster's traffic with addresses kept end to end, and only what leaves
//! the cluster is masqueraded: real openvpn, real kernel forwarding, srvctl's masquerade
//! ruleset loaded with the real `nft`.
//!
//! Five network namespaces: two hosts (h1, h2) on one link, each running the mesh that `sc
//! regenerate` rendered (the internal CA shared the documented way); one "container" behind a
//! bridge on each host at its plan address (c1 10.16.0.2 on h1's `sc-br-16-0`, c2 10.32.0.2
//! on h2's `sc-br-32-0`, bridges at .1); and "the internet" beyond h1's uplink (198.51.100.2,
//! with 192.0.2.1 on its loopback), which has no route back to any 10.x address.
//!
//! On each host, which starts with strict reverse-path filtering (it would drop the mesh's
//! asymmetric routes): forwarding and loose reverse-path filtering come from the sysctl.d file
//! srvctl installs (applied by the real systemd-sysctl), the masquerade from the ruleset
//! regenerate rendered, loaded with the command line of `srvctl-nat.service`. Then:
//! - c1 pings c2 and c2 pings c1 by address across the mesh, and an nft counter in the receiving
//!   container that matches only the sender's own address (10.16.0.2, 10.32.0.2) counts the
//!   echo requests: a masqueraded packet (from the tunnel address 10.15.2.1) would not count;
//! - h1 itself pings c2 at its plan address, and h1's haproxy, running the configuration
//!   regenerate rendered, serves c2's site over HTTPS (a certificate of h1's site issuer,
//!   verified against the cluster's site root that h2 holds too) from
//!   an HTTP server in c2, across the mesh: both datastores hold both containers, as a
//!   replicated one would;
//! - c1 pings 192.0.2.1: the reply can only come back if the packet left h1 with h1's uplink
//!   address, and a counter in "the internet" on `ip saddr 198.51.100.1` proves it, while one
//!   on `ip saddr 10.16.0.2` stays at zero.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Farm;
use common::real::{
    HAPROXY, MeshHost, Netns, Procs, ensure_tun, exec_start, haproxy, output, require_root,
    require_tool, run_ok, unique,
};

const CLUSTERS: &str = r#"{"mesh":{"h1.test":{"host_ip":"172.31.98.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"172.31.98.2","hostnet":2}}}"#;

const CURL: &str = "/usr/bin/curl";
const BUSYBOX: &str = "/bin/busybox";

/// How long the tunnels get to come up.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The counter table loaded into a namespace: counts ICMP echo requests from `from`.
fn counter(from: &str) -> String {
    format!(
        "table inet srvctl_test {{\n  counter seen {{ }}\n  chain input {{\n    \
         type filter hook input priority filter; policy accept;\n    \
         ip saddr {from} icmp type echo-request counter name seen\n  }}\n}}\n"
    )
}

/// Load `ruleset` into namespace `ns` with the real nft.
fn load(ns: &Netns, ruleset: &str, scratch: &Path) {
    let file = scratch.join(format!("{}.nft", ns.name()));
    fs::write(&file, ruleset).unwrap();
    run_ok(&mut ns.exec(&["nft", "-f", &file.to_string_lossy()]));
}

/// The packets the counter of [`counter`] counted in `ns`.
fn counted(ns: &Netns) -> u64 {
    let out = run_ok(&mut ns.exec(&["nft", "list", "counter", "inet", "srvctl_test", "seen"]));
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in:\n{out}"))
}

/// The plan address of container `name` in the datastore of `root`.
fn address(root: &Farm, name: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("var/lib/srvctl/datastore.json")).unwrap())
            .unwrap();
    doc["containers"][name]["ip"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no address: {doc:#}"))
        .to_owned()
}

/// A container namespace at `ip` behind the bridge `bridge` (gateway `gateway`) of `host`;
/// `tag` (from [`unique`]) names it and its veth pair.
fn container(host: &Netns, bridge: &str, gateway: &str, ip: &str, tag: &str) -> Netns {
    let ns = Netns::new(&format!("srvctl-test-{tag}"));
    host.ip(&["link", "add", bridge, "type", "bridge"]);
    host.ip(&["addr", "add", &format!("{gateway}/24"), "dev", bridge]);
    host.ip(&["link", "set", bridge, "up"]);
    let (outer, inner) = (format!("{tag}h"), format!("{tag}c"));
    host.veth(&outer, &ns, &inner);
    host.ip(&["link", "set", &outer, "master", bridge]);
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", &inner]);
    ns.ip(&["route", "add", "default", "via", gateway]);
    ns
}

/// Switch on what srvctl's sysctl.d file asks for in the host's namespace, with the real
/// systemd-sysctl (as at boot).
fn apply_sysctl(host: &MeshHost) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sysctl/50-srvctl.conf");
    let forward = || run_ok(&mut host.ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]));
    assert_eq!(
        forward().trim(),
        "0",
        "{}: forwarding already on",
        host.name
    );
    // A host that filters by strict reverse path: the mesh routes asymmetrically (a peer's
    // containers come in on this host's server tunnel and go back through its client
    // tunnel), which srvctl's file must allow.
    for conf in ["all", "default"] {
        let key = format!("net.ipv4.conf.{conf}.rp_filter=1");
        run_ok(&mut host.ns.exec(&["sysctl", "-q", "-w", &key]));
    }
    run_ok(
        &mut host
            .ns
            .exec(&["/lib/systemd/systemd-sysctl", &file.to_string_lossy()]),
    );
    assert_eq!(
        forward().trim(),
        "1",
        "{}: srvctl's sysctl.d file did not switch forwarding on",
        host.name
    );
}

/// Load the masquerade ruleset regenerate rendered, with the command line of srvctl-nat.service.
fn load_masquerade(host: &MeshHost) {
    let argv = exec_start("srvctl-nat.service", "");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_ok(
        &mut host
            .ns
            .exec_at_host_paths(host.root.root(), &["/run/srvctl"], &[], &argv),
    );
}

#[test]
fn the_mesh_keeps_addresses_and_each_front_serves_every_site() {
    if !require_root("mesh_traffic") {
        return;
    }
    require_tool("/usr/sbin/openvpn");
    require_tool("/usr/sbin/nft");
    require_tool("/usr/bin/ping");
    require_tool("/lib/systemd/systemd-sysctl");
    for tool in [HAPROXY, CURL, BUSYBOX] {
        require_tool(tool);
    }
    if let Err(why) = ensure_tun() {
        eprintln!("mesh_traffic: skipped: no usable tun device ({why})");
        return;
    }

    // Both datastores hold both containers, as a replicated one would: root's first on each
    // hostnet.
    let r1 = Farm::with_clusters(CLUSTERS);
    let r2 = Farm::for_host(CLUSTERS, "h2.test");
    for r in [&r1, &r2] {
        r.sc_as("h1.test", &["add-ve", "c1.example.com"]);
        r.sc_as("h2.test", &["add-ve", "c2.example.com"]);
    }
    let (ip1, ip2) = (
        address(&r1, "c1.example.com"),
        address(&r2, "c2.example.com"),
    );
    assert_eq!((ip1.as_str(), ip2.as_str()), ("10.16.0.2", "10.32.0.2"));
    // The mesh identities through the cluster's trust root: h1 signs h2's request.
    let passed = tempfile::tempdir().unwrap();
    common::trust::make_ca_host(&r1);
    common::trust::join(&r1, &r2, passed.path());
    r1.sc_ok(&["regenerate"]);
    r2.sc_ok(&["regenerate"]);

    let tag = unique("smt");
    let h1 = MeshHost {
        name: "h1",
        root: r1,
        ns: Netns::new(&format!("srvctl-test-{tag}-1")),
    };
    let h2 = MeshHost {
        name: "h2",
        root: r2,
        ns: Netns::new(&format!("srvctl-test-{tag}-2")),
    };
    let internet = Netns::new(&format!("srvctl-test-{tag}-i"));
    // The hosts' link, and h1's uplink with its default route into "the internet".
    h1.ns.veth(&format!("{tag}a"), &h2.ns, &format!("{tag}b"));
    h1.ns
        .ip(&["addr", "add", "172.31.98.1/24", "dev", &format!("{tag}a")]);
    h2.ns
        .ip(&["addr", "add", "172.31.98.2/24", "dev", &format!("{tag}b")]);
    h1.ns
        .veth(&format!("{tag}u"), &internet, &format!("{tag}w"));
    h1.ns
        .ip(&["addr", "add", "198.51.100.1/24", "dev", &format!("{tag}u")]);
    h1.ns
        .ip(&["route", "add", "default", "via", "198.51.100.2"]);
    internet.ip(&["addr", "add", "198.51.100.2/24", "dev", &format!("{tag}w")]);
    internet.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"]);
    let c1 = container(&h1.ns, "sc-br-16-0", "10.16.0.1", &ip1, &unique("smc"));
    let c2 = container(&h2.ns, "sc-br-32-0", "10.32.0.1", &ip2, &unique("smc"));

    let scratch = tempfile::tempdir().unwrap();
    for host in [&h1, &h2] {
        apply_sysctl(host);
        load_masquerade(host);
    }
    let masquerade = run_ok(&mut h1.ns.exec(&["nft", "list", "table", "inet", "srvctl"]));
    assert!(
        masquerade
            .contains("ip saddr 10.16.0.0/12 ip daddr != 10.15.0.0-10.255.255.255 masquerade"),
        "h1's masquerade is not srvctl's:\n{masquerade}"
    );
    load(&c1, &counter(&ip2), scratch.path());
    load(&c2, &counter(&ip1), scratch.path());
    load(&internet, &counter("198.51.100.1"), scratch.path());

    let mut procs = Procs::default();
    h1.start(&mut procs, scratch.path(), "server");
    h2.start(&mut procs, scratch.path(), "server");
    h2.start(&mut procs, scratch.path(), "client-1");
    h1.start(&mut procs, scratch.path(), "client-2");

    for (from, from_ns, to, to_ns) in [(&ip1, &c1, &ip2, &c2), (&ip2, &c2, &ip1, &c1)] {
        let ok = common::real::wait_for(&mut procs, TIMEOUT, || from_ns.ping(None, to));
        if !ok {
            let exited = procs.exited().unwrap_or_default();
            let routes = run_ok(Command::new("ip").args(["-n", h1.ns.name(), "route"]));
            panic!(
                "no ping from {from} to {to} within {TIMEOUT:?}. {exited}\nh1 routes:\n{routes}\n{}",
                procs.logs()
            );
        }
        assert!(
            counted(to_ns) > 0,
            "{to} saw no echo request from {from} itself: its source was rewritten\n{}",
            run_ok(&mut to_ns.exec(&["nft", "list", "ruleset"]))
        );
    }

    // The host itself (its haproxy, serving every site of the cluster) reaches the other
    // host's container at its plan address, from its tunnel address.
    assert!(h1.ping(None, &ip2), "h1 cannot reach {ip2} across the mesh");

    // One front: h1's haproxy serves c2's site (c2 runs on h2) over HTTPS, with a certificate
    // of h1's site issuer, from c2's plan address across the mesh.
    let site = scratch.path().join("c2-site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "this is c2 on h2\n").unwrap();
    let mut httpd = c2.exec(&[BUSYBOX, "httpd", "-f", "-p", &format!("{ip2}:80"), "-h"]);
    httpd.arg(&site);
    procs.spawn("c2 httpd", httpd, scratch.path().join("c2-httpd.log"));
    procs.spawn(
        "h1 haproxy",
        haproxy(&h1.ns, &h1.root),
        scratch.path().join("h1-haproxy.log"),
    );
    // The certificate, issued by h1's own site issuer, verifies against the cluster's site
    // root as every host holds it (here h2's copy), whose key only the CA host has.
    let ca = h2.root.join("var/lib/srvctl/pki/cluster/site-ca.crt");
    assert!(
        !h2.root
            .join("var/lib/srvctl/pki/cluster/site-ca.key")
            .exists()
    );
    assert!(
        h1.root
            .join("var/lib/srvctl/pki/cluster/site-ca.key")
            .exists()
    );
    let ca = ca.to_string_lossy();
    let curl = [
        CURL,
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        &ca,
        "--resolve",
        "c2.example.com:443:127.0.0.1",
        "https://c2.example.com/",
    ];
    let mut body = String::new();
    let served = common::real::wait_for(&mut procs, TIMEOUT, || {
        body = String::from_utf8_lossy(&output(&mut h1.ns.exec(&curl)).stdout).into_owned();
        body == "this is c2 on h2\n"
    });
    assert!(
        served,
        "h1's haproxy did not serve c2's site (last answer {body:?}). {}\n{}",
        procs.exited().unwrap_or_default(),
        procs.logs()
    );

    // Out of the cluster: masqueraded to h1's uplink address, else no reply could come back.
    assert!(
        c1.ping(None, "192.0.2.1"),
        "c1 got no answer from outside the cluster"
    );
    assert!(
        counted(&internet) > 0,
        "the outside saw no packet from h1's uplink address"
    );
    // The counter is replaced by one on c1's own address: it must not reach the outside.
    run_ok(&mut internet.exec(&["nft", "delete", "table", "inet", "srvctl_test"]));
    load(&internet, &counter(&ip1), scratch.path());
    assert!(c1.ping(None, "192.0.2.1"));
    assert_eq!(
        counted(&internet),
        0,
        "c1's own address reached the outside: it was not masqueraded"
    );
    procs.kill_all();
}
