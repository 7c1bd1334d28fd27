//! `srvctl-regenerate` and `sc regenerate`.

use crate::failure::FailureKind;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::Failure;
use super::output::Output;
use crate::engine::regenerate;
use crate::ops::hooks;
use crate::system::paths::Paths;
use crate::system::{Local, Request, System};

/// The unit that runs srvctl-regenerate.
pub const UNIT: &str = crate::ops::follow_up::REGENERATE_UNIT;

/// srvctl-regenerate: expand the srvctl datastore into this host's configuration.
#[derive(Debug, Parser)]
#[command(name = "srvctl-regenerate", version)]
pub(crate) struct Args {
    /// Re-root every path under DIR; makes no systemd call.
    #[arg(long, env = "SRVCTL_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Only wait until systemd-networkd has made the bridges of this host's containers
    /// (srvctl-bridges.service runs this at boot, before the containers start).
    #[arg(long)]
    wait_bridges: bool,
    /// Only raise the host limits many containers hit to srvctl's floors, for the containers
    /// this host has (scripts/install.sh runs this; every run of regenerate does it too).
    #[arg(long, conflicts_with = "wait_bridges")]
    raise_limits: bool,
}

/// Run regenerate in this process and print what it did.
/// The before-regenerate hooks may refuse it (nothing is written then); the
/// after-regenerate hooks are told what it did.
pub fn run_here(system: &dyn System, paths: &Paths, out: &mut Output) -> Result<(), Failure> {
    let hostname = system.hostname();
    let mut call = hooks::HookCall {
        event: hooks::Event::Regenerate,
        name: None,
        record: serde_json::Value::Null,
    };
    hooks::before(system, paths, &hostname, &call)?;
    let outcome = regenerate::run(system, paths, &hostname)?;
    for s in &outcome.skipped {
        eprintln!(
            "srvctl-regenerate: skipped invalid record {}",
            s.replace('\n', "\\n")
        );
    }
    for note in &outcome.notes {
        eprintln!("srvctl-regenerate: note: {note}");
    }
    out.regenerated(&outcome)?;
    call.record = serde_json::to_value(&outcome).unwrap_or_default();
    super::warn_after_hooks(
        "srvctl-regenerate",
        &hooks::after(system, paths, &hostname, &call),
    );
    match &outcome.haproxy_error {
        Some(error) => Err(Failure::new(FailureKind::Config, error.clone())),
        None => Ok(()),
    }
}

/// `sc regenerate`: through systemd on a real host, directly under a scratch root.
pub fn sc_regenerate(system: &dyn System, paths: &Paths, out: &mut Output) -> Result<(), Failure> {
    if paths.root().is_some() {
        return run_here(system, paths, out);
    }
    system.systemd(&Request::Start(UNIT.into()))?;
    out.value(&format!(
        "{UNIT} ran; see journalctl -u {UNIT} for what changed"
    ))
}

/// `sc regenerate rootfs [IMAGE]`: build a base image.
pub fn rootfs(
    inv: &super::Invocation,
    out: &mut Output,
    image: Option<&str>,
) -> Result<(), Failure> {
    let image = image.unwrap_or(crate::containers::image::DEFAULT_IMAGE);
    let took = crate::containers::image::build(inv.system(), &inv.paths, image)?;
    inv.audit("ok");
    out.value(&format!(
        "image {image} built in {:.0} s at {}",
        took.as_secs_f64(),
        crate::containers::image::image_dir(&inv.paths, image).display()
    ))
}

/// Entry point of the `srvctl-regenerate` program.
pub fn regenerate_main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => return super::usage_error(e, "srvctl-regenerate", super::wants_json(&argv)),
    };
    let paths = args.root.map(Paths::rooted).unwrap_or_else(Paths::system);
    // The one machine of this run: systemd requests are only printed under a scratch root.
    let system = Local::new(paths.root().is_some());
    let result = if args.wait_bridges {
        wait_bridges(&system, &paths)
    } else if args.raise_limits {
        raise_limits(&system, &paths)
    } else {
        run_here(&system, &paths, &mut Output::new(args.json))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("srvctl-regenerate", args.json),
    }
}

/// `srvctl-regenerate --raise-limits`: a value that cannot be raised is reported, not an
/// error (the install goes on; regenerate tries again at every run).
fn raise_limits(system: &dyn System, paths: &Paths) -> Result<(), Failure> {
    use crate::containers::limits;
    let state = crate::store::read(system, paths)?;
    let current = limits::read_current(system, paths);
    let wanted = limits::limits(limits::containers_of(&state, &system.hostname()), &current);
    let done = limits::raise(system, paths, &wanted);
    for line in &done.raised {
        eprintln!("srvctl-regenerate: raised {line}");
    }
    for line in &done.failed {
        eprintln!("srvctl-regenerate: note: {line}");
    }
    Ok(())
}

/// `srvctl-regenerate --wait-bridges`: never fails the boot; a missing bridge is reported.
fn wait_bridges(system: &dyn System, paths: &Paths) -> Result<(), Failure> {
    let state = crate::store::read(system, paths)?;
    let missing =
        regenerate::wait_for_bridges(system, &state, &system.hostname(), regenerate::BRIDGE_WAIT);
    if !missing.is_empty() {
        eprintln!(
            "srvctl-regenerate: bridges still missing: {} (see networkctl status)",
            missing.join(", ")
        );
    }
    Ok(())
}
