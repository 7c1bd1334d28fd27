//! The systemd generator: datastore in, unit links and drop-ins out, in milliseconds.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cluster::Clusters;
use crate::paths::Paths;
use crate::render::generator::render;
use crate::render::templates::Templates;
use crate::render::tree::{Entry, Tree};
use crate::store;

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
pub fn generate(paths: &Paths, hostname: &str, out: &Path) -> io::Result<Generated> {
    let mut warnings = Vec::new();
    let state = store::read(paths)
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
    let clusters = match Clusters::load(&paths.clusters()) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("no host mesh: {e}"));
            Clusters::default()
        }
    };
    let templates = Templates::load(Some(&paths.host("/etc/srvctl/templates")))
        .or_else(|e| {
            warnings.push(format!("{e}; using the built-in templates"));
            Templates::load(None)
        })
        .map_err(io::Error::other)?;
    let tree = render(&state, &clusters, hostname, &templates).map_err(io::Error::other)?;
    write_fresh(out, &tree)?;
    Ok(Generated {
        entries: tree.len(),
        warnings,
    })
}

/// Write `tree` into the fresh directory `base` as fast as possible: no temp files and no
/// fsync (generator output lives on tmpfs and is rebuilt at every daemon-reload).
pub fn write_fresh(base: &Path, tree: &Tree) -> io::Result<()> {
    let mut made: HashSet<PathBuf> = HashSet::new();
    for (path, entry) in tree.entries() {
        let real = base.join(path);
        if let Some(dir) = real.parent()
            && !made.contains(dir)
        {
            fs::create_dir_all(dir)?;
            made.insert(dir.to_owned());
        }
        let result = match entry {
            Entry::File { bytes, .. } | Entry::Block { bytes } => fs::write(&real, bytes),
            Entry::Link { target } => std::os::unix::fs::symlink(target, &real).or_else(|e| {
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
                fs::remove_file(&real)?;
                std::os::unix::fs::symlink(target, &real)
            }),
        };
        result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", real.display())))?;
    }
    Ok(())
}

/// The generator's entry point: `srvctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`. Reads
/// `SRVCTL_ROOT` and `SRVCTL_HOSTNAME` like `sc`.
pub fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: srvctl-generator NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return ExitCode::from(2);
    };
    let paths = std::env::var_os("SRVCTL_ROOT")
        .map(Paths::rooted)
        .unwrap_or_else(Paths::system);
    match generate(&paths, &crate::system::hostname(), &out) {
        Ok(g) => {
            for w in &g.warnings {
                eprintln!("srvctl-generator: {}", w.replace('\n', "\\n"));
            }
        }
        Err(e) => eprintln!("srvctl-generator: {e}; containers of srvctl will not start at boot"),
    }
    ExitCode::SUCCESS
}
