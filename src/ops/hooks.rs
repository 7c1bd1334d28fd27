//! Hooks: the operator's programs in `/etc/srvctl/hooks/PHASE-EVENT.d/` (e.g.
//! `before-add-ve.d/`, `after-destroy-ve.d/`), run in lexical order around `add-ve`,
//! `destroy-ve`, `add-user` and `regenerate`.
//!
//! Each hook gets the record as JSON on its standard input (`{"event", "host", "name",
//! "record"}`) and `SRVCTL_EVENT`, `SRVCTL_PHASE`, `SRVCTL_HOST`, `SRVCTL_NAME`,
//! `SRVCTL_ROOT` in its environment, and has [`TIMEOUT`] to finish. A before hook that fails
//! (or runs out of time) refuses the command, which then changes nothing; an after hook's
//! failure is a warning, and the change stays. Only regular files owned by root and not
//! writable by group or others run, in a directory of the same kind; any other file in a hook
//! directory (but names starting with `.` or ending in `~`, and files without an execute
//! bit, which are skipped as `run-parts` skips them) is an error, named in it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::trusted;
use crate::system::paths::Paths;
use crate::system::{CommandLine, FileKind, Ownership, Program, System};

/// How long one hook may run before it is killed (with everything it started).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The commands hooks run around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// `sc add-ve`.
    AddVe,
    /// `sc destroy-ve`.
    DestroyVe,
    /// `sc add-user`.
    AddUser,
    /// srvctl-regenerate (and `sc regenerate`).
    Regenerate,
}

impl Event {
    /// Every event, in the order the docs list them.
    pub const ALL: &'static [Event] = &[
        Self::AddVe,
        Self::DestroyVe,
        Self::AddUser,
        Self::Regenerate,
    ];

    /// Its name in the hook directories' names.
    pub fn name(self) -> &'static str {
        match self {
            Self::AddVe => "add-ve",
            Self::DestroyVe => "destroy-ve",
            Self::AddUser => "add-user",
            Self::Regenerate => "regenerate",
        }
    }
}

/// Whether a hook runs before the change is committed or after it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before: its failure refuses the command.
    Before,
    /// After: its failure is a warning.
    After,
}

impl Phase {
    /// Its name in the hook directories' names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
        }
    }
}

/// One event's hooks to run: the event and the record they are told about.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// The event.
    pub event: Event,
    /// The record's name (none for regenerate).
    pub name: Option<String>,
    /// The record, as the datastore holds it (for regenerate: what it did, or null before).
    pub record: serde_json::Value,
}

/// A hook that refused, failed or could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The hook ran and failed.
    #[error("hook {hook} failed ({how}){stderr}")]
    Failed {
        /// The hook's path.
        hook: String,
        /// How it ended: `exit 3`, `killed after 30 s`, `ended by a signal`.
        how: String,
        /// The last lines of its standard error, as `: line / line` (or nothing).
        stderr: String,
    },
    /// The hook is not safe to run.
    #[error(
        "hook {hook} was not run: {why} (hooks run only when they and their directory are \
         owned by root and not writable by group or others)"
    )]
    Unsafe {
        /// The hook's path.
        hook: String,
        /// What is wrong with it.
        why: String,
    },
    /// The hook could not be started or its directory not read.
    #[error("hook {hook} could not run: {error}")]
    Unrunnable {
        /// The hook's (or its directory's) path.
        hook: String,
        /// The error.
        error: String,
    },
}

/// The directory of the hooks of `event` in `phase`.
pub fn dir(paths: &Paths, phase: Phase, event: Event) -> PathBuf {
    paths.host(&format!(
        "/etc/srvctl/hooks/{}-{}.d",
        phase.name(),
        event.name()
    ))
}

/// Run the before hooks of `call`: the first that fails refuses the command.
pub fn before(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
    call: &HookCall,
) -> Result<(), HookError> {
    match run(system, paths, hostname, Phase::Before, call, true)
        .into_iter()
        .next()
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Run the after hooks of `call`, every one of them: their failures, to be reported.
pub fn after(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
    call: &HookCall,
) -> Vec<HookError> {
    run(system, paths, hostname, Phase::After, call, false)
}

/// Run the hooks of `call` in `phase`, in lexical order, stopping at the first failure when
/// `stop`; the failures.
fn run(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
    phase: Phase,
    call: &HookCall,
    stop: bool,
) -> Vec<HookError> {
    let dir = dir(paths, phase, call.event);
    if system.kind(&dir).is_none() {
        return Vec::new();
    }
    let names = match system.list_dir(&dir) {
        Ok(names) => names,
        Err(e) => return vec![unrunnable(&dir, &e)],
    };
    if let Err(e) = safe(system, &dir, FileKind::Dir) {
        return vec![e];
    }
    let event = format!("{}-{}", phase.name(), call.event.name());
    let input = stdin(&event, hostname, call);
    let env = environment(paths, hostname, &event, phase, call);
    let mut failures = Vec::new();
    for name in names.iter().filter(|n| !ignored(n)) {
        let hook = dir.join(name);
        let result = safe(system, &hook, FileKind::File).and_then(|ownership| {
            match ownership.mode & 0o111 {
                0 => Ok(()),
                _ => run_one(system, &hook, &env, &input),
            }
        });
        if let Err(e) = result {
            failures.push(e);
            if stop {
                break;
            }
        }
    }
    failures
}

/// Names in a hook directory that are never run: hidden files and editors' backups.
fn ignored(name: &OsString) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.ends_with('~')
}

/// The hook's JSON input.
fn stdin(event: &str, hostname: &str, call: &HookCall) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&serde_json::json!({
        "event": event,
        "host": hostname,
        "name": call.name,
        "record": call.record,
    }))
    .expect("JSON values serialise");
    bytes.push(b'\n');
    bytes
}

/// The ownership of `path` when it is a `kind` srvctl may run as root ([`trusted::check`]).
fn safe(system: &dyn System, path: &Path, kind: FileKind) -> Result<Ownership, HookError> {
    trusted::check(system, path, kind, &[0]).map_err(|why| HookError::Unsafe {
        hook: path.display().to_string(),
        why,
    })
}

fn unrunnable(path: &Path, e: &std::io::Error) -> HookError {
    HookError::Unrunnable {
        hook: path.display().to_string(),
        error: e.to_string(),
    }
}

/// The environment of the hooks of `call` in `phase`, besides srvctl's own.
fn environment(
    paths: &Paths,
    hostname: &str,
    event: &str,
    phase: Phase,
    call: &HookCall,
) -> Vec<(String, OsString)> {
    let mut env = vec![
        ("SRVCTL_EVENT".to_owned(), OsString::from(event)),
        ("SRVCTL_PHASE".to_owned(), phase.name().into()),
        ("SRVCTL_HOST".to_owned(), hostname.into()),
        (
            "SRVCTL_NAME".to_owned(),
            call.name.clone().unwrap_or_default().into(),
        ),
    ];
    if let Some(root) = paths.root() {
        env.push(("SRVCTL_ROOT".to_owned(), root.as_os_str().to_owned()));
    }
    env
}

/// Run one hook to its end, with `env` added to its environment and `input` on its stdin.
fn run_one(
    system: &dyn System,
    hook: &Path,
    env: &[(String, OsString)],
    input: &[u8],
) -> Result<(), HookError> {
    let command = CommandLine::new(&hook.to_string_lossy(), Vec::<OsString>::new())
        .with_env(env.iter().cloned());
    let finished = system
        .run_program(&Program {
            command: &command,
            input,
            timeout: TIMEOUT,
        })
        .map_err(|e| unrunnable(hook, &e))?;
    let how = match (finished.code, finished.timed_out) {
        (Some(0), _) => return Ok(()),
        (_, true) => format!("killed after {} s", TIMEOUT.as_secs()),
        (Some(code), _) => format!("exit {code}"),
        (None, _) => "ended by a signal".to_owned(),
    };
    Err(HookError::Failed {
        hook: hook.display().to_string(),
        how,
        stderr: last_lines(&finished.stderr),
    })
}

/// The last three non-empty lines of a hook's standard error, as `: a / b / c`.
fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut tail: Vec<&str> = text
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    tail.reverse();
    match tail.is_empty() {
        true => String::new(),
        false => format!(": {}", tail.join(" / ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    fn call() -> HookCall {
        HookCall {
            event: Event::AddVe,
            name: Some("web.example.com".into()),
            record: serde_json::json!({"ip": "10.16.0.2"}),
        }
    }

    fn with_hooks(hooks: &[(&str, u32)]) -> (Recording, Paths) {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let dir = dir(&paths, Phase::Before, Event::AddVe);
        system.create_dir(&dir, 0o755).unwrap();
        for (name, mode) in hooks {
            system
                .write(&dir.join(name), b"#!/bin/sh\n", *mode, false)
                .unwrap();
        }
        (system, paths)
    }

    #[test]
    fn hooks_run_in_lexical_order_with_the_record_and_the_event() {
        let (system, paths) = with_hooks(&[("20-b", 0o755), ("10-a", 0o700), ("x~", 0o755)]);
        before(&system, &paths, "h1.test", &call()).unwrap();
        let commands = system.commands.borrow();
        let run: Vec<_> = commands.iter().map(|c| c.program.as_str()).collect();
        assert_eq!(
            run,
            [
                "/r/etc/srvctl/hooks/before-add-ve.d/10-a",
                "/r/etc/srvctl/hooks/before-add-ve.d/20-b"
            ]
        );
        assert_eq!(
            commands[0].env_var("SRVCTL_EVENT"),
            Some(&"before-add-ve".into())
        );
        assert_eq!(
            commands[0].env_var("SRVCTL_NAME"),
            Some(&"web.example.com".into())
        );
        assert_eq!(commands[0].env_var("SRVCTL_ROOT"), Some(&"/r".into()));
        let input: serde_json::Value =
            serde_json::from_slice(&system.exchanged.borrow()[0]).unwrap();
        assert_eq!(input["record"]["ip"], "10.16.0.2");
        assert_eq!(input["event"], "before-add-ve");
        assert_eq!(input["host"], "h1.test");
    }

    #[test]
    fn no_directory_no_hooks_and_a_file_without_execute_bit_is_skipped() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        before(&system, &paths, "h", &call()).unwrap();
        let (system, paths) = with_hooks(&[("off", 0o644)]);
        before(&system, &paths, "h", &call()).unwrap();
        assert!(system.commands.borrow().is_empty());
    }

    #[test]
    fn a_failing_before_hook_is_named_with_its_stderr_and_stops_the_rest() {
        let (mut system, paths) = with_hooks(&[("10-no", 0o755), ("20-yes", 0o755)]);
        let hook = "/r/etc/srvctl/hooks/before-add-ve.d/10-no";
        system.failing_programs = [(hook.to_owned(), "quota exceeded".to_owned())].into();
        let e = before(&system, &paths, "h", &call()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("hook {hook} failed (exit 1): quota exceeded")
        );
        assert_eq!(system.commands.borrow().len(), 1);
    }

    #[test]
    fn a_hook_out_of_time_fails_and_after_hooks_all_run() {
        let (mut system, paths) = with_hooks(&[]);
        let dir = dir(&paths, Phase::After, Event::AddVe);
        for name in ["1", "2"] {
            system.write(&dir.join(name), b"", 0o755, false).unwrap();
        }
        system.hanging_programs = [dir.join("1").display().to_string()].into();
        let failures = after(&system, &paths, "h", &call());
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].to_string().contains("killed after 30 s"));
        assert_eq!(system.commands.borrow().len(), 2);
    }

    #[test]
    fn hooks_not_roots_or_writable_by_others_do_not_run() {
        let (system, paths) = with_hooks(&[("group-writable", 0o775)]);
        let e = before(&system, &paths, "h", &call()).unwrap_err();
        assert!(
            e.to_string()
                .contains("mode 0775 lets group or others write it"),
            "{e}"
        );
        let (system, paths) = with_hooks(&[("bobs", 0o755)]);
        let hook = dir(&paths, Phase::Before, Event::AddVe).join("bobs");
        system.owners.borrow_mut().insert(hook, (1000, 1000));
        let e = before(&system, &paths, "h", &call()).unwrap_err();
        assert!(e.to_string().contains("owned by uid 1000, not root"), "{e}");
        assert!(system.commands.borrow().is_empty());

        let (system, paths) = with_hooks(&[("fine", 0o755)]);
        let dir = dir(&paths, Phase::Before, Event::AddVe);
        system.create_dir(&dir, 0o777).unwrap();
        let e = before(&system, &paths, "h", &call()).unwrap_err();
        assert!(e.to_string().contains("before-add-ve.d was not run"), "{e}");
    }
}
