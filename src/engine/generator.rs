//! The systemd generator: datastore in, unit links and drop-ins out, in milliseconds.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::config::cluster::Clusters;
use crate::containers::units::render;
use crate::engine::templates::Templates;
use crate::engine::tree::{Entry, Tree};
use crate::store;
use crate::system::paths::Paths;
use crate::system::{Fresh, Local, System};

/// What a run wrote.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// Entries written.
    pub entries: usize,
    /// Problems logged and skipped.
    pub warnings: Vec<String>,
}

/// Generate into `out` for host `hostname`. Only a failure to write is an error; bad data is
/// skipped with a warning.
pub fn generate(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
    out: &Path,
) -> io::Result<Generated> {
    let mut warnings = Vec::new();
    let state = store::read(system, paths)
        .unwrap_or_else(|e| {
            warnings.push(format!(
                "cannot read the datastore, no containers started: {e}"
            ));
            Default::default()
        })
        .rendered();
    for s in &state.set_aside {
        warnings.push(format!(
            "skipping {} {:?}: {}",
            s.section.key(),
            s.key,
            s.reason
        ));
    }
    let clusters = match Clusters::load(system, &paths.clusters()) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("no host mesh: {e}"));
            Clusters::default()
        }
    };
    let templates = Templates::load(system, Some(&paths.host("/etc/srvctl/templates")))
        .or_else(|e| {
            warnings.push(format!("{e}; using the built-in templates"));
            Templates::load(system, None)
        })
        .map_err(io::Error::other)?;
    let identity = crate::cluster::pki::has_identity(system, paths);
    let machines = crate::containers::rootfs::machine_names(system, paths).unwrap_or_else(|e| {
        warnings.push(format!(
            "cannot list the root filesystems ({e}); every container of this host is started at boot"
        ));
        state
            .containers
            .keys()
            .map(|n| n.as_str().into())
            .collect()
    });
    let tree = render(&state, &clusters, hostname, identity, &machines, &templates)
        .map_err(io::Error::other)?;
    write_fresh(system, out, &tree)?;
    Ok(Generated {
        entries: tree.len(),
        warnings,
    })
}

/// Write `tree` into the fresh directory `base` as fast as possible: no temp files and no
/// fsync (generator output lives on tmpfs and is rebuilt at every daemon-reload).
pub fn write_fresh(system: &dyn System, base: &Path, tree: &Tree) -> io::Result<()> {
    let mut made: HashSet<PathBuf> = HashSet::new();
    for (path, entry) in tree.entries() {
        let real = base.join(path);
        if let Some(dir) = real.parent()
            && !made.contains(dir)
        {
            system.write_fresh(dir, Fresh::Dir)?;
            made.insert(dir.to_owned());
        }
        let fresh = match entry {
            Entry::File { bytes, .. } | Entry::Block { bytes } => Fresh::File(bytes),
            Entry::Link { target } => Fresh::Link(target),
        };
        system
            .write_fresh(&real, fresh)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", real.display())))?;
    }
    Ok(())
}

/// srvctl-generator: the systemd system generator of srvctl (see systemd.generator(7)).
#[derive(Debug, Parser)]
#[command(name = "srvctl-generator", version)]
pub(crate) struct Args {
    /// Re-root every path under DIR.
    #[arg(long, env = "SRVCTL_ROOT", value_name = "DIR", hide = true)]
    root: Option<PathBuf>,
    /// Where units of normal priority go: the only directory written.
    normal_dir: PathBuf,
    /// Where early units go (not used).
    early_dir: Option<PathBuf>,
    /// Where late units go (not used).
    late_dir: Option<PathBuf>,
}

/// The generator's entry point: `srvctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`. Reads
/// `SRVCTL_ROOT` and `SRVCTL_HOSTNAME` like `sc`.
pub fn main() -> ExitCode {
    let Ok(args) = Args::try_parse() else {
        eprintln!("usage: srvctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return ExitCode::from(2);
    };
    let paths = args.root.map(Paths::rooted).unwrap_or_else(Paths::system);
    // The one machine of this run.
    let system = Local::new(paths.root().is_some());
    match generate(&system, &paths, &system.hostname(), &args.normal_dir) {
        Ok(g) => {
            for w in &g.warnings {
                eprintln!("srvctl-generator: {}", w.replace('\n', "\\n"));
            }
        }
        Err(e) => eprintln!("srvctl-generator: {e}; containers of srvctl will not start at boot"),
    }
    ExitCode::SUCCESS
}
