//! The operator's tools: `sc diagnose`, `sc ls [DIR]`, `sc exec-function CMD…`,
//! `sc customize NAME` and the custom commands it makes (`sc NAME ARGS…`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::output::Output;
use super::{Failure, Invocation};
use crate::config::cluster::Clusters;
use crate::failure::FailureKind;
use crate::ops::custom::{self, CustomName};
use crate::ops::{context, diagnose, listing};
use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// `sc diagnose`: print the report; the exit status is 1 when the host is not healthy.
pub fn diagnose(inv: &Invocation, out: &mut Output) -> Result<(), Failure> {
    crate::access::operator_only(&inv.caller, "diagnose")?;
    let system = inv.system();
    let clusters = Clusters::load(system, &inv.paths.clusters()).unwrap_or_default();
    let settings = crate::front::acme::AcmeSettings::load(system, &inv.paths).unwrap_or_default();
    let resolver = clusters
        .host(&inv.hostname)
        .map(|host| crate::front::acme::DnsResolver::for_host(system, &inv.paths, host, &settings));
    let report = diagnose::diagnose(&diagnose::Probe {
        system,
        paths: &inv.paths,
        hostname: &inv.hostname,
        live_systemd: inv.paths.root().is_none(),
        dns: resolver
            .as_ref()
            .map(|r| r as &dyn crate::front::acme::Resolver),
    });
    out.diagnosis(&report)?;
    match report.healthy {
        true => Ok(()),
        false => Err(Failure::silent(1)),
    }
}

/// `sc ls [DIR]`: the files under DIR (default: the current directory), newest last.
pub fn ls(system: &dyn System, out: &mut Output, dir: Option<&Path>) -> Result<(), Failure> {
    let dir = dir.unwrap_or(Path::new("."));
    if system.kind(dir) != Some(crate::system::FileKind::Dir) {
        return Err(Failure::new(
            FailureKind::NotFound,
            format!(
                "{}: no such directory",
                crate::model::names::shown(&dir.to_string_lossy())
            ),
        ));
    }
    let (entries, unreadable) = listing::newest_last(system, dir);
    out.listing(&entries)?;
    if unreadable > 0 {
        eprintln!("sc: warning: {unreadable} directories could not be read");
    }
    Ok(())
}

/// srvctl's context for a program this host's operator runs ([`context::variables`]).
fn context_of(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
) -> Vec<(String, std::ffi::OsString)> {
    let clusters = Clusters::load(system, &paths.clusters()).unwrap_or_default();
    context::variables(system, paths, hostname, &clusters)
}

/// Run `command` on this terminal; its exit status is passed through.
fn run_passing_status(system: &dyn System, command: &CommandLine) -> Result<(), Failure> {
    match system.interact(command)? {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::silent(u8::try_from(code).unwrap_or(1))),
        None => Err(Failure::silent(128 + 9)),
    }
}

/// `sc exec-function CMD…`: run CMD with srvctl's context in its environment; only for the
/// operator running sc itself (root, or anyone on a scratch root of its own).
pub fn exec_function(inv: &Invocation, command: &[String]) -> Result<(), Failure> {
    crate::access::operator_only(&inv.caller, "exec-function")?;
    let (program, args) = command.split_first().expect("clap requires CMD");
    let line = CommandLine::new(program, args).with_env(context_of(
        inv.system(),
        &inv.paths,
        &inv.hostname,
    ));
    run_passing_status(inv.system(), &line)
}

/// Where the custom commands of the user running sc live, and whose files may run there.
pub struct Includes {
    /// The directory.
    pub dir: PathBuf,
    /// The owners whose custom commands run: the user, and root.
    pub owners: Vec<u32>,
}

impl Includes {
    /// Those of real user `uid` (a user's are in its `HOME`); none when a user has no `HOME`.
    pub fn of(system: &dyn System, paths: &Paths, uid: u32) -> Option<Self> {
        let home = system.env("HOME").map(PathBuf::from);
        let dir = custom::dir(paths, uid, home.as_deref())?;
        let mut owners = vec![0];
        if uid != 0 {
            owners.push(uid);
        }
        Some(Self { dir, owners })
    }

    /// The custom commands there, as a section of `sc --help` (empty when there are none).
    pub fn help_section(&self, system: &dyn System) -> String {
        let commands = custom::list(system, &self.dir);
        if commands.is_empty() {
            return String::new();
        }
        let width = commands
            .iter()
            .map(|c| c.name.as_str().len())
            .max()
            .unwrap_or(0);
        let mut text = format!(
            "\n\nCustom commands (sc NAME ARGS..., from {}):",
            self.dir.display()
        );
        for c in &commands {
            text.push_str(&format!(
                "\n  {:<width$}  {}",
                c.name.as_str(),
                c.description
            ));
        }
        text
    }

    /// Run custom command `word` with `args` when there is one of that name: `None` when
    /// there is none (the words name a container).
    pub fn run(
        &self,
        system: &dyn System,
        paths: &Paths,
        word: &str,
        args: &[String],
    ) -> Option<Result<(), Failure>> {
        let file = match custom::find(system, &self.dir, word, &self.owners) {
            Ok(None) => return None,
            Ok(Some(file)) => file,
            Err(e) => return Some(Err(e.into())),
        };
        let line = CommandLine::new(
            "bash",
            std::iter::once(file.into_os_string()).chain(args.iter().map(Into::into)),
        )
        .with_env(context_of(system, paths, &system.hostname()));
        Some(run_passing_status(system, &line))
    }
}

/// `sc customize NAME [--print]`: make the custom command from the template unless it
/// exists, then (on a terminal, without --print) open it in `$VISUAL`, `$EDITOR` or `editor`.
pub fn customize(
    system: &dyn System,
    includes: Option<&Includes>,
    out: &mut Output,
    name: &str,
    print: bool,
) -> Result<(), Failure> {
    let name = CustomName::new(name)?;
    let includes = includes.ok_or_else(|| {
        Failure::new(
            FailureKind::Config,
            "HOME is not set: no srvctl-includes directory for your custom commands",
        )
    })?;
    let created = custom::create(system, &includes.dir, &name)?;
    let file = custom::file(&includes.dir, &name);
    let interactive = !print && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if interactive {
        let editor = ["VISUAL", "EDITOR"]
            .iter()
            .find_map(|v| system.env(v).filter(|e| !e.is_empty()))
            .map_or("editor".to_owned(), |e| e.to_string_lossy().into_owned());
        run_passing_status(system, &CommandLine::new(&editor, [file.as_os_str()]))?;
    }
    let what = if created { "created" } else { "exists" };
    out.value(&format!(
        "{what} {} (run it as sc {})",
        file.display(),
        name.as_str()
    ))
}
