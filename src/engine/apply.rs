//! The apply step: the only place where a plan's changes reach the machine.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::changeset::{Op, Plan, is_durable};
use crate::engine::registry::{self, Live, Module};
use crate::system::{Request, System, systemd::SystemdError};

/// What [`apply`] did besides writing.
#[derive(Debug, Default)]
pub struct Applied {
    /// The reloads sent.
    pub reloads: Vec<Request>,
    /// What each module that tried to update its running service live did.
    pub live: Vec<(&'static str, Live)>,
}

/// Applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// A module planned a change outside the paths it owns; nothing was applied.
    #[error("module {module} may not change {path:?}: it is outside the paths it owns")]
    NotOwned {
        /// The module.
        module: &'static str,
        /// The path it tried to change.
        path: PathBuf,
    },
    /// A reload failed.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
}

/// Make the changes of `plan` under `base`, record the new manifest at `manifest` (relative to
/// `base`), then send the reloads. Before the files are written, each module may bring its
/// running service to its changes without a reload ([`Module::update_live`]); those that did
/// are not reloaded. A change outside the paths of the module it belongs to is refused before
/// anything is done.
pub fn apply(
    system: &dyn System,
    base: &Path,
    plan: &Plan,
    manifest: &Path,
) -> Result<Applied, ApplyError> {
    for part in &plan.parts {
        if let Some(op) = part
            .changes
            .ops
            .iter()
            .find(|op| !part.module.owns(op.path()))
        {
            return Err(ApplyError::NotOwned {
                module: part.module.name(),
                path: op.path().to_path_buf(),
            });
        }
    }
    let live: Vec<(&'static str, Live)> = plan
        .parts
        .iter()
        .filter(|part| !part.changes.ops.is_empty())
        .filter_map(|part| {
            let live = part.module.update_live(system, base, &part.changes)?;
            Some((part.module.name(), live))
        })
        .collect();
    for (module, op) in plan.ops() {
        let real = base.join(op.path());
        let err = |e| ApplyError::Io(real.clone(), e);
        match op {
            Op::Write { path, bytes, mode } => system
                .write(&real, bytes, *mode, is_durable(path))
                .map_err(err)?,
            Op::Link { target, .. } => system.symlink(&real, target).map_err(err)?,
            Op::Remove { path } => {
                system.remove(&real).map_err(err)?;
                remove_emptied_dirs(system, base, module, path).map_err(err)?;
            }
        }
    }
    let list = manifest_text(&plan.manifest());
    let real = base.join(manifest);
    if system
        .read(&real)
        .map_err(|e| ApplyError::Io(real.clone(), e))?
        .as_deref()
        != Some(list.as_bytes())
    {
        system
            .write(&real, list.as_bytes(), 0o644, is_durable(manifest))
            .map_err(|e| ApplyError::Io(real.clone(), e))?;
    }
    let updated: Vec<&str> = live
        .iter()
        .filter(|(_, l)| matches!(l, Live::Updated(_)))
        .map(|(name, _)| *name)
        .collect();
    let reloads = plan.reloads_except(&updated);
    for request in &reloads {
        system.systemd(request)?;
    }
    Ok(Applied { reloads, live })
}

/// Remove the directories above a removed file that it leaves empty, up to (not including)
/// the directory of `module` it lies in.
fn remove_emptied_dirs(
    system: &dyn System,
    base: &Path,
    module: &dyn Module,
    removed: &Path,
) -> io::Result<()> {
    let Some(owned) = module
        .owned_dirs()
        .iter()
        .map(Path::new)
        .find(|d| removed.starts_with(d))
    else {
        return Ok(());
    };
    for dir in removed
        .ancestors()
        .skip(1)
        .take_while(|d| *d != owned && d.starts_with(owned))
    {
        system.remove_empty_dir(&base.join(dir))?;
    }
    Ok(())
}

fn manifest_text(paths: &BTreeSet<PathBuf>) -> String {
    paths.iter().map(|p| format!("{}\n", p.display())).collect()
}

/// Read a manifest written by [`apply`]; a missing one is empty. Lines that are not plain
/// relative paths owned by one of `modules` are ignored, so a damaged manifest can never make
/// srvctl remove anything else.
pub fn read_manifest(
    system: &dyn System,
    path: &Path,
    modules: &[&'static dyn Module],
) -> io::Result<BTreeSet<PathBuf>> {
    let text = system.read(path)?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(PathBuf::from)
        .filter(|p| crate::engine::tree::is_contained(p) && registry::owner(modules, p).is_some())
        .collect())
}
