//! What `sc update-install` looks at before it plans: the host, asked through [`System`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{FirewallView, HostView, Role, firewall};
use crate::config::cluster::Clusters;
use crate::containers::limits;
use crate::ops::versions::PackageManager;
use crate::system::paths::Paths;
use crate::system::{CommandLine, Program, System};

/// The sshd port when `sshd -T` cannot tell.
const DEFAULT_SSH_PORT: u16 = 22;

/// Look at the host: its distribution's packages, host name, limits, units, firewall, sshd,
/// SELinux and its part in `clusters` (as host `hostname`, or as `requested` while the host
/// has no name: the name it is about to get). `None` when the distribution is not one srvctl
/// knows (Debian, Fedora and their kin).
pub fn observe(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    hostname: &str,
    requested: Option<&str>,
) -> Option<HostView> {
    let manager = PackageManager::of_host(system, paths)?;
    let current = static_hostname(system, paths);
    let hostname = match (&current, requested) {
        (None, Some(name)) => name,
        _ => hostname,
    };
    let me = clusters.host(hostname);
    let role = Role {
        cluster: me.is_some_and(|h| clusters.is_replicated(h)),
        dns_server: me.is_some_and(|h| h.dns.is_some()),
    };
    let installed = super::packages(manager, role)
        .into_iter()
        .filter(|p| manager.installed_version(system, p).is_some())
        .map(str::to_owned)
        .collect();
    let containers = crate::store::read(system, paths)
        .map(|state| limits::containers_of(&state, hostname))
        .unwrap_or(0);
    let firewall = firewall_view(system, paths);
    let units: BTreeMap<String, String> = super::units(role, &firewall)
        .into_iter()
        .chain(super::replaced(role))
        .map(|u| (u.to_owned(), is_enabled(system, u)))
        .collect();
    Some(HostView {
        manager,
        installed,
        hostname: current,
        limits: limits::limits(containers, &limits::read_current(system, paths)),
        units,
        firewall,
        ssh_ports: ssh_ports(system),
        role,
        selinux_enforcing: selinux_enforcing(system, paths),
    })
}

/// How long a query of the host may take.
const QUERY_TIME: Duration = Duration::from_secs(30);

/// The exit code and standard output of a query (its standard error is not shown: a unit or
/// program that is not there is an answer too); `None` when it could not run.
fn query(system: &dyn System, program: &str, args: &[&str]) -> Option<(Option<i32>, String)> {
    let finished = system
        .run_program(&Program {
            command: &CommandLine::new(program, args),
            input: b"",
            timeout: QUERY_TIME,
        })
        .ok()?;
    Some((
        finished.code,
        String::from_utf8_lossy(&finished.stdout).into_owned(),
    ))
}

/// The first line of a query's output, trimmed (empty when it printed nothing or could not
/// run).
fn answer(system: &dyn System, program: &str, args: &[&str]) -> String {
    query(system, program, args)
        .and_then(|(_, out)| out.lines().next().map(|l| l.trim().to_owned()))
        .unwrap_or_default()
}

/// What `systemctl is-enabled UNIT` says (`not-found` for a unit systemd does not know).
fn is_enabled(system: &dyn System, unit: &str) -> String {
    match answer(system, "systemctl", &["is-enabled", "--", unit]) {
        s if s.is_empty() => "not-found".to_owned(),
        s => s,
    }
}

/// The host's static name, from `/etc/hostname` (`None`: empty, missing, or `localhost`).
fn static_hostname(system: &dyn System, paths: &Paths) -> Option<String> {
    let bytes = system.read(&paths.host("/etc/hostname")).ok()??;
    let name = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?
        .to_owned();
    (name != "localhost").then_some(name)
}

/// firewalld's open ports when it runs, else srvctl's nftables table file as it is.
fn firewall_view(system: &dyn System, paths: &Paths) -> FirewallView {
    if answer(system, "systemctl", &["is-active", "firewalld.service"]) == "active" {
        let list = |what| {
            query(system, "firewall-cmd", &["--permanent", what])
                .map(|(_, out)| out)
                .unwrap_or_default()
        };
        let open = firewall::firewalld_open(&list("--list-ports"), &list("--list-services"));
        return FirewallView::Firewalld { open };
    }
    let file = system
        .read(&paths.host(firewall::TABLE_FILE))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    FirewallView::Nftables { file }
}

/// The ports the host's sshd listens on (`port N` lines of `sshd -T`), else 22.
fn ssh_ports(system: &dyn System) -> Vec<u16> {
    let out = query(system, "sshd", &["-T"])
        .filter(|(code, _)| *code == Some(0))
        .map(|(_, out)| out)
        .unwrap_or_default();
    let ports: BTreeSet<u16> = out
        .lines()
        .filter_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
        .collect();
    match ports.is_empty() {
        true => vec![DEFAULT_SSH_PORT],
        false => ports.into_iter().collect(),
    }
}

/// Whether SELinux enforces (`/sys/fs/selinux/enforce`), `None` without SELinux.
pub(super) fn selinux_enforcing(system: &dyn System, paths: &Paths) -> Option<bool> {
    let bytes = system.read(&paths.host("/sys/fs/selinux/enforce")).ok()??;
    Some(String::from_utf8_lossy(&bytes).trim() == "1")
}
