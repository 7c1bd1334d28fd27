//! `sc update-install`: the host set-up of srvctl, idempotent and rerunnable at any time.
//!
//! It looks at the host once ([`observe`]: a [`HostView`]), makes a plan from that view alone
//! ([`plan`], pure: one [`Step`] per concern, each saying what it checked and, when the host
//! is not as srvctl needs it, the [`Action`] that makes it so), and then either prints the
//! needed steps (`--dry-run`) or runs them ([`apply`]) and reports each. A host that is set up
//! already plans no action: a second run changes nothing.
//!
//! The steps, in the order they run:
//!
//! | step | checks | does |
//! |---|---|---|
//! | packages | which of srvctl's packages are installed (`dpkg-query` / `rpm -q`) | installs the missing ones only (`apt-get install --no-upgrade` / `dnf install`), never an upgrade of the rest |
//! | hostname | whether the host has a static name | `hostnamectl set-hostname NAME` (`--hostname NAME`, only while it has none) |
//! | limits | the kernel limits many containers hit ([`crate::containers::limits`]) | raises those below srvctl's floors |
//! | firewall | whether the ports srvctl serves are open | firewalld: `firewall-cmd --permanent --add-port`, reload; else srvctl's own nftables table ([`firewall`]) |
//! | units | `systemctl is-enabled` of the units srvctl needs | `systemctl enable --now` of the others |
//! | selinux | (Fedora) whether SELinux enforces | nothing: no step touches it, and a run fails if it stopped enforcing |

mod apply;
pub mod firewall;
mod observe;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use apply::{Outcome, apply};
pub use firewall::{FirewallView, Port};
pub use observe::observe;

use crate::containers::limits::Limit;
use crate::model::web::Domain;
use crate::ops::versions::PackageManager;
use crate::system::CommandLine;

/// What `systemctl is-enabled` answers for a unit that starts without srvctl enabling it.
const ENABLED: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "static",
    "indirect",
    "generated",
    "alias",
];

/// The part this host plays, from clusters.json.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Role {
    /// A host of a cluster of more than one host: an etcd member and mesh peers.
    pub cluster: bool,
    /// A DNS server of the cluster (`"dns": "master"` or `"slave"`): named serves the zones.
    pub dns_server: bool,
}

/// What update-install sees of the host before it acts: the plan's only input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// The distribution's package manager.
    pub manager: PackageManager,
    /// The packages installed, of those srvctl wants.
    pub installed: BTreeSet<String>,
    /// The host's static host name (`None`: it has none yet).
    pub hostname: Option<String>,
    /// The host limits against their floors.
    pub limits: Vec<Limit>,
    /// What `systemctl is-enabled` said of each unit srvctl wants, and of the distribution's units
    /// srvctl's replace ([`replaced`]).
    pub units: BTreeMap<String, String>,
    /// The firewall.
    pub firewall: FirewallView,
    /// The TCP ports the host's own sshd listens on (the operator's way in).
    pub ssh_ports: Vec<u16>,
    /// What this host is in its cluster.
    pub role: Role,
    /// Whether SELinux enforces (`None`: no SELinux).
    pub selinux_enforcing: Option<bool>,
}

/// What the operator asked for besides the set-up itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `--hostname NAME`: the host's name, set when it has none yet.
    pub hostname: Option<Domain>,
}

/// What one step does when it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Install these packages (none of them is installed).
    Install(PackageManager, Vec<&'static str>),
    /// Give the host this static name.
    SetHostname(String),
    /// Raise the limits below their floors.
    RaiseLimits(Vec<Limit>),
    /// Open these ports in firewalld's permanent configuration, then reload it.
    OpenPorts(Vec<Port>),
    /// Write srvctl's nftables table and (re)load it.
    WriteTable(String),
    /// `systemctl enable --now` these units.
    Enable(Vec<String>),
    /// `systemctl disable --now` these units (the distribution's, which srvctl's replace).
    Disable(Vec<String>),
}

impl Action {
    /// What the action does, in one line.
    pub fn describe(&self) -> String {
        match self {
            Self::Install(manager, packages) => install_line(*manager, packages).to_string(),
            Self::SetHostname(name) => format!("hostnamectl set-hostname {name}"),
            Self::RaiseLimits(limits) => {
                let each: Vec<String> = limits
                    .iter()
                    .map(|l| match l.current {
                        Some(c) => format!("{} {c} → {}", l.key, l.floor),
                        None => format!("{} → {}", l.key, l.floor),
                    })
                    .collect();
                format!("raise {}", each.join(", "))
            }
            Self::OpenPorts(ports) => {
                let each: Vec<String> = ports.iter().map(Port::to_string).collect();
                format!(
                    "firewall-cmd --permanent --add-port {}; firewall-cmd --reload",
                    each.join(" ")
                )
            }
            Self::WriteTable(_) => format!(
                "write {} and restart {}",
                firewall::TABLE_FILE,
                firewall::UNIT
            ),
            Self::Enable(units) => format!("systemctl enable --now {}", units.join(" ")),
            Self::Disable(units) => format!("systemctl disable --now {}", units.join(" ")),
        }
    }
}

/// The command that installs `packages` and upgrades nothing else: `apt-get install
/// --no-upgrade` (non-interactive) or `dnf install`.
pub fn install_line(manager: PackageManager, packages: &[&str]) -> CommandLine {
    match manager {
        PackageManager::Dpkg => CommandLine::new(
            "apt-get",
            ["install", "-y", "--no-upgrade", "--"]
                .into_iter()
                .chain(packages.iter().copied()),
        )
        .with_env([("DEBIAN_FRONTEND".to_owned(), "noninteractive".into())]),
        PackageManager::Rpm => CommandLine::new(
            "dnf",
            ["install", "-y", "--"]
                .into_iter()
                .chain(packages.iter().copied()),
        ),
    }
}

/// One step of the plan: what it checked, what it found, and what it does when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step's name: packages, hostname, limits, firewall, replaced, units or selinux.
    pub name: &'static str,
    /// What the check found.
    pub found: String,
    /// What the step does; `None`: nothing to change.
    pub action: Option<Action>,
}

/// The packages srvctl needs on a host of `role`, in the spelling of `manager`'s
/// distribution: the runtime (systemd, nspawn, D-Bus and userdb accounts), the front
/// (haproxy), the mesh (openvpn), the masquerade (nftables), the SSH gateway (openssh-server),
/// certificates, image building and btrfs clones, mail (postfix, OpenDKIM, and openssl for the
/// sites' DKIM keys; the same names on Debian and Fedora); etcd on a cluster host, BIND on the DNS
/// master.
pub fn packages(manager: PackageManager, role: Role) -> Vec<&'static str> {
    let (base, etcd, bind): (&[&'static str], _, _) = match manager {
        PackageManager::Dpkg => (
            &[
                "systemd",
                "systemd-container",
                "dbus",
                "libnss-systemd",
                "haproxy",
                "openvpn",
                "nftables",
                "openssh-server",
                "ca-certificates",
                "debootstrap",
                "btrfs-progs",
                "postfix",
                "opendkim",
                "openssl",
            ],
            "etcd-server",
            "bind9",
        ),
        PackageManager::Rpm => (
            &[
                "systemd",
                "systemd-container",
                "dbus",
                "haproxy",
                "openvpn",
                "nftables",
                "openssh-server",
                "ca-certificates",
                "btrfs-progs",
                "postfix",
                "opendkim",
                "openssl",
            ],
            "etcd",
            "bind",
        ),
    };
    let mut all = base.to_vec();
    if role.cluster {
        all.push(etcd);
    }
    if role.dns_server {
        all.push(bind);
    }
    all
}

/// The units srvctl needs enabled on a host of `role` whose firewall is `firewall`: the
/// privileged service's socket, the front, systemd-networkd (the containers' bridges), the
/// SSH gateway, srvctl's postfix and OpenDKIM, srvctl's firewall table when there is no firewalld,
/// named on a DNS master or slave.
/// (machines.target and the certificate timer are linked by srvctl's generator.)
pub fn units(role: Role, firewall: &FirewallView) -> Vec<&'static str> {
    let mut all = vec![
        "srvctl.socket",
        crate::front::haproxy::UNIT,
        "systemd-networkd.service",
        "srvctl-gateway-userdb.socket",
        "srvctl-gateway.service",
        crate::mail::opendkim::UNIT,
        crate::mail::postfix::UNIT,
    ];
    if matches!(firewall, FirewallView::Nftables { .. }) {
        all.push(firewall::UNIT);
    }
    if role.dns_server {
        all.push(crate::dns::UNIT);
    }
    all
}

/// The plan for the host as `view` sees it: every step, in the order they run.
pub fn plan(view: &HostView, request: &Request) -> Vec<Step> {
    vec![
        packages_step(view),
        hostname_step(view, request),
        limits_step(view),
        firewall::step(view),
        replaced_step(view),
        units_step(view),
        selinux_step(view),
    ]
}

fn packages_step(view: &HostView) -> Step {
    let wanted = packages(view.manager, view.role);
    let missing: Vec<&'static str> = wanted
        .iter()
        .copied()
        .filter(|p| !view.installed.contains(*p))
        .collect();
    let found = match missing.len() {
        0 => format!("all {} installed", wanted.len()),
        _ => format!("not installed: {}", missing.join(", ")),
    };
    Step {
        name: "packages",
        found,
        action: (!missing.is_empty()).then_some(Action::Install(view.manager, missing)),
    }
}

fn hostname_step(view: &HostView, request: &Request) -> Step {
    let (found, action) = match (&view.hostname, &request.hostname) {
        (None, Some(name)) => (
            "no host name set".to_owned(),
            Some(Action::SetHostname(name.to_string())),
        ),
        (None, None) => (
            "no host name set (--hostname NAME sets it)".to_owned(),
            None,
        ),
        (Some(current), Some(name)) if current != name.as_str() => (
            format!("named {current} already: left alone (hostnamectl set-hostname changes it)"),
            None,
        ),
        (Some(current), _) => (format!("named {current}"), None),
    };
    Step {
        name: "hostname",
        found,
        action,
    }
}

fn limits_step(view: &HostView) -> Step {
    let low: Vec<Limit> = view
        .limits
        .iter()
        .filter(|l| l.current.is_some_and(|c| c < l.floor))
        .cloned()
        .collect();
    let found = match low.len() {
        0 => "every limit at or above srvctl's floor".to_owned(),
        n => format!("{n} below srvctl's floors"),
    };
    Step {
        name: "limits",
        found,
        action: (!low.is_empty()).then_some(Action::RaiseLimits(low)),
    }
}

fn units_step(view: &HostView) -> Step {
    let disabled: Vec<String> = units(view.role, &view.firewall)
        .into_iter()
        .filter(|u| {
            !view
                .units
                .get(*u)
                .is_some_and(|state| ENABLED.contains(&state.as_str()))
        })
        .map(str::to_owned)
        .collect();
    let found = match disabled.len() {
        0 => "all enabled".to_owned(),
        _ => format!("not enabled: {}", disabled.join(", ")),
    };
    Step {
        name: "units",
        found,
        action: (!disabled.is_empty()).then_some(Action::Enable(disabled)),
    }
}

/// The distribution's units that srvctl's own replace on a host of `role`, kept disabled:
/// postfix and OpenDKIM run srvctl's configurations under `srvctl-postfix.service` and
/// `srvctl-opendkim.service`, which conflict with them (docs/mail.md; Debian's
/// `postfix@-.service` is made by postfix's generator and pulled in by `postfix.service`
/// alone, so it is not enabled of its own); on a cluster host,
/// Debian's etcd-server enables `etcd.service`, a single-member etcd of its own on localhost
/// beside the cluster's member that srvctl runs (`srvctl-etcd.service`).
pub fn replaced(role: Role) -> Vec<&'static str> {
    let mut all = vec!["postfix.service", "opendkim.service"];
    if role.cluster {
        all.push("etcd.service");
    }
    all
}

/// What `systemctl is-enabled` answers for a unit that `systemctl disable` turns off (not a
/// static or indirect one, which it leaves as it is).
const DISABLEABLE: &[&str] = &["enabled", "enabled-runtime"];

fn replaced_step(view: &HostView) -> Step {
    let enabled: Vec<String> = replaced(view.role)
        .into_iter()
        .filter(|u| {
            view.units
                .get(*u)
                .is_some_and(|state| DISABLEABLE.contains(&state.as_str()))
        })
        .map(str::to_owned)
        .collect();
    let found = match enabled.len() {
        0 => "none enabled".to_owned(),
        _ => format!("enabled: {}", enabled.join(", ")),
    };
    Step {
        name: "replaced",
        found,
        action: (!enabled.is_empty()).then_some(Action::Disable(enabled)),
    }
}

fn selinux_step(view: &HostView) -> Step {
    let found = match view.selinux_enforcing {
        None => "not on this host",
        Some(true) => "enforcing (left so)",
        Some(false) => "not enforcing (left so)",
    };
    Step {
        name: "selinux",
        found: found.to_owned(),
        action: None,
    }
}

/// What `sc update-install` reports of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub step: &'static str,
    /// What its check found.
    pub found: String,
    /// Whether it had something to change.
    pub needed: bool,
    /// What it does (or would do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// How it went, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// What `sc update-install` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    /// Whether it only said what it would do.
    pub dry_run: bool,
    /// Whether any step had something to change.
    pub changes: bool,
    /// Whether every step that ran succeeded.
    pub ok: bool,
    /// Every step.
    pub steps: Vec<StepReport>,
}

impl InstallReport {
    /// The report of `steps` that were planned and, unless `outcomes` is `None`, run.
    pub fn new(steps: &[Step], outcomes: Option<&[Option<Outcome>]>) -> Self {
        let steps: Vec<StepReport> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepReport {
                step: s.name,
                found: s.found.clone(),
                needed: s.action.is_some(),
                action: s.action.as_ref().map(Action::describe),
                outcome: outcomes.and_then(|o| o.get(i).cloned().flatten()),
            })
            .collect();
        Self {
            dry_run: outcomes.is_none(),
            changes: steps.iter().any(|s| s.needed),
            ok: steps
                .iter()
                .all(|s| !matches!(s.outcome, Some(Outcome::Failed(_)))),
            steps,
        }
    }
}
