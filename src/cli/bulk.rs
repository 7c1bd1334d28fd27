//! `sc exec-all CMD…` and `sc all-containers start|stop|restart`: one container action over
//! every container of this host the caller may act on, one result each.

use serde::Serialize;

use super::container::{self, Action};
use super::output::Output;
use super::{Failure, Invocation};
use crate::containers::units::container_unit;
use crate::model::names::ContainerName;
use crate::store;

/// What a bulk command did in one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkResult {
    /// The container.
    pub container: String,
    /// The exit code of the command run inside, or the exit status of srvctl's failure
    /// (`None`: nothing ran, or a signal ended the command).
    pub exit_code: Option<i32>,
    /// What the command printed on its standard output (exec-all only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// How it ended, in words: `exit 0`, `started`, `error: …`.
    pub outcome: String,
}

impl BulkResult {
    /// Whether it went well.
    pub fn ok(&self) -> bool {
        matches!(self.exit_code, None | Some(0)) && !self.outcome.starts_with("error")
    }
}

/// Which of the caller's containers a bulk command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// Those whose unit is active (under a scratch root, where systemd is not asked: those
    /// not disabled).
    Running,
    /// Those not disabled.
    Enabled,
    /// Every one.
    All,
}

/// The containers of this host that the caller may act on and that are not being destroyed,
/// in name order, as `which` narrows them.
fn selected(inv: &Invocation, which: Which) -> Result<Vec<ContainerName>, Failure> {
    let state = inv.caller.visible(store::read(inv.system(), &inv.paths)?);
    let live = match which == Which::Running && inv.paths.root().is_none() {
        true => container::live_states(inv.system(), None)?,
        false => None,
    };
    let taken = |name: &ContainerName, c: &crate::model::Container| match (&live, which) {
        (Some(units), _) => units
            .get(&container_unit(name))
            .is_some_and(|u| u.active == "active"),
        (None, Which::All) => true,
        (None, _) => c.settings.disabled != Some(true),
    };
    Ok(state
        .containers
        .iter()
        .filter(|(name, c)| c.host == inv.hostname && !c.destroying && taken(name, c))
        .map(|(name, _)| name.clone())
        .collect())
}

/// The result of a step that srvctl refused or that failed.
fn failed(name: &ContainerName, f: &Failure) -> BulkResult {
    BulkResult {
        container: name.to_string(),
        exit_code: Some(i32::from(f.code)),
        output: None,
        outcome: format!("error: {}", f.message.replace('\n', " ")),
    }
}

/// Print the results and audit the command; exit status 1 when any step went wrong.
fn finish(inv: &Invocation, out: &mut Output, results: &[BulkResult]) -> Result<(), Failure> {
    let bad = results.iter().filter(|r| !r.ok()).count();
    let outcome = match bad {
        0 => "ok".to_owned(),
        n => format!("failed in {n} of {} containers", results.len()),
    };
    inv.audit(&outcome);
    out.bulk(results)?;
    match bad {
        0 => Ok(()),
        _ => Err(Failure::silent(1)),
    }
}

/// `sc exec-all CMD…`: run `command` as root in every running container of this host the
/// caller may act on, one after the other.
pub fn exec_all(inv: &Invocation, out: &mut Output, command: &[String]) -> Result<(), Failure> {
    let results: Vec<BulkResult> = selected(inv, Which::Running)?
        .iter()
        .map(|name| match container::exec_captured(inv, name, command) {
            Ok(None) => BulkResult {
                container: name.to_string(),
                exit_code: None,
                output: None,
                outcome: "not run (scratch root)".into(),
            },
            Ok(Some((code, stdout))) => BulkResult {
                container: name.to_string(),
                exit_code: code,
                output: Some(String::from_utf8_lossy(&stdout).into_owned()),
                outcome: match code {
                    Some(c) => format!("exit {c}"),
                    None => "error: ended by a signal".into(),
                },
            },
            Err(f) => failed(name, &f),
        })
        .collect();
    finish(inv, out, &results)
}

/// `sc all-containers start|stop|restart`: that action on every container of this host the
/// caller may act on (start and restart: those not disabled), one after the other.
pub fn all_containers(inv: &Invocation, out: &mut Output, action: &Action) -> Result<(), Failure> {
    let (done, which) = match action {
        Action::Start => ("started", Which::Enabled),
        Action::Stop => ("stopped", Which::All),
        _ => ("restarted", Which::Enabled),
    };
    let results: Vec<BulkResult> = selected(inv, which)?
        .iter()
        .map(|name| match container::power_one(inv, name, action) {
            Ok(()) => BulkResult {
                container: name.to_string(),
                exit_code: Some(0),
                output: None,
                outcome: done.into(),
            },
            Err(f) => failed(name, &f),
        })
        .collect();
    finish(inv, out, &results)
}
