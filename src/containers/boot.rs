//! Start a container and wait until it has booted, or say why it did not.
//!
//! The rendered `.nspawn` file sets `NotifyReady=yes`: systemd-nspawn tells systemd its unit
//! is started only once the container's own systemd reports `READY=1` (its boot finished), so
//! the start job of `systemd-nspawn@NAME.service` ends when the container has booted, and
//! fails when the boot fails or takes longer than the unit's start timeout
//! ([`crate::containers::units::BOOT_TIMEOUT`]). After the job, the unit must be active: a
//! container that stopped right after booting did not boot either.

use crate::containers::units::container_unit;
use crate::model::names::ContainerName;
use crate::system::systemd::SystemdError;
use crate::system::{CommandLine, Request, System};

/// How many lines of the unit's journal a failure shows.
const JOURNAL_LINES: usize = 12;

/// A container did not boot.
#[derive(Debug, thiserror::Error)]
#[error("{unit} did not boot{cause}: it is {state}{journal}")]
pub struct NotBooted {
    unit: String,
    /// Why the start job failed, as `: …`, or nothing when it succeeded.
    cause: String,
    /// `active (running)`, `failed (failed)`, … or `not loaded`.
    state: String,
    /// The last lines of the unit's journal, each on a line of its own, or nothing.
    journal: String,
}

/// Ask systemd for `request` (a start or restart of the unit of `name`), then check that the
/// container booted. `live` is false under a scratch root, where systemd is not asked.
pub fn start(
    system: &dyn System,
    name: &ContainerName,
    request: &Request,
    live: bool,
) -> Result<(), NotBooted> {
    let result = system.systemd(request);
    if !live {
        return Ok(());
    }
    let unit = container_unit(name);
    let state = system
        .unit_states(&unit)
        .ok()
        .and_then(|units| units.into_iter().find(|u| u.name == unit));
    let booted = state.as_ref().is_some_and(|u| u.active == "active");
    if result.is_ok() && booted {
        return Ok(());
    }
    Err(NotBooted {
        cause: result.err().map(|e| cause(&e)).unwrap_or_default(),
        state: state.map_or_else(
            || "not loaded".into(),
            |u| format!("{} ({})", u.active, u.sub),
        ),
        journal: journal(system, &unit),
        unit,
    })
}

/// Whether the unit of container `name` runs (or is starting, reloading or stopping): any
/// state but inactive and failed. A unit systemd does not know does not run; under a scratch
/// root systemd is not asked and nothing runs.
pub fn runs(system: &dyn System, name: &ContainerName) -> Result<bool, SystemdError> {
    let unit = container_unit(name);
    Ok(system
        .unit_states(&unit)?
        .iter()
        .any(|u| u.name == unit && !matches!(u.active.as_str(), "inactive" | "failed")))
}

/// The start job's failure, without the request systemd's error repeats.
fn cause(e: &SystemdError) -> String {
    let text = e.to_string();
    let text = text.split_once(": ").map_or(&*text, |(_, rest)| rest);
    let text = text.split_once(": ").map_or(text, |(_, rest)| rest);
    format!(" ({text})")
}

/// The last lines of the unit's journal (this boot), indented, after a heading line.
fn journal(system: &dyn System, unit: &str) -> String {
    let lines = JOURNAL_LINES.to_string();
    let command = CommandLine::new(
        "journalctl",
        [
            "--no-pager",
            "--boot",
            "--output=cat",
            "--lines",
            &lines,
            "--unit",
            unit,
        ],
    );
    let text = match system.exchange(&command, b"") {
        Ok(out) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => return format!("; its journal could not be read ({e})"),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return format!("; its journal is empty (see `journalctl -u {unit}`)");
    }
    let mut out = format!("; the last lines of `journalctl -u {unit}`:");
    for line in lines {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;
    use crate::system::systemd::UnitState;

    fn web() -> ContainerName {
        ContainerName::new("web.ve").unwrap()
    }

    fn unit_in(active: &str, sub: &str) -> UnitState {
        UnitState {
            name: container_unit(&web()),
            active: active.into(),
            sub: sub.into(),
            since_usec: 0,
        }
    }

    fn start_web(system: &Recording) -> Result<(), NotBooted> {
        start(
            system,
            &web(),
            &Request::Start(container_unit(&web())),
            true,
        )
    }

    #[test]
    fn a_booted_container_is_active_after_its_start_job() {
        let system = Recording {
            units: vec![unit_in("active", "running")],
            ..Recording::default()
        };
        start_web(&system).unwrap();
        assert!(system.exchanged.borrow().is_empty(), "no journal asked for");
    }

    #[test]
    fn a_failed_boot_names_the_unit_its_state_and_its_journal() {
        let unit = container_unit(&web());
        let mut system = Recording {
            units: vec![unit_in("failed", "failed")],
            ..Recording::default()
        };
        system.failing_jobs.insert(unit.clone(), "timeout".into());
        system.answers.insert(
            "journalctl".into(),
            b"Failed to allocate manager object: Too many open files\n\nFreezing execution.\n"
                .to_vec(),
        );
        let text = start_web(&system).unwrap_err().to_string();
        assert_eq!(
            text,
            format!(
                "{unit} did not boot (the job for {unit} timed out (see `journalctl -u {unit}`)): \
                 it is failed (failed); the last lines of `journalctl -u {unit}`:\n  \
                 Failed to allocate manager object: Too many open files\n  Freezing execution."
            )
        );
        let asked = system.commands.borrow();
        assert!(asked[0].to_string().contains(&format!("--unit {unit}")));
    }

    #[test]
    fn a_container_that_stopped_after_its_job_did_not_boot() {
        let system = Recording {
            units: vec![unit_in("inactive", "dead")],
            ..Recording::default()
        };
        let text = start_web(&system).unwrap_err().to_string();
        assert!(
            text.starts_with("systemd-nspawn@web.ve.service did not boot: it is inactive (dead);"),
            "{text}"
        );
        assert!(text.contains("its journal is empty"), "{text}");
    }

    #[test]
    fn under_a_scratch_root_only_the_request_is_made() {
        let system = Recording::default();
        start(
            &system,
            &web(),
            &Request::Start(container_unit(&web())),
            false,
        )
        .unwrap();
        assert_eq!(system.requests.borrow().len(), 1);
    }
}
