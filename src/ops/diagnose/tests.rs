//! Each check finds the fault planted in a recording system (and a fixed resolver), with its
//! hint; a healthy host has no problem.

use std::net::IpAddr;

use jiff::SignedDuration;

use super::*;
use crate::front::certs::{CertMeta, CertSource};
use crate::system::systemd::UnitState;
use crate::system::{Clock, Recording};

/// Answers the host's records: name → address, and address → name.
struct Dns(
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, &'static str)>,
);

impl Resolver for Dns {
    fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        Ok(self
            .0
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, ip)| ip.parse().unwrap())
            .collect())
    }

    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        Ok(self
            .1
            .iter()
            .filter(|(a, _)| a.parse::<IpAddr>() == Ok(ip))
            .map(|(_, n)| (*n).to_owned())
            .collect())
    }
}

fn healthy_dns() -> Dns {
    Dns(
        vec![("h1.test", "192.0.2.1")],
        vec![("192.0.2.1", "h1.test")],
    )
}

const DATASTORE: &str = r#"{"schema_version": 1, "containers": {
  "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2", "created": "t", "created_by": "root"},
  "off.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.3", "created": "t", "created_by": "root", "disabled": true}
}}"#;

/// A healthy host h1.test: its container runs, its certificates have 60 days, haproxy
/// accepts its configuration, the clock is synchronised, half the disk is free.
fn healthy() -> (Recording, Paths) {
    let paths = Paths::rooted("/r");
    let mut system = Recording {
        hostname: "h1.test".into(),
        clock: Clock(Clock::START),
        ..Recording::default()
    };
    system.environment = [("PATH".to_owned(), "/usr/sbin".into())].into();
    system.answers = [("timedatectl".to_owned(), b"yes\n".to_vec())].into();
    system.units = vec![unit(
        "systemd-nspawn@web.example.com.service",
        "active",
        "running",
    )];
    let write = |path: std::path::PathBuf, text: &str| {
        system.write(&path, text.as_bytes(), 0o644, false).unwrap();
    };
    write(
        paths.clusters(),
        r#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1}}}"#,
    );
    write(paths.datastore(), DATASTORE);
    write(paths.host("/run/srvctl/haproxy/haproxy.cfg"), "global\n");
    write(std::path::PathBuf::from("/usr/sbin/haproxy"), "");
    for name in ["web.example.com", "off.example.com"] {
        plant_certificate(&system, &paths, name, SignedDuration::from_hours(60 * 24));
        let rootfs = crate::containers::rootfs::machine_dir(&paths, &name.parse().unwrap());
        system.create_dir(&rootfs, 0o755).unwrap();
    }
    (system, paths)
}

fn unit(name: &str, active: &str, sub: &str) -> UnitState {
    UnitState {
        name: name.into(),
        active: active.into(),
        sub: sub.into(),
        since_usec: 0,
    }
}

fn plant_certificate(system: &Recording, paths: &Paths, name: &str, left: SignedDuration) {
    let meta = CertMeta {
        source: CertSource::Internal,
        names: vec![name.into()],
        not_after: (system.now() + left).to_string(),
        issued: system.now().to_string(),
        issuer: None,
    };
    system
        .write(
            &crate::front::certs::meta_path(paths, name),
            &serde_json::to_vec(&meta).unwrap(),
            0o600,
            false,
        )
        .unwrap();
    system
        .write(
            &crate::front::certs::pem_path(paths, name),
            b"-----BEGIN CERTIFICATE-----\nx\n-----END PRIVATE KEY-----\n",
            0o600,
            false,
        )
        .unwrap();
}

fn report(system: &Recording, paths: &Paths, dns: &Dns) -> Report {
    diagnose(&Probe {
        system,
        paths,
        hostname: "h1.test",
        live_systemd: true,
        dns: Some(dns),
    })
}

fn problems(report: &Report) -> Vec<(&'static str, &str, &str)> {
    report
        .findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .map(|f| (f.check, f.message.as_str(), f.hint.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn a_healthy_host_has_no_problem() {
    let (system, paths) = healthy();
    let report = report(&system, &paths, &healthy_dns());
    assert!(report.healthy, "{:#?}", report.findings);
    assert_eq!(problems(&report), []);
    let checks: std::collections::BTreeSet<_> = report.findings.iter().map(|f| f.check).collect();
    for check in [
        "versions",
        "settings",
        "uptime",
        "units",
        "mesh",
        "containers",
        "certificates",
        "proxy",
        "datastore",
        "space",
        "dns",
        "time",
    ] {
        assert!(checks.contains(check), "{check} missing: {checks:?}");
    }
    assert!(
        system.commands.borrow().iter().any(|c| c.to_string()
            == "/usr/sbin/haproxy -c -f /r/run/srvctl/haproxy.diagnose/haproxy.cfg"),
        "{:?}",
        system.commands.borrow()
    );
}

#[test]
fn the_mesh_needs_the_cluster_certificate_and_every_tunnel_active() {
    let (mut system, paths) = healthy();
    system
        .write(
            &paths.clusters(),
            br#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
                          "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2},
                          "h3.test": {"host_ip": "192.0.2.3", "hostnet": 3}}}"#,
            0o644,
            false,
        )
        .unwrap();
    let mesh = |system: &Recording| -> Vec<(Level, String, String)> {
        report(system, &paths, &healthy_dns())
            .findings
            .into_iter()
            .filter(|f| f.check == "mesh")
            .map(|f| (f.level, f.message, f.hint.unwrap_or_default()))
            .collect()
    };
    let found = mesh(&system);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Level::Problem);
    assert!(found[0].2.contains("sc cluster join"), "{found:?}");

    system
        .write(
            &paths.host(crate::cluster::pki::HOST_CERT),
            b"-----BEGIN CERTIFICATE-----\n",
            0o644,
            false,
        )
        .unwrap();
    let tunnels: Vec<String> = crate::mesh::openvpn::instances(
        &crate::config::cluster::Clusters::load(&system, &paths.clusters()).unwrap(),
        "h1.test",
    )
    .iter()
    .map(|t| crate::mesh::openvpn::mesh_unit(t))
    .collect();
    assert!(tunnels.len() >= 2, "{tunnels:?}");
    let (up, down) = tunnels.split_at(1);
    system
        .units
        .extend(up.iter().map(|u| unit(u, "active", "running")));
    system.units.push(unit(&down[0], "failed", "failed"));
    let found = mesh(&system);
    let problems: Vec<_> = found.iter().filter(|f| f.0 == Level::Problem).collect();
    assert_eq!(problems.len(), down.len(), "{found:?}");
    assert!(
        problems[0].1.contains(&format!("{} is failed", down[0])),
        "{found:?}"
    );
    assert!(problems[0].2.contains("journalctl -u"), "{found:?}");

    system.units.retain(|u| !u.name.starts_with("srvctl-mesh@"));
    system
        .units
        .extend(tunnels.iter().map(|u| unit(u, "active", "running")));
    let found = mesh(&system);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, Level::Ok, "{found:?}");
}

#[test]
fn five_planted_faults_are_each_found_with_a_hint() {
    let (mut system, paths) = healthy();
    // A container that should run is stopped; a unit failed.
    system.units = vec![
        unit("systemd-nspawn@web.example.com.service", "inactive", "dead"),
        unit("srvctl-sync.service", "failed", "failed"),
    ];
    // A certificate expires in 5 days.
    plant_certificate(
        &system,
        &paths,
        "web.example.com",
        SignedDuration::from_hours(5 * 24),
    );
    // A hand-edited record breaks a rule and is set aside.
    let doc = DATASTORE.replace(
        r#""off.example.com""#,
        r#""bad name": {"user": "root", "host": "h1.test", "ip": "10.16.0.9", "created": "t", "created_by": "root"}, "off.example.com""#,
    );
    system
        .write(&paths.datastore(), doc.as_bytes(), 0o644, false)
        .unwrap();
    // The host's address has no reverse record.
    let dns = Dns(vec![("h1.test", "192.0.2.1")], vec![]);

    let report = report(&system, &paths, &dns);
    assert!(!report.healthy);
    let found = problems(&report);
    let has = |check: &str, message: &str, hint: &str| {
        assert!(
            found
                .iter()
                .any(|(c, m, h)| *c == check && m.contains(message) && h.contains(hint)),
            "{check}: {message} / {hint} not in {found:#?}"
        );
    };
    has(
        "containers",
        "container web.example.com should run but is inactive (dead)",
        "sc web.example.com start",
    );
    has(
        "units",
        "unit srvctl-sync.service failed",
        "journalctl -u srvctl-sync.service",
    );
    has(
        "certificates",
        "certificate of web.example.com expires in 5 days",
        "sc regenerate",
    );
    has(
        "datastore",
        "record \"bad name\" of containers is set aside",
        "correct or remove it",
    );
    has(
        "dns",
        "192.0.2.1 has no reverse record (PTR)",
        "PTR record 192.0.2.1 → h1.test",
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    // The disabled container is not expected to run.
    assert!(!found.iter().any(|(_, m, _)| m.contains("off.example.com")));
}

#[test]
fn the_other_checks_find_their_faults() {
    let (mut system, paths) = healthy();
    system.answers = [("timedatectl".to_owned(), b"no\n".to_vec())].into();
    system.failing_programs = [(
        "/usr/sbin/haproxy".to_owned(),
        "[ALERT] parsing [haproxy.cfg:1]: unknown keyword".to_owned(),
    )]
    .into();
    system.space = Some((3_000_000_000, 100_000_000_000));
    system
        .remove(&crate::front::certs::meta_path(&paths, "off.example.com"))
        .unwrap();
    let dns = Dns(
        vec![("h1.test", "198.51.100.7")],
        vec![("192.0.2.1", "h1.test")],
    );
    let report = report(&system, &paths, &dns);
    let found = problems(&report);
    let checks: Vec<_> = found.iter().map(|(c, _, _)| *c).collect();
    assert_eq!(
        checks,
        ["certificates", "proxy", "space", "dns", "time"],
        "{found:#?}"
    );
    assert!(found[0].1.contains("off.example.com has no certificate"));
    assert!(found[1].1.contains("unknown keyword"));
    assert!(found[2].1.contains("3.0 GB free of 100.0 GB (3 %)"));
    assert!(
        found[3]
            .1
            .contains("resolves to 198.51.100.7 instead of its host_ip 192.0.2.1")
    );
    assert!(found[4].2.contains("timedatectl set-ntp true"));
}

#[test]
fn a_host_missing_from_clusters_json_is_a_problem() {
    let (system, paths) = healthy();
    system
        .write(
            &paths.clusters(),
            br#"{"test": {"other.test": {"host_ip": "192.0.2.9", "hostnet": 2}}}"#,
            0o644,
            false,
        )
        .unwrap();
    let report = report(&system, &paths, &healthy_dns());
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].1.contains("this host (h1.test) is not in"));
}

#[test]
fn an_unsynchronised_clock_in_a_container_is_the_outer_machines_warning() {
    let (mut system, paths) = healthy();
    system.answers = [("timedatectl".to_owned(), b"no\n".to_vec())].into();
    system
        .write(
            &paths.host("/run/systemd/container"),
            b"systemd-nspawn\n",
            0o444,
            false,
        )
        .unwrap();
    let report = report(&system, &paths, &healthy_dns());
    assert!(report.healthy, "{:#?}", report.findings);
    let time = report.findings.iter().find(|f| f.check == "time").unwrap();
    assert_eq!(time.level, Level::Warning, "{time:#?}");
    assert!(
        time.hint
            .as_deref()
            .unwrap()
            .contains("machine that runs this host")
    );
}

#[test]
fn a_container_without_a_root_filesystem_is_a_warning_not_a_fault() {
    let (mut system, paths) = healthy();
    system.units = vec![unit(
        "systemd-nspawn@web.example.com.service",
        "inactive",
        "dead",
    )];
    let web = crate::containers::rootfs::machine_dir(&paths, &"web.example.com".parse().unwrap());
    system.remove_tree(&web).unwrap();
    let report = report(&system, &paths, &healthy_dns());
    assert!(report.healthy, "{:#?}", report.findings);
    let found = report
        .findings
        .iter()
        .find(|f| f.check == "containers")
        .unwrap();
    assert_eq!(found.level, Level::Warning, "{found:#?}");
    assert!(
        found
            .message
            .contains("web.example.com has no root filesystem yet")
    );
    assert_eq!(
        found.hint.as_deref(),
        Some("sc web.example.com start makes it from the image and starts it")
    );
}
