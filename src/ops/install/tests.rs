use std::collections::BTreeSet;

use super::firewall::Protocol;
use super::*;
use crate::config::cluster::Clusters;
use crate::containers::limits::{self, Current};
use crate::system::paths::Paths;
use crate::system::{Recording, System};

/// A Debian host as it is before srvctl's set-up: nothing of srvctl's installed or enabled,
/// no name, the kernel's default limits, no firewall.
fn fresh_debian() -> HostView {
    let current: Current = [
        ("fs.inotify.max_user_instances", 128),
        ("kernel.pid_max", 4_194_304),
    ]
    .into_iter()
    .collect();
    HostView {
        manager: PackageManager::Dpkg,
        installed: ["systemd", "dbus"].map(str::to_owned).into(),
        hostname: None,
        limits: limits::limits(0, &current),
        units: [("haproxy.service".to_owned(), "not-found".to_owned())].into(),
        firewall: FirewallView::Nftables { file: None },
        ssh_ports: vec![22],
        role: Role::default(),
        selinux_enforcing: None,
    }
}

/// The same host once set up: what a second run sees.
fn set_up(mut view: HostView) -> HostView {
    view.installed = packages(view.manager, view.role)
        .into_iter()
        .map(str::to_owned)
        .collect();
    view.hostname = Some("h1.example.net".to_owned());
    for limit in &mut view.limits {
        limit.current = limit.current.map(|c| c.max(limit.floor));
    }
    view.units = units(view.role, &view.firewall)
        .into_iter()
        .map(|u| (u.to_owned(), "enabled".to_owned()))
        .collect();
    let table = firewall::table(&firewall::ports(&view));
    if let FirewallView::Nftables { file } = &mut view.firewall {
        *file = Some(table);
    }
    view
}

fn named(name: &str) -> Request {
    Request {
        hostname: Some(Domain::new(name).unwrap()),
    }
}

fn action<'s>(steps: &'s [Step], name: &str) -> Option<&'s Action> {
    steps
        .iter()
        .find(|s| s.name == name)
        .unwrap()
        .action
        .as_ref()
}

#[test]
fn a_fresh_host_needs_each_step_and_only_what_is_missing() {
    let view = fresh_debian();
    let steps = plan(&view, &named("h1.example.net"));
    let names: Vec<_> = steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "packages", "hostname", "limits", "firewall", "replaced", "units", "selinux"
        ]
    );
    let Some(Action::Install(PackageManager::Dpkg, missing)) = action(&steps, "packages") else {
        panic!("{steps:?}");
    };
    // What is installed is never installed again; the cluster's and DNS master's are not
    // wanted on a host alone.
    assert!(!missing.contains(&"systemd") && !missing.contains(&"dbus"));
    assert!(missing.contains(&"haproxy") && missing.contains(&"libnss-systemd"));
    assert!(!missing.contains(&"etcd-server") && !missing.contains(&"bind9"));
    assert_eq!(
        action(&steps, "packages").unwrap().describe(),
        format!("apt-get install -y --no-upgrade -- {}", missing.join(" "))
    );
    assert_eq!(
        action(&steps, "hostname"),
        Some(&Action::SetHostname("h1.example.net".to_owned()))
    );
    let Some(Action::RaiseLimits(low)) = action(&steps, "limits") else {
        panic!("{steps:?}");
    };
    // Only the key below its floor; pid_max is at it, and keys the host lacks are skipped.
    assert_eq!(low.len(), 1);
    assert_eq!(low[0].key, "fs.inotify.max_user_instances");
    assert!(matches!(
        action(&steps, "firewall"),
        Some(Action::WriteTable(_))
    ));
    let Some(Action::Enable(disabled)) = action(&steps, "units") else {
        panic!("{steps:?}");
    };
    assert!(disabled.contains(&"srvctl.socket".to_owned()));
    assert!(disabled.contains(&"haproxy.service".to_owned()));
    assert!(disabled.contains(&firewall::UNIT.to_owned()));
    assert!(disabled.contains(&crate::mail::postfix::UNIT.to_owned()));
    assert_eq!(action(&steps, "selinux"), None);
    assert_eq!(action(&steps, "replaced"), None);
    let report = InstallReport::new(&steps, None);
    assert!(report.dry_run && report.changes && report.ok);
}

#[test]
fn the_distribution_s_postfix_and_opendkim_are_disabled_for_srvctl_s() {
    let mut view = fresh_debian();
    view.units
        .insert("postfix.service".into(), "enabled".into());
    view.units
        .insert("opendkim.service".into(), "enabled".into());
    let steps = plan(&view, &Request::default());
    assert_eq!(
        action(&steps, "replaced"),
        Some(&Action::Disable(vec![
            "postfix.service".into(),
            "opendkim.service".into()
        ]))
    );
    // Static: `systemctl disable` would leave it so, and the step would never be done.
    let mut static_one = view.clone();
    static_one
        .units
        .insert("opendkim.service".into(), "static".into());
    assert_eq!(
        action(&plan(&static_one, &Request::default()), "replaced"),
        Some(&Action::Disable(vec!["postfix.service".into()]))
    );
    let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
    let at = |n: &str| names.iter().position(|s| *s == n).unwrap();
    assert!(
        at("replaced") < at("units"),
        "theirs stop before ours start"
    );
}

#[test]
fn a_cluster_host_stops_the_distribution_s_own_etcd() {
    let mut view = set_up(HostView {
        role: Role {
            cluster: true,
            dns_server: false,
        },
        ..fresh_debian()
    });
    view.units.insert("etcd.service".into(), "enabled".into());
    let steps = plan(&view, &Request::default());
    let disable = action(&steps, "replaced").unwrap();
    assert_eq!(disable, &Action::Disable(vec!["etcd.service".into()]));
    assert_eq!(disable.describe(), "systemctl disable --now etcd.service");
    // On a host alone, an etcd of the operator's is none of srvctl's business.
    view.role = Role::default();
    assert_eq!(action(&plan(&view, &Request::default()), "replaced"), None);
}

#[test]
fn a_host_set_up_already_plans_nothing() {
    for role in [
        Role::default(),
        Role {
            cluster: true,
            dns_server: true,
        },
    ] {
        let view = set_up(HostView {
            role,
            ..fresh_debian()
        });
        let steps = plan(&view, &named("h1.example.net"));
        assert!(steps.iter().all(|s| s.action.is_none()), "{steps:?}");
        let report = InstallReport::new(&steps, Some(&apply_nothing(&steps)));
        assert!(!report.changes && report.ok, "{report:?}");
    }
}

fn apply_nothing(steps: &[Step]) -> Vec<Option<Outcome>> {
    steps.iter().map(|_| None).collect()
}

#[test]
fn a_named_host_keeps_its_name() {
    let view = set_up(fresh_debian());
    let step = &plan(&view, &named("other.example.net"))[1];
    assert_eq!(step.action, None);
    assert!(step.found.contains("left alone"), "{}", step.found);
    let unnamed = fresh_debian();
    let step = &plan(&unnamed, &Request::default())[1];
    assert_eq!(step.action, None);
    assert!(step.found.contains("--hostname"), "{}", step.found);
    assert!(Domain::new("bad name;rm -rf").is_err());
}

#[test]
fn fedora_names_its_packages_its_own_way() {
    let role = Role {
        cluster: true,
        dns_server: true,
    };
    let fedora = packages(PackageManager::Rpm, role);
    assert!(fedora.contains(&"etcd") && fedora.contains(&"bind"));
    assert!(!fedora.contains(&"libnss-systemd") && !fedora.contains(&"etcd-server"));
    let debian = packages(PackageManager::Dpkg, role);
    assert!(debian.contains(&"etcd-server") && debian.contains(&"bind9"));
    assert_eq!(
        install_line(PackageManager::Rpm, &["haproxy"]).to_string(),
        "dnf install -y -- haproxy"
    );
    let apt = install_line(PackageManager::Dpkg, &["haproxy"]);
    assert_eq!(apt.env_var("DEBIAN_FRONTEND").unwrap(), "noninteractive");
}

#[test]
fn the_ports_are_those_srvctl_serves_by_role() {
    let mut view = fresh_debian();
    view.ssh_ports = vec![22, 2200];
    let numbers = |v: &HostView| -> Vec<String> {
        firewall::ports(v)
            .iter()
            .map(|(p, _)| p.to_string())
            .collect()
    };
    assert_eq!(
        numbers(&view),
        [
            "22/tcp", "2200/tcp", "80/tcp", "443/tcp", "2222/tcp", "25/tcp"
        ]
    );
    view.role = Role {
        cluster: true,
        dns_server: true,
    };
    assert_eq!(
        numbers(&view),
        [
            "22/tcp", "2200/tcp", "80/tcp", "443/tcp", "2222/tcp", "25/tcp", "1101/udp",
            "2379/tcp", "2380/tcp", "53/tcp", "53/udp"
        ]
    );
    // The numbers are those of the configurations srvctl ships.
    let gateway = include_str!("../../../conf/gateway/sshd_config");
    assert!(
        gateway
            .lines()
            .any(|l| l == format!("Port {}", crate::gateway::PORT))
    );
    let front = include_str!("../../../templates/haproxy.cfg");
    for port in [
        crate::front::haproxy::FRONT_HTTP_PORT,
        crate::front::haproxy::FRONT_HTTPS_PORT,
    ] {
        assert!(
            front.lines().any(|l| {
                let l = l.trim();
                l == format!("bind :{port}") || l.starts_with(&format!("bind :{port} "))
            }),
            "haproxy.cfg binds no :{port}"
        );
    }
}

#[test]
fn the_table_accepts_the_ports_and_drops_the_rest() {
    let mut view = fresh_debian();
    view.role.cluster = true;
    let text = firewall::table(&firewall::ports(&view));
    assert!(text.contains("policy drop;"), "{text}");
    for line in [
        "ct state established,related accept",
        "iif \"lo\" accept",
        "tcp dport 22 accept comment \"the host's SSH\"",
        "tcp dport 443 accept comment \"haproxy, HTTPS\"",
        "tcp dport 2222 accept comment \"the SSH gateway\"",
        "udp dport 1101 accept comment \"the host mesh\"",
        "tcp dport 2380 accept comment \"etcd, peers\"",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "{line}: {text}");
    }
    // It replaces its own table, never srvctl-nat's (table inet srvctl).
    assert!(text.contains("delete table inet srvctl-firewall\n"));
    assert!(!text.contains("table inet srvctl\n"));
    // A changed role makes a different table: the step is needed again.
    let mut changed = set_up(fresh_debian());
    assert_eq!(firewall::step(&changed).action, None);
    changed.role.dns_server = true;
    let step = firewall::step(&changed);
    assert!(step.found.contains("differs"), "{}", step.found);
}

#[test]
fn firewalld_opens_only_the_closed_ports() {
    let open = firewall::firewalld_open("2222/tcp 8080/tcp 25/tcp bogus", "ssh dhcpv6-client http");
    assert_eq!(
        open.iter().map(Port::to_string).collect::<Vec<_>>(),
        ["22/tcp", "25/tcp", "80/tcp", "2222/tcp", "8080/tcp"]
    );
    let view = HostView {
        firewall: FirewallView::Firewalld { open },
        ..fresh_debian()
    };
    let step = firewall::step(&view);
    let Some(Action::OpenPorts(closed)) = &step.action else {
        panic!("{step:?}");
    };
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].number, closed[0].protocol), (443, Protocol::Tcp));
    // With firewalld, srvctl's own table and its unit are not wanted.
    assert!(!units(view.role, &view.firewall).contains(&firewall::UNIT));

    let system = Recording::default();
    let outcomes = apply(&system, &Paths::system(), &view, &[step]);
    assert_eq!(outcomes, [Some(Outcome::Done)]);
    let ran = system.command_lines();
    assert_eq!(
        ran,
        [
            "firewall-cmd --permanent --add-port=443/tcp",
            "firewall-cmd --reload"
        ]
    );
}

/// A Debian host in memory whose package manager says every package is installed and whose
/// systemd says every unit is enabled.
fn recorded_host(paths: &Paths) -> Recording {
    let mut system = Recording {
        hostname: "h1.example.net".to_owned(),
        ..Default::default()
    };
    system.answers = [
        (
            "dpkg-query".to_owned(),
            b"install ok installed\t1.0".to_vec(),
        ),
        ("systemctl".to_owned(), b"enabled\n".to_vec()),
        ("sshd".to_owned(), b"port 22\nport 2200\n".to_vec()),
    ]
    .into();
    let file = |path: &str, text: &str| {
        system
            .write(&paths.host(path), text.as_bytes(), 0o644, false)
            .unwrap();
    };
    file("/etc/os-release", "ID=debian\n");
    file("/etc/hostname", "h1.example.net\n");
    file("/proc/sys/fs/inotify/max_user_instances", "128\n");
    system
}

#[test]
fn apply_runs_the_needed_steps_and_a_second_look_finds_nothing_to_do() {
    let paths = Paths::system();
    let system = recorded_host(&paths);
    let clusters = Clusters::default();
    // systemctl says every unit is enabled: srvctl's, and the distribution's postfix and
    // opendkim, which are to be disabled (the step is tested on its own below).
    let without_replaced = |mut view: HostView| {
        for unit in replaced(view.role) {
            assert_eq!(view.units.remove(unit).as_deref(), Some("enabled"));
        }
        view
    };
    let view =
        without_replaced(observe(&system, &paths, &clusters, "h1.example.net", None).unwrap());
    assert_eq!(view.ssh_ports, [22, 2200]);
    assert_eq!(view.hostname.as_deref(), Some("h1.example.net"));
    assert!(matches!(
        view.firewall,
        FirewallView::Nftables { file: None }
    ));
    let steps = plan(&view, &Request::default());
    let needed: BTreeSet<_> = steps
        .iter()
        .filter(|s| s.action.is_some())
        .map(|s| s.name)
        .collect();
    assert_eq!(needed, ["limits", "firewall"].into());
    system.commands.borrow_mut().clear();
    let outcomes = apply(&system, &paths, &view, &steps);
    assert!(
        outcomes.iter().flatten().all(|o| *o == Outcome::Done),
        "{outcomes:?}"
    );
    let table = system
        .read(&paths.host(firewall::TABLE_FILE))
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8(table)
            .unwrap()
            .contains("tcp dport 2200 accept")
    );
    assert_eq!(
        *system.requests.borrow(),
        [crate::system::Request::Restart(firewall::UNIT.to_owned())]
    );
    let raised = system
        .read(&paths.host("/proc/sys/fs/inotify/max_user_instances"))
        .unwrap()
        .unwrap();
    assert_eq!(raised, b"16384\n");
    // No program ran to change the host: what was installed and enabled is left alone.
    assert!(system.commands.borrow().is_empty(), "{:?}", system.commands);

    let again =
        without_replaced(observe(&system, &paths, &clusters, "h1.example.net", None).unwrap());
    let steps = plan(&again, &Request::default());
    assert!(steps.iter().all(|s| s.action.is_none()), "{steps:?}");
}

#[test]
fn missing_packages_and_units_are_installed_and_enabled_and_failures_reported() {
    let paths = Paths::system();
    let mut system = recorded_host(&paths);
    let view = HostView {
        installed: BTreeSet::new(),
        ..fresh_debian()
    };
    let steps = plan(&view, &named("h1.example.net"));
    system.failing_programs = [("hostnamectl".to_owned(), "no D-Bus".to_owned())].into();
    let outcomes = apply(&system, &paths, &view, &steps);
    let ran = system.command_lines();
    assert!(
        ran[0].starts_with("apt-get install -y --no-upgrade -- systemd systemd-container"),
        "{ran:?}"
    );
    assert_eq!(ran[1], "hostnamectl set-hostname -- h1.example.net");
    assert!(
        ran[2].starts_with("systemctl enable --now -- srvctl.socket haproxy.service"),
        "{ran:?}"
    );
    assert!(matches!(&outcomes[1], Some(Outcome::Failed(e)) if e.contains("no D-Bus")));
    let report = InstallReport::new(&steps, Some(&outcomes));
    assert!(!report.ok && report.changes && !report.dry_run);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["steps"][0]["outcome"], "done");
    assert!(
        json["steps"][1]["outcome"]["failed"]
            .as_str()
            .unwrap()
            .contains("no D-Bus")
    );
}

#[test]
fn a_run_fails_when_selinux_stopped_enforcing() {
    let paths = Paths::system();
    let system = recorded_host(&paths);
    system
        .write(&paths.host("/sys/fs/selinux/enforce"), b"0", 0o644, false)
        .unwrap();
    let view = HostView {
        manager: PackageManager::Rpm,
        selinux_enforcing: Some(true),
        ..set_up(fresh_debian())
    };
    let steps = plan(&view, &Request::default());
    let outcomes = apply(&system, &paths, &view, &steps);
    let report = InstallReport::new(&steps, Some(&outcomes));
    assert!(!report.ok, "{report:?}");
    let selinux = report.steps.iter().find(|s| s.step == "selinux").unwrap();
    assert!(matches!(&selinux.outcome, Some(Outcome::Failed(e)) if e.contains("setenforce")));
    // Still enforcing: the run is fine, and nothing touched SELinux.
    system
        .write(&paths.host("/sys/fs/selinux/enforce"), b"1", 0o644, false)
        .unwrap();
    let outcomes = apply(&system, &paths, &view, &steps);
    assert!(outcomes.iter().all(Option::is_none));
    assert!(system.commands.borrow().is_empty());
}

#[test]
fn the_role_is_that_of_the_name_the_host_is_about_to_get() {
    let paths = Paths::system();
    let system = recorded_host(&paths);
    system.remove(&paths.host("/etc/hostname")).unwrap();
    let clusters = Clusters::parse(
        "clusters.json".as_ref(),
        r#"{"c": {"h1.example.net": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca",
                                     "dns": "master"},
                  "h2.example.net": {"host_ip": "192.0.2.2", "hostnet": 2}}}"#,
    )
    .unwrap();
    let view = observe(
        &system,
        &paths,
        &clusters,
        "localhost",
        Some("h1.example.net"),
    )
    .unwrap();
    assert_eq!(view.hostname, None);
    assert!(view.role.cluster && view.role.dns_server);
    let view = observe(&system, &paths, &clusters, "localhost", None).unwrap();
    assert_eq!(view.role, Role::default());
}
