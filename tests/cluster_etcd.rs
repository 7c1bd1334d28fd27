//! Three hosts form a real etcd cluster from the configuration srvctl renders, with the trust
//! root obtained through `sc cluster request|sign|accept`: h1 is the CA host and signs the
//! CSRs of h2 and h3, no key leaves its host (the CA key is looked for in every root). Each
//! member runs `/usr/bin/etcd --config-file` on its host's rendered `etcd.conf.yml`, the
//! absolute paths of which are re-rooted into the host's scratch root (the data directory and
//! the certificates); etcdctl then checks the cluster's health over TLS, writes on one member
//! and reads on another, and is refused with a site certificate of the internal CA or with no
//! client certificate at all. Then a fourth host, added to clusters.json, joins the running
//! cluster: `sc cluster accept` adds its member (MemberAdd) and it starts as `existing`.
//!
//! Each member runs in a network namespace of its own, whose one address is its host_ip
//! (172.31.97.11..13 on a bridge): a member checks that a peer connects from an address its
//! certificate names, so members sharing the loopback (whose connections all come from
//! 127.0.0.1) would refuse each other, as hosts behind one NAT address would.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Farm;
use common::real::{Netns, Procs, output, require_root, unique, wait_for};

const CLUSTERS: &str = r#"{"trust": {
  "h1.test": {"host_ip": "172.31.97.11", "hostnet": 1, "role": "ca"},
  "h2.test": {"host_ip": "172.31.97.12", "hostnet": 2},
  "h3.test": {"host_ip": "172.31.97.13", "hostnet": 3}}}"#;
/// The three, and h4 added later.
const FOUR: &str = r#"{"trust": {
  "h1.test": {"host_ip": "172.31.97.11", "hostnet": 1, "role": "ca"},
  "h2.test": {"host_ip": "172.31.97.12", "hostnet": 2},
  "h3.test": {"host_ip": "172.31.97.13", "hostnet": 3},
  "h4.test": {"host_ip": "172.31.97.14", "hostnet": 4}}}"#;
const HOST_IPS: [&str; 4] = [
    "172.31.97.11",
    "172.31.97.12",
    "172.31.97.13",
    "172.31.97.14",
];

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const CONFIG: &str = "run/srvctl/etcd/etcd.conf.yml";
const PKI: &str = "var/lib/srvctl/pki/cluster";

/// How long the members get to form the cluster.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether etcd is installed; without it the test passes with a note, except under CI.
fn etcd_installed() -> bool {
    if Path::new(ETCD).is_file() && Path::new(ETCDCTL).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{ETCD} or {ETCDCTL} is missing: run scripts/test-deps.sh (etcd-server, etcd-client)"
    );
    eprintln!("cluster_etcd: skipped: {ETCD} is not installed");
    false
}

/// `root`'s rendered member configuration, its host paths re-rooted under `root`.
fn rerooted_config(root: &Farm) -> String {
    let text = fs::read_to_string(root.join(CONFIG)).expect("regenerate rendered etcd.conf.yml");
    let base = format!("{}/var/lib/srvctl/", root.root().display());
    text.replace("\"/var/lib/srvctl/", &format!("\"{base}"))
}

/// A TLS identity for etcdctl: CA file, certificate, key.
struct Identity {
    cacert: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Identity {
    fn of_host(root: &Farm) -> Self {
        Self {
            cacert: root.join(&format!("{PKI}/ca.crt")),
            cert: root.join(&format!("{PKI}/host.crt")),
            key: root.join(&format!("{PKI}/host.key")),
        }
    }

    /// `root`'s default site certificate (the internal CA's, certificate and key in one file,
    /// as haproxy reads it), split into `dir`; the CA file stays the cluster's.
    fn of_site(root: &Farm, dir: &Path) -> Self {
        let text = fs::read_to_string(root.join("var/lib/srvctl/certs/_default.pem"))
            .expect("regenerate issued the default site certificate");
        let blocks = pem::parse_many(&text).unwrap();
        let (keys, certs): (Vec<_>, Vec<_>) = blocks
            .into_iter()
            .partition(|b| b.tag().ends_with("PRIVATE KEY"));
        assert_eq!(keys.len(), 1, "{text}");
        let (cert, key) = (dir.join("site.crt"), dir.join("site.key"));
        fs::write(&cert, pem::encode_many(&certs)).unwrap();
        fs::write(&key, pem::encode(&keys[0])).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        Self {
            cacert: Identity::of_host(root).cacert,
            cert,
            key,
        }
    }
}

/// Four namespaces, one per host, joined by a bridge in the first: host i has
/// `HOST_IPS[i]`.
fn four_namespaces() -> [Netns; 4] {
    let tag = unique("sce");
    let ns = [1, 2, 3, 4].map(|i| Netns::new(&format!("srvctl-test-{tag}-{i}")));
    let bridge = format!("{tag}br");
    ns[0].ip(&["link", "add", &bridge, "type", "bridge"]);
    ns[0].ip(&[
        "addr",
        "add",
        &format!("{}/24", HOST_IPS[0]),
        "dev",
        &bridge,
    ]);
    ns[0].ip(&["link", "set", &bridge, "up"]);
    for i in 1..4 {
        let (near, far) = (format!("{tag}{i}a"), format!("{tag}{i}b"));
        ns[0].ip(&["link", "add", &near, "type", "veth", "peer", "name", &far]);
        ns[0].ip(&["link", "set", &far, "netns", ns[i].name()]);
        ns[0].ip(&["link", "set", &near, "master", &bridge, "up"]);
        ns[i].ip(&["addr", "add", &format!("{}/24", HOST_IPS[i]), "dev", &far]);
        ns[i].ip(&["link", "set", &far, "up"]);
    }
    ns
}

/// Run etcdctl in `ns` against `endpoint` as `who` (no client certificate with `None`).
fn etcdctl(
    ns: &Netns,
    endpoint: &str,
    ca: &Path,
    who: Option<&Identity>,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = ns.exec(&[ETCDCTL]);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://{endpoint}:2379"))
        .arg(format!("--cacert={}", ca.display()))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=3s");
    if let Some(who) = who {
        cmd.arg(format!("--cert={}", who.cert.display()))
            .arg(format!("--key={}", who.key.display()));
    }
    let out = output(cmd.args(args));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn three_hosts_form_an_etcd_cluster_with_the_cluster_ca_only() {
    if !require_root("cluster_etcd") || !etcd_installed() {
        return;
    }
    let roots = [
        Farm::with_clusters(CLUSTERS),
        Farm::for_host(CLUSTERS, "h2.test"),
        Farm::for_host(CLUSTERS, "h3.test"),
    ];
    let passed = tempfile::tempdir().unwrap();
    common::trust::make_ca_host(&roots[0]);
    for (i, host) in roots[1..].iter().enumerate() {
        let dir = passed.path().join(format!("h{}", i + 2));
        fs::create_dir(&dir).unwrap();
        common::trust::join(&roots[0], host, &dir);
    }
    for (i, root) in roots.iter().enumerate() {
        root.sc_ok(&["regenerate"]);
        let ca_key = root.join(&format!("{PKI}/ca.key"));
        assert_eq!(ca_key.exists(), i == 0, "{}", ca_key.display());
        assert!(root.join(&format!("{PKI}/host.key")).is_file());
    }

    // Dropped after the members (declared later, dropped first).
    let ns = four_namespaces();
    let logs = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    for (i, root) in roots.iter().enumerate() {
        let config = logs.path().join(format!("h{}.conf.yml", i + 1));
        fs::write(&config, rerooted_config(root)).unwrap();
        let mut cmd = ns[i].exec(&[ETCD, "--config-file"]);
        cmd.arg(&config);
        procs.spawn(
            &format!("h{} etcd", i + 1),
            cmd,
            logs.path().join(format!("h{}.log", i + 1)),
        );
    }
    let h1 = Identity::of_host(&roots[0]);
    let h3 = Identity::of_host(&roots[2]);
    let healthy = wait_for(&mut procs, TIMEOUT, || {
        etcdctl(
            &ns[0],
            HOST_IPS[0],
            &h1.cacert,
            Some(&h1),
            &["endpoint", "health", "--cluster"],
        )
        .0
    });
    let (_, health) = etcdctl(
        &ns[0],
        HOST_IPS[0],
        &h1.cacert,
        Some(&h1),
        &["endpoint", "health", "--cluster"],
    );
    assert!(
        healthy,
        "the cluster did not form within {TIMEOUT:?}:\n{health}\n{}",
        procs.logs()
    );
    for ip in &HOST_IPS[..3] {
        assert!(
            health.contains(&format!("https://{ip}:2379 is healthy")),
            "{ip}:\n{health}"
        );
    }
    let (ok, members) = etcdctl(
        &ns[2],
        HOST_IPS[2],
        &h3.cacert,
        Some(&h3),
        &["member", "list"],
    );
    assert!(
        ok && members.matches(", started, h").count() == 3,
        "{members}"
    );

    // A write on h1's member is read on h3's.
    let (ok, out) = etcdctl(
        &ns[0],
        HOST_IPS[0],
        &h1.cacert,
        Some(&h1),
        &["put", "/srvctl/trust/probe", "one"],
    );
    assert!(ok, "{out}");
    let (ok, out) = etcdctl(
        &ns[2],
        HOST_IPS[2],
        &h3.cacert,
        Some(&h3),
        &["get", "--print-value-only", "/srvctl/trust/probe"],
    );
    assert!(ok && out.trim() == "one", "{out}");

    // The internal CA's site certificate is no etcd client, nor is a client without one:
    // h1's member refuses the TLS handshake and says why.
    let site = Identity::of_site(&roots[0], logs.path());
    for (who, why) in [
        (Some(&site), "certificate signed by unknown authority"),
        (None, "client didn't provide a certificate"),
    ] {
        let (ok, out) = etcdctl(
            &ns[0],
            HOST_IPS[0],
            &h1.cacert,
            who,
            &["get", "/srvctl/trust/probe"],
        );
        assert!(
            !ok && !out.contains("one"),
            "a client without a cluster identity read etcd:\n{out}"
        );
        let log = procs.log("h1 etcd");
        assert!(
            log.lines()
                .any(|l| l.contains("rejected connection") && l.contains(why)),
            "h1's member did not log {why:?}:\n{log}"
        );
    }

    add_a_fourth_host(&roots, &ns, &mut procs, logs.path());
    procs.kill_all();
}

/// h4 is added to every host's clusters.json, obtains its certificate from h1, and its
/// `sc cluster accept` (run where h4's address is) adds its member to the running cluster,
/// which it then joins with the membership it was given.
fn add_a_fourth_host(roots: &[Farm; 3], ns: &[Netns; 4], procs: &mut Procs, logs: &Path) {
    for root in roots {
        fs::write(root.join("etc/srvctl/clusters.json"), FOUR).unwrap();
    }
    let h4 = Farm::for_host(FOUR, "h4.test");
    let csr = h4.sc_ok(&["cluster", "request"]);
    let bundle = {
        let mut sign = roots[0].command(&["cluster", "sign", "-"]);
        common::run_with_input(&mut sign, &csr)
    };
    assert!(bundle.success(), "{bundle:#?}");
    // `sc cluster accept` of the bundle, run where h4's address is; its JSON answer.
    let accept = || {
        let mut cmd = ns[3].exec(&[common::SC, "--root"]);
        cmd.arg(h4.root())
            .args(["--json", "cluster", "accept", "-"])
            .env("SRVCTL_HOSTNAME", "h4.test")
            .env_remove("SRVCTL_ROOT");
        let run = common::run_with_input(&mut cmd, &bundle.stdout);
        serde_json::from_str::<serde_json::Value>(run.ok()).unwrap()
    };
    let answer = accept();
    assert_eq!(answer["etcd"]["enrolment"], "added", "{answer}");
    let joined = answer["etcd"]["initial_cluster"].as_str().unwrap();
    assert_eq!(joined.matches("=https://").count(), 4, "{joined}");
    assert!(
        joined.contains("h4.test=https://172.31.97.14:2380"),
        "{joined}"
    );

    h4.sc_ok(&["regenerate"]);
    let config = rerooted_config(&h4);
    assert!(
        config.contains("initial-cluster-state: \"existing\""),
        "{config}"
    );
    let path = logs.join("h4.conf.yml");
    fs::write(&path, config).unwrap();
    let mut cmd = ns[3].exec(&[ETCD, "--config-file"]);
    cmd.arg(&path);
    procs.spawn("h4 etcd", cmd, logs.join("h4.log"));

    let me = Identity::of_host(&h4);
    let started = wait_for(procs, TIMEOUT, || {
        let (ok, members) = etcdctl(
            &ns[3],
            HOST_IPS[3],
            &me.cacert,
            Some(&me),
            &["member", "list"],
        );
        ok && members.matches(", started, h").count() == 4
    });
    assert!(
        started,
        "h4 did not join within {TIMEOUT:?}:\n{}",
        procs.logs()
    );
    let (ok, out) = etcdctl(
        &ns[3],
        HOST_IPS[3],
        &me.cacert,
        Some(&me),
        &["get", "--print-value-only", "/srvctl/trust/probe"],
    );
    assert!(
        ok && out.trim() == "one",
        "h4 does not read the cluster's data: {out}"
    );
    // A second accept finds its member in place and adds nothing.
    let answer = accept();
    assert_ne!(answer["etcd"]["enrolment"], "added", "{answer}");
}
