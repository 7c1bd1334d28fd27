//! The checks of `sc diagnose`, in the order the report lists them ([`ALL`]). Each looks at
//! one thing through the [`Probe`] and says what it found; a fault comes with its hint.

use std::net::IpAddr;

use jiff::SignedDuration;

use super::{Finding, Level, Probe};
use crate::config::cluster::Clusters;
use crate::containers::rootfs;
use crate::containers::units::container_unit;
use crate::front::certs::{self, CertSource};
use crate::model::State;
use crate::system::{CommandLine, FileKind, Program};

/// One check.
pub type Check = fn(&Probe<'_>) -> Vec<Finding>;

/// Every check, in report order.
pub const ALL: &[Check] = &[
    versions,
    configuration,
    uptime,
    units,
    mesh,
    containers,
    certificates,
    proxy,
    set_aside,
    free_space,
    host_dns,
    time_sync,
];

/// A certificate with less than this left is a problem.
pub const CERTIFICATE_MARGIN: SignedDuration = SignedDuration::from_hours(14 * 24);

/// Free space below this share of the file system where containers live is a problem...
pub const SPACE_PROBLEM_PERCENT: u64 = 5;
/// ... and below this one a warning.
pub const SPACE_WARNING_PERCENT: u64 = 15;

/// How long a program asked (timedatectl) may take.
const PROGRAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The packages without which srvctl cannot serve a site.
const NEEDED_PACKAGES: [&str; 3] = ["systemd", "systemd-container", "haproxy"];

/// The units of srvctl and of the services it drives whose failure the report names
/// (containers are the next check's).
const UNIT_PATTERNS: [&str; 6] = [
    "srvctl*",
    "haproxy.service",
    "openvpn*",
    "etcd*",
    "named.service",
    "systemd-networkd.service",
];

/// srvctl's version and the packages it drives; a needed one missing is a problem.
pub fn versions(probe: &Probe<'_>) -> Vec<Finding> {
    let v = crate::ops::versions::versions(probe.system, probe.paths);
    let installed: Vec<String> = v
        .packages
        .iter()
        .filter_map(|p| Some(format!("{} {}", p.name, p.version.as_deref()?)))
        .collect();
    let mut summary = format!("srvctl {}", v.srvctl);
    if !installed.is_empty() {
        summary = format!("{summary}; {}", installed.join(", "));
    }
    let mut found = vec![Finding::new("versions", Level::Info, summary)];
    let Some(manager) = v.package_manager else {
        found.push(Finding::new(
            "versions",
            Level::Info,
            "a distribution srvctl does not know: package versions not asked",
        ));
        return found;
    };
    let install = match manager {
        crate::ops::versions::PackageManager::Dpkg => "apt-get install",
        crate::ops::versions::PackageManager::Rpm => "dnf install",
    };
    for p in &v.packages {
        if p.version.is_none() && NEEDED_PACKAGES.contains(&p.name) {
            found.push(Finding::fault(
                "versions",
                Level::Problem,
                format!("package {} is not installed", p.name),
                format!("{install} {}", p.name),
            ));
        }
    }
    found
}

/// clusters.json names this host, and it and settings.json parse.
pub fn configuration(probe: &Probe<'_>) -> Vec<Finding> {
    let path = probe.paths.clusters();
    let mut found = Vec::new();
    match Clusters::load(probe.system, &path) {
        Err(e) => found.push(Finding::fault(
            "settings",
            Level::Problem,
            e.to_string(),
            format!("fix {}", path.display()),
        )),
        Ok(c) => match c.host(probe.hostname) {
            Some(h) => found.push(Finding::new(
                "settings",
                Level::Ok,
                format!(
                    "{} is host {} of cluster {} (hostnet {})",
                    h.name, h.host_ip, h.cluster, h.hostnet
                ),
            )),
            None => found.push(Finding::fault(
                "settings",
                Level::Problem,
                format!(
                    "this host ({}) is not in {}",
                    probe.hostname,
                    path.display()
                ),
                format!(
                    "add \"{}\": {{\"host_ip\": ..., \"hostnet\": ...}} to a cluster in {}",
                    probe.hostname,
                    path.display()
                ),
            )),
        },
    }
    let settings = crate::config::site::path(probe.paths);
    match crate::config::site::Settings::load(probe.system, probe.paths) {
        Err(e) => found.push(Finding::fault(
            "settings",
            Level::Problem,
            e.to_string(),
            format!("fix {}", settings.display()),
        )),
        Ok(s) => found.push(Finding::new(
            "settings",
            Level::Info,
            format!(
                "company domain {}, login shell {}",
                s.company_domain
                    .as_ref()
                    .map_or("(none: no preview names)", |d| d.as_str()),
                s.login_shell()
            ),
        )),
    }
    found
}

/// How long the host has been up, and its kernel (the running system's, under a root too).
pub fn uptime(probe: &Probe<'_>) -> Vec<Finding> {
    let read = |path: &str| {
        probe
            .system
            .read(std::path::Path::new(path))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
    };
    let up = read("/proc/uptime")
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| {
            let s = s as u64;
            format!(
                "up {} d {} h {} min",
                s / 86400,
                s % 86400 / 3600,
                s % 3600 / 60
            )
        })
        .unwrap_or_else(|| "uptime unknown".into());
    let kernel = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    vec![Finding::new(
        "uptime",
        Level::Info,
        format!("{up}, kernel {kernel}"),
    )]
}

/// The finding of a check that needs systemd, under a scratch root.
fn no_systemd(check: &'static str) -> Vec<Finding> {
    vec![Finding::new(
        check,
        Level::Info,
        "systemd is not asked under a scratch root",
    )]
}

/// srvctl's units (and those of the services it drives) that failed.
pub fn units(probe: &Probe<'_>) -> Vec<Finding> {
    if !probe.live_systemd {
        return no_systemd("units");
    }
    let mut found = Vec::new();
    for pattern in UNIT_PATTERNS {
        match probe.system.unit_states(pattern) {
            Err(e) => found.push(Finding::fault(
                "units",
                Level::Warning,
                format!("cannot ask systemd for {pattern}: {e}"),
                "systemctl --failed",
            )),
            Ok(units) => found.extend(units.iter().filter(|u| u.active == "failed").map(|u| {
                Finding::fault(
                    "units",
                    Level::Problem,
                    format!("unit {} failed", u.name),
                    format!(
                        "journalctl -u {0} -n 50 says why; once fixed: systemctl restart {0}",
                        u.name
                    ),
                )
            })),
        }
    }
    if found.is_empty() {
        found.push(Finding::new("units", Level::Ok, "no unit of srvctl failed"));
    }
    found
}

/// The host mesh, on a host of a cluster of several hosts: its cluster certificate, and every
/// tunnel the mesh gives it (its server and a client per peer) active.
pub fn mesh(probe: &Probe<'_>) -> Vec<Finding> {
    // clusters.json that does not load is the settings check's finding.
    let Ok(clusters) = Clusters::load(probe.system, &probe.paths.clusters()) else {
        return Vec::new();
    };
    let tunnels = crate::mesh::openvpn::instances(&clusters, probe.hostname);
    if tunnels.is_empty() {
        return vec![Finding::new(
            "mesh",
            Level::Ok,
            "this host has no peer in its cluster: no mesh",
        )];
    }
    if !crate::cluster::pki::has_identity(probe.system, probe.paths) {
        return vec![Finding::fault(
            "mesh",
            Level::Problem,
            "this host has no cluster certificate, so none of its mesh tunnels runs",
            "sc cluster join (or sc cluster request, sign and accept: docs/cluster.md)",
        )];
    }
    if !probe.live_systemd {
        return no_systemd("mesh");
    }
    let units = match probe.system.unit_states("srvctl-mesh@*") {
        Ok(units) => units,
        Err(e) => {
            return vec![Finding::fault(
                "mesh",
                Level::Warning,
                format!("cannot ask systemd for the mesh tunnels: {e}"),
                "systemctl list-units 'srvctl-mesh@*'",
            )];
        }
    };
    let mut found: Vec<Finding> = tunnels
        .iter()
        .map(|t| crate::mesh::openvpn::mesh_unit(t))
        .filter_map(|unit| {
            let state = units
                .iter()
                .find(|u| u.name == unit)
                .map_or("not loaded", |u| u.active.as_str());
            (state != "active").then(|| {
                Finding::fault(
                    "mesh",
                    Level::Problem,
                    format!("mesh tunnel {unit} is {state}"),
                    format!(
                        "journalctl -u {unit} -n 50 says why; once fixed: systemctl restart {unit}"
                    ),
                )
            })
        })
        .collect();
    if found.is_empty() {
        found.push(Finding::new(
            "mesh",
            Level::Ok,
            format!("all {} mesh tunnels are active", tunnels.len()),
        ));
    }
    found
}

/// The datastore, or the finding that it cannot be read.
fn state(probe: &Probe<'_>, check: &'static str) -> Result<State, Vec<Finding>> {
    crate::store::read(probe.system, probe.paths).map_err(|e| {
        vec![Finding::fault(
            check,
            Level::Problem,
            format!("cannot read the datastore: {e}"),
            format!("check {}", probe.paths.datastore().display()),
        )]
    })
}

/// Containers of this host that should run (not disabled, not being destroyed) and don't; one
/// without a root filesystem yet (`sc add-ve --no-start`) is only a warning.
pub fn containers(probe: &Probe<'_>) -> Vec<Finding> {
    if !probe.live_systemd {
        return no_systemd("containers");
    }
    let state = match state(probe, "containers") {
        Ok(s) => s,
        Err(found) => return found,
    };
    let units = match probe.system.unit_states("systemd-nspawn@*") {
        Ok(u) => u,
        Err(e) => {
            return vec![Finding::fault(
                "containers",
                Level::Warning,
                format!("cannot ask systemd for the containers: {e}"),
                "machinectl list",
            )];
        }
    };
    let wanted: Vec<_> = state
        .containers
        .iter()
        .filter(|(_, c)| {
            c.host == probe.hostname && !c.destroying && c.settings.disabled != Some(true)
        })
        .collect();
    let mut found = Vec::new();
    for (name, _) in &wanted {
        let unit = container_unit(name);
        let how = units
            .iter()
            .find(|u| u.name == unit)
            .map_or("not loaded".to_owned(), |u| {
                format!("{} ({})", u.active, u.sub)
            });
        if how.starts_with("active") {
            continue;
        }
        // Added with --no-start, or before its image was built: boot does not start it
        // either (the generator wants only containers with a root filesystem).
        if probe
            .system
            .kind(&rootfs::machine_dir(probe.paths, name))
            .is_none()
        {
            found.push(Finding::fault(
                "containers",
                Level::Warning,
                format!("container {name} has no root filesystem yet, so it does not run"),
                format!("sc {name} start makes it from the image and starts it"),
            ));
        } else {
            found.push(Finding::fault(
                "containers",
                Level::Problem,
                format!("container {name} should run but is {how}"),
                format!("sc {name} start; journalctl -u {unit} -n 50 says why it stopped"),
            ));
        }
    }
    if found.is_empty() {
        found.push(Finding::new(
            "containers",
            Level::Ok,
            format!(
                "all {} containers that should run are running",
                wanted.len()
            ),
        ));
    }
    found
}

/// Every site's certificate: there, valid for [`CERTIFICATE_MARGIN`] more, and no ACME order
/// failing.
pub fn certificates(probe: &Probe<'_>) -> Vec<Finding> {
    let state = match state(probe, "certificates") {
        Ok(s) => s,
        Err(found) => return found,
    };
    let now = probe.system.now();
    let mut found = Vec::new();
    let mut good = 0;
    for (name, _) in state.containers.iter().filter(|(_, c)| !c.destroying) {
        let meta = match certs::read_meta(probe.system, probe.paths, name.as_str()) {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                found.push(Finding::fault(
                    "certificates",
                    Level::Problem,
                    format!("site {name} has no certificate"),
                    "sc regenerate issues the internal one",
                ));
                continue;
            }
            Err(e) => {
                found.push(Finding::fault(
                    "certificates",
                    Level::Problem,
                    format!("certificate of {name} unreadable: {e}"),
                    "sc regenerate issues it again",
                ));
                continue;
            }
        };
        if meta.valid_for(now, CERTIFICATE_MARGIN) {
            good += 1;
            continue;
        }
        let left = meta
            .not_after
            .parse::<jiff::Timestamp>()
            .map(|t| t.duration_since(now));
        let when = match left {
            Ok(d) if d.is_negative() => format!("expired at {}", meta.not_after),
            Ok(d) => format!(
                "expires in {} days (at {})",
                (d.as_secs() + 86_399) / 86_400,
                meta.not_after
            ),
            Err(_) => format!("has an unreadable expiry {:?}", meta.not_after),
        };
        let hint = match meta.source {
            CertSource::Internal => "sc regenerate re-issues it".to_owned(),
            CertSource::Acme => {
                format!("sc certificates renew {name}; sc certificates shows the last error")
            }
        };
        found.push(Finding::fault(
            "certificates",
            Level::Problem,
            format!("certificate of {name} {when}"),
            hint,
        ));
    }
    if let Ok(acme) = crate::front::acme::AcmeState::load(probe.system, probe.paths) {
        for (name, d) in &acme.domains {
            if let Some(error) = d.last_error.as_ref().filter(|_| d.failures > 0) {
                found.push(Finding::fault(
                    "certificates",
                    Level::Warning,
                    format!(
                        "ACME orders for {name} failed {} times: {error}",
                        d.failures
                    ),
                    format!("check that {name} resolves to this host; sc certificates"),
                ));
            }
        }
    }
    if found.is_empty() {
        found.push(Finding::new(
            "certificates",
            Level::Ok,
            format!("{good} certificates valid for 14 days or more"),
        ));
    }
    found
}

/// `haproxy -c` on the configuration srvctl-regenerate installed.
pub fn proxy(probe: &Probe<'_>) -> Vec<Finding> {
    let installed = probe
        .paths
        .host(&format!("/{}", crate::front::haproxy::CONFIG));
    if probe.system.kind(&installed).is_none() {
        return vec![Finding::fault(
            "proxy",
            Level::Warning,
            format!("no proxy configuration at {}", installed.display()),
            "sc regenerate writes it",
        )];
    }
    let Some(haproxy) = crate::front::guard::haproxy_program(probe.system) else {
        return vec![Finding::fault(
            "proxy",
            Level::Problem,
            "haproxy is not installed",
            "install the haproxy package",
        )];
    };
    let dir = probe
        .paths
        .host(&format!("/{}", crate::front::haproxy::DIR));
    let files: Vec<_> = crate::ops::listing::newest_last(probe.system, &dir)
        .0
        .into_iter()
        // Files only: not haproxy's admin socket, which it makes there.
        .filter(|e| !e.link && probe.system.kind(&dir.join(&e.path)) == Some(FileKind::File))
        .map(|e| e.path)
        .collect();
    vec![
        match crate::front::guard::check_installed(probe.system, probe.paths, &haproxy, &files) {
            Ok(()) => Finding::new(
                "proxy",
                Level::Ok,
                format!("haproxy -c accepts {}", installed.display()),
            ),
            Err(e) => Finding::fault(
                "proxy",
                Level::Problem,
                format!("haproxy -c refuses {}: {e}", installed.display()),
                "sc regenerate writes it again; journalctl -u srvctl-regenerate shows what it refused",
            ),
        },
    ]
}

/// Datastore records set aside because they break a rule.
pub fn set_aside(probe: &Probe<'_>) -> Vec<Finding> {
    let state = match state(probe, "datastore") {
        Ok(s) => s,
        Err(found) => return found,
    };
    if state.set_aside.is_empty() {
        return vec![Finding::new(
            "datastore",
            Level::Ok,
            "no record is set aside",
        )];
    }
    state
        .set_aside
        .iter()
        .map(|s| {
            Finding::fault(
                "datastore",
                Level::Problem,
                format!(
                    "record {} of {} is set aside: {}",
                    crate::model::names::shown(&s.key),
                    s.section.key(),
                    s.reason
                ),
                format!(
                    "correct or remove it in {} (it is never used as it is)",
                    probe.paths.datastore().display()
                ),
            )
        })
        .collect()
}

/// Free space on the file system where the containers' root filesystems live.
pub fn free_space(probe: &Probe<'_>) -> Vec<Finding> {
    let machines = probe.paths.host("/var/lib/machines");
    let dir = match probe.system.kind(&machines) {
        Some(_) => machines,
        None => probe.paths.state_dir(),
    };
    let dir = match probe.system.kind(&dir) {
        Some(_) => dir,
        None => probe.paths.host("/"),
    };
    let (free, size) = match probe.system.free_space(&dir) {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::new(
                "space",
                Level::Warning,
                format!("cannot tell the free space of {}: {e}", dir.display()),
            )];
        }
    };
    let percent = (free.saturating_mul(100)).checked_div(size).unwrap_or(0);
    let gb = |b: u64| b as f64 / 1e9;
    let message = format!(
        "{:.1} GB free of {:.1} GB ({percent} %) at {}",
        gb(free),
        gb(size),
        dir.display()
    );
    let hint = "remove what is not needed (old images under /var/lib/machines, \
                journalctl --vacuum-size=500M) or grow the file system";
    vec![match percent {
        p if p < SPACE_PROBLEM_PERCENT => Finding::fault("space", Level::Problem, message, hint),
        p if p < SPACE_WARNING_PERCENT => Finding::fault("space", Level::Warning, message, hint),
        _ => Finding::new("space", Level::Ok, message),
    }]
}

/// The host's name resolves to its `host_ip`, and that address back to the name.
pub fn host_dns(probe: &Probe<'_>) -> Vec<Finding> {
    let Ok(clusters) = Clusters::load(probe.system, &probe.paths.clusters()) else {
        return Vec::new();
    };
    let (Some(host), Some(dns)) = (clusters.host(probe.hostname), probe.dns) else {
        return Vec::new();
    };
    let ip = IpAddr::V4(host.host_ip);
    let mut found = Vec::new();
    match dns.lookup(&host.name) {
        Err(e) => found.push(Finding::fault(
            "dns",
            Level::Warning,
            format!("cannot resolve {}: {e}", host.name),
            "set dns1 for this host in clusters.json, or acme_resolvers in settings.json",
        )),
        Ok(ips) if ips.contains(&ip) => found.push(Finding::new(
            "dns",
            Level::Ok,
            format!("{} resolves to {ip}", host.name),
        )),
        Ok(ips) => found.push(Finding::fault(
            "dns",
            Level::Problem,
            format!(
                "{} resolves to {} instead of its host_ip {ip}",
                host.name,
                shown_ips(&ips)
            ),
            format!("add an A record {} → {ip} in its zone", host.name),
        )),
    }
    match dns.reverse(ip) {
        Err(e) => found.push(Finding::fault(
            "dns",
            Level::Warning,
            format!("cannot resolve {ip} back: {e}"),
            "set dns1 for this host in clusters.json, or acme_resolvers in settings.json",
        )),
        Ok(names) if names.iter().any(|n| n.eq_ignore_ascii_case(&host.name)) => {
            found.push(Finding::new(
                "dns",
                Level::Ok,
                format!("{ip} resolves back to {}", host.name),
            ))
        }
        Ok(names) => found.push(Finding::fault(
            "dns",
            Level::Problem,
            match names.is_empty() {
                true => format!("{ip} has no reverse record (PTR)"),
                false => format!(
                    "{ip} resolves back to {} instead of {}",
                    names.join(", "),
                    host.name
                ),
            },
            format!(
                "ask whoever holds {ip}'s address block (the provider) for a PTR record {ip} → {}",
                host.name
            ),
        )),
    }
    found
}

fn shown_ips(ips: &[IpAddr]) -> String {
    match ips.is_empty() {
        true => "nothing".into(),
        false => ips
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The file systemd writes when it runs in a container (its type, e.g. `systemd-nspawn`).
const CONTAINER_MARK: &str = "/run/systemd/container";

/// The clock is synchronised by NTP, as `timedatectl show` says; on a host that is itself a
/// container, an unsynchronised clock is the outer machine's to fix, so only a warning.
pub fn time_sync(probe: &Probe<'_>) -> Vec<Finding> {
    let command = CommandLine::new("timedatectl", ["show", "-p", "NTPSynchronized", "--value"]);
    let asked = probe.system.run_program(&Program {
        command: &command,
        input: b"",
        timeout: PROGRAM_TIMEOUT,
    });
    let answer = match asked {
        Ok(f) if f.code == Some(0) => String::from_utf8_lossy(&f.stdout).trim().to_owned(),
        Ok(f) => {
            let why = match (f.timed_out, f.code) {
                (true, _) => format!("no answer in {} s", PROGRAM_TIMEOUT.as_secs()),
                (_, Some(c)) => format!("exit {c}"),
                (_, None) => "ended by a signal".to_owned(),
            };
            let stderr = String::from_utf8_lossy(&f.stderr);
            let said = stderr.lines().next().map(str::trim).unwrap_or_default();
            return vec![Finding::fault(
                "time",
                Level::Warning,
                format!("timedatectl could not tell ({why}): {said}"),
                "timedatectl timesync-status",
            )];
        }
        Err(e) => {
            return vec![Finding::fault(
                "time",
                Level::Warning,
                format!("cannot ask timedatectl: {e}"),
                "install systemd-timesyncd (or chrony)",
            )];
        }
    };
    let in_container = probe
        .system
        .kind(&probe.paths.host(CONTAINER_MARK))
        .is_some();
    vec![match answer.as_str() {
        "yes" => Finding::new("time", Level::Ok, "the clock is synchronised (NTP)"),
        // A container shares the kernel's clock with the machine it runs in and may not set
        // it (systemd-timesyncd does not even start there): synchronising is that machine's
        // job, so it is not a fault of this host.
        _ if in_container => Finding::fault(
            "time",
            Level::Warning,
            "the clock is not synchronised (NTP); this host is a container and shares the clock \
             of the machine it runs in",
            "synchronise the clock on the machine that runs this host",
        ),
        _ => Finding::fault(
            "time",
            Level::Problem,
            "the clock is not synchronised (NTP)",
            "timedatectl set-ntp true; systemctl status systemd-timesyncd (or chronyd)",
        ),
    }]
}
