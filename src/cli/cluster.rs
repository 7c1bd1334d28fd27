//! `sc cluster request|sign|accept|join`: the cluster trust root (see [`crate::cluster::pki`]);
//! `sc cluster status` ([`crate::cluster::status`]).

use std::io::Read;
use std::path::Path;

use super::args::ClusterAction;
use super::output::Output;
use super::{Failure, Invocation};
use crate::cluster::enrol::{self, Enrolment};
use crate::cluster::join;
use crate::cluster::pki::{self, PkiError};
use crate::cluster::status::{self, ClusterStatus};
use crate::config::cluster::{Clusters, Host};
use crate::failure::FailureKind;

/// Run one `sc cluster` action for the operator.
pub fn run(
    inv: &Invocation,
    out: &mut Output,
    json: bool,
    action: &ClusterAction,
) -> Result<(), Failure> {
    crate::access::operator_only(&inv.caller, "cluster")?;
    refuse_paths_through_the_service(inv, action)?;
    let clusters = inv.clusters()?;
    let me = clusters
        .host(&inv.hostname)
        .ok_or_else(|| PkiError::UnknownHost(inv.hostname.clone()))?;
    let system = inv.system();
    match action {
        ClusterAction::Status => out.cluster_status(&cluster_status(inv, &clusters, me)),
        ClusterAction::Request { output } => {
            let requested = pki::request(system, &inv.paths, &clusters, me)?;
            match (&requested.csr, output) {
                (Some(csr), Some(file)) => system
                    .write(file, csr.as_bytes(), 0o644, true)
                    .map_err(|e| Failure::from(e).context(&format!("{}: ", file.display())))?,
                (Some(csr), None) if !json => return Failure::print(csr.trim_end()),
                _ => {}
            }
            if json {
                return Failure::print(&serde_json::to_string_pretty(&requested)?);
            }
            if requested.installed {
                Failure::print(&format!(
                    "{} is the CA host: its certificate is installed ({})",
                    me.name,
                    pki::HOST_CERT
                ))?;
                bring_up(inv, &clusters, me)?;
            }
            Ok(())
        }
        ClusterAction::Sign { file } => {
            let signed = pki::sign(
                system,
                &inv.paths,
                &clusters,
                me,
                &input(inv, file)?,
                pki::HOST_VALIDITY_DAYS,
            )?;
            if json {
                Failure::print(&serde_json::to_string_pretty(&signed)?)
            } else {
                Failure::print(signed.bundle.trim_end())
            }
        }
        ClusterAction::Accept { file } => accept(inv, &clusters, me, &input(inv, file)?, json),
        ClusterAction::Join { via } => {
            let route = join::Route::to_ca(&clusters, me, via.as_deref())?;
            eprintln!(
                "sc: cluster: asking the CA host {} to sign this host's request (ssh {})",
                route.ca, route.destination
            );
            let bundle = join::signed_by_ca(system, &inv.paths, &clusters, me, &route)?;
            accept(inv, &clusters, me, &bundle, json)
        }
    }
}

/// Install the bundle for this host and start what it lets the host run.
fn accept(
    inv: &Invocation,
    clusters: &Clusters,
    me: &Host,
    bundle: &str,
    json: bool,
) -> Result<(), Failure> {
    let accepted = pki::accept(inv.system(), &inv.paths, me, bundle)?;
    let enrolment = enrol::enrol(inv.system(), &inv.paths, clusters, me).map_err(|e| {
        Failure::from(e).context("the cluster certificate is installed, but its etcd member: ")
    })?;
    match &enrolment {
        Enrolment::Added { initial_cluster } => eprintln!(
            "sc: cluster: the running cluster had no member for {}: added it ({initial_cluster})",
            me.name
        ),
        Enrolment::Forming { .. } => eprintln!(
            "sc: cluster: no etcd member answers yet: this host's member starts as one of a new \
             cluster (the others join it as they get their certificates)"
        ),
        Enrolment::HasData | Enrolment::Member => {}
    }
    bring_up(inv, clusters, me)?;
    if json {
        let mut answer = serde_json::to_value(&accepted)?;
        answer["etcd"] = serde_json::to_value(&enrolment)?;
        Failure::print(&serde_json::to_string_pretty(&answer)?)
    } else {
        let site = if accepted.site_issuer_installed {
            format!(
                " and site issuer ({})",
                crate::cluster::pki::site::ROOT_CERT
            )
        } else {
            String::new()
        };
        Failure::print(&format!(
            "{}: cluster certificate{site} installed ({}); its etcd member, sync service and mesh tunnels are starting",
            accepted.host,
            pki::HOST_CERT
        ))
    }
}

/// Through the privileged service the streams are the caller's own, but a path would be
/// opened by the service: only `-` and standard output are accepted there.
fn refuse_paths_through_the_service(
    inv: &Invocation,
    action: &ClusterAction,
) -> Result<(), Failure> {
    if inv.through_service && matches!(action, ClusterAction::Join { .. }) {
        return Err(Failure::new(
            FailureKind::Permission,
            "sc cluster join reaches the CA host with root's ssh keys: run it as root on the \
             joining host",
        ));
    }
    let names_a_path = match action {
        ClusterAction::Request { output } => output.is_some(),
        ClusterAction::Sign { file } | ClusterAction::Accept { file } => file != Path::new("-"),
        ClusterAction::Status | ClusterAction::Join { .. } => false,
    };
    if inv.through_service && names_a_path {
        return Err(Failure::new(
            FailureKind::Usage,
            "through the srvctl service sc cluster reads standard input (-) and writes standard \
             output: the service never opens a path its caller names",
        ));
    }
    Ok(())
}

/// The text of `file`, or of standard input for `-`.
fn input(inv: &Invocation, file: &Path) -> Result<String, Failure> {
    let failed =
        |e: std::io::Error| Failure::new(FailureKind::Invalid, format!("{}: {e}", file.display()));
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(failed)?;
        return Ok(text);
    }
    let bytes = inv
        .system()
        .read(file)
        .map_err(failed)?
        .ok_or_else(|| failed(std::io::ErrorKind::NotFound.into()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Start what the host's new certificate lets it run ([`crate::cluster::member::bring_up`]).
fn bring_up(inv: &Invocation, clusters: &Clusters, me: &Host) -> Result<(), Failure> {
    for request in crate::cluster::member::bring_up(clusters, me) {
        inv.system().systemd(&request)?;
    }
    Ok(())
}

/// The cluster as this host sees it: the members' answers when etcd can be asked, else its
/// hosts from clusters.json with the reason; this host's sync service either way.
fn cluster_status(inv: &Invocation, clusters: &Clusters, me: &Host) -> ClusterStatus {
    let system = inv.system();
    let now = system.now();
    let mut found =
        match crate::cluster::etcd::Connection::open(system, &inv.paths, clusters, &me.name) {
            Ok(conn) => status::gather(&conn, now),
            Err(e) => {
                let hosts: Vec<String> = crate::cluster::members(clusters, &me.name)
                    .iter()
                    .map(|h| h.name.clone())
                    .collect();
                let unknown = vec![Err("not asked".to_owned()); hosts.len()];
                let mut s = status::assemble(
                    &me.cluster,
                    &hosts,
                    &unknown,
                    None,
                    &Default::default(),
                    now,
                );
                s.error = Some(e.to_string());
                s
            }
        };
    found.sync = crate::cluster::sync::read_status(system, &inv.paths);
    found
}
