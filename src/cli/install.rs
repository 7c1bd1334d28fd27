//! `sc update-install [--dry-run] [--hostname NAME]`: set this host up for srvctl
//! ([`crate::ops::install`]).

use super::output::Output;
use super::{Failure, Invocation};
use crate::config::cluster::Clusters;
use crate::failure::FailureKind;
use crate::model::web::Domain;
use crate::ops::install::{self, InstallReport, Request};

/// Look at the host, plan, and print the plan (`dry_run`) or run it and print what each step
/// did; the exit status is 1 when a step failed.
pub fn update_install(
    inv: &Invocation,
    out: &mut Output,
    dry_run: bool,
    hostname: Option<&str>,
) -> Result<(), Failure> {
    if inv.paths.root().is_some() || inv.caller.uid != 0 {
        return Err(Failure::new(
            FailureKind::Permission,
            "sc update-install sets up this machine: run it as root, without --root",
        ));
    }
    let request = Request {
        hostname: hostname.map(Domain::new).transpose()?,
    };
    let system = inv.system();
    let clusters = match system.kind(&inv.paths.clusters()) {
        None => Clusters::default(),
        Some(_) => inv.clusters()?,
    };
    let requested = request.hostname.as_ref().map(Domain::as_str);
    let view = install::observe(system, &inv.paths, &clusters, &inv.hostname, requested)
        .ok_or_else(|| {
            Failure::new(
                FailureKind::System,
                "this distribution is none srvctl knows (/etc/os-release: Debian or Fedora, or \
                 their kin)",
            )
        })?;
    let steps = install::plan(&view, &request);
    let report = match dry_run {
        true => InstallReport::new(&steps, None),
        false => {
            let outcomes = install::apply(system, &inv.paths, &view, &steps);
            InstallReport::new(&steps, Some(&outcomes))
        }
    };
    out.install(&report)?;
    match report.ok {
        true => Ok(()),
        false => Err(Failure::silent(1)),
    }
}
