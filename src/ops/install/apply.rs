//! Running the needed steps of `sc update-install`'s plan, each through [`System`].

use serde::Serialize;

use super::{Action, HostView, Step, firewall, install_line, observe};
use crate::containers::limits;
use crate::system::paths::Paths;
use crate::system::{CommandLine, Request, System};

/// How a step that ran went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what it says.
    Done,
    /// It failed, and why.
    Failed(String),
}

/// Run the action of every needed step of `steps` (planned from `view`), in order; a failed
/// step does not stop the next ones (each is independent of the others' success). Then check
/// that SELinux still enforces if it did. The outcome of each step, `None` for those with
/// nothing to do.
pub fn apply(
    system: &dyn System,
    paths: &Paths,
    view: &HostView,
    steps: &[Step],
) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = steps
        .iter()
        .map(|s| s.action.as_ref().map(|a| run(system, paths, a)))
        .collect();
    if view.selinux_enforcing == Some(true)
        && observe::selinux_enforcing(system, paths) != Some(true)
        && let Some(i) = steps.iter().position(|s| s.name == "selinux")
    {
        outcomes[i] = Some(Outcome::Failed(
            "SELinux enforced before this run and no longer does: `setenforce 1`, then find what \
             changed it"
                .to_owned(),
        ));
    }
    outcomes
}

/// A program run to its end: done, or failed with what it said.
fn ran(system: &dyn System, command: &CommandLine) -> Result<(), String> {
    system.run(command).map_err(|e| format!("{command}: {e}"))
}

/// `systemctl VERB --now -- UNITS…`.
fn systemctl(system: &dyn System, verb: &str, units: &[String]) -> Result<(), String> {
    ran(
        system,
        &CommandLine::new(
            "systemctl",
            [verb, "--now", "--"]
                .into_iter()
                .chain(units.iter().map(String::as_str)),
        ),
    )
}

fn run(system: &dyn System, paths: &Paths, action: &Action) -> Outcome {
    let result = match action {
        Action::Install(manager, packages) => ran(system, &install_line(*manager, packages))
            .map_err(|e| match manager {
                crate::ops::versions::PackageManager::Dpkg => {
                    format!("{e} (are the package lists current? apt-get update)")
                }
                crate::ops::versions::PackageManager::Rpm => e,
            }),
        Action::SetHostname(name) => ran(
            system,
            &CommandLine::new("hostnamectl", ["set-hostname", "--", name]),
        ),
        Action::RaiseLimits(low) => {
            let done = limits::raise(system, paths, low);
            match done.failed.is_empty() {
                true => Ok(()),
                false => Err(done.failed.join("; ")),
            }
        }
        Action::OpenPorts(ports) => {
            let add = ports.iter().map(|p| format!("--add-port={p}"));
            ran(
                system,
                &CommandLine::new(
                    "firewall-cmd",
                    std::iter::once("--permanent".to_owned()).chain(add),
                ),
            )
            .and_then(|()| ran(system, &CommandLine::new("firewall-cmd", ["--reload"])))
        }
        Action::WriteTable(text) => system
            .write(
                &paths.host(firewall::TABLE_FILE),
                text.as_bytes(),
                0o644,
                true,
            )
            .map_err(|e| format!("cannot write {}: {e}", firewall::TABLE_FILE))
            .and_then(|()| {
                system
                    .systemd(&Request::Restart(firewall::UNIT.to_owned()))
                    .map_err(|e| e.to_string())
            }),
        Action::Enable(units) => systemctl(system, "enable", units),
        Action::Disable(units) => systemctl(system, "disable", units),
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e),
    }
}
