//! The plan step: compare a rendered tree with what is on disk and list what must change, and
//! which services must then reload. Pure apart from reading through [`System`].

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::render::generator::mesh_unit;
use crate::render::hosts_file;
use crate::render::tree::{Entry, Tree};
use crate::system::{Request, System};

/// One change to make, at a path relative to the base directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a whole file.
    Write {
        /// Where.
        path: PathBuf,
        /// What.
        bytes: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// Make a symbolic link.
    Link {
        /// Where.
        path: PathBuf,
        /// Pointing to.
        target: PathBuf,
    },
    /// Remove a file this program generated earlier.
    Remove {
        /// Where.
        path: PathBuf,
    },
}

impl Op {
    /// The path the change is at.
    pub fn path(&self) -> &Path {
        match self {
            Self::Write { path, .. } | Self::Link { path, .. } | Self::Remove { path } => path,
        }
    }
}

/// Everything that must change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changes, in path order, removals last.
    pub ops: Vec<Op>,
    /// How many entries already were as wanted.
    pub unchanged: usize,
    /// The services to reload afterwards, each once.
    pub reloads: Vec<Request>,
    /// The paths owned after the change: every whole file and link of the tree.
    pub manifest: BTreeSet<PathBuf>,
}

/// Whether a file at `path` (relative to the host root) must survive a crash: files on the
/// volatile /run are rebuilt at every boot, so they are not fsynced.
pub fn is_durable(path: &Path) -> bool {
    !path.starts_with("run")
}

/// Compare `tree` with the files under `base`. `previous` lists the paths generated last time;
/// those no longer in the tree are removed, and nothing else ever is.
pub fn plan(
    tree: &Tree,
    base: &Path,
    previous: &BTreeSet<PathBuf>,
    system: &dyn System,
) -> io::Result<Changes> {
    let mut changes = Changes::default();
    for (path, entry) in tree.entries() {
        let real = base.join(path);
        let op = match entry {
            Entry::File { bytes, mode } => {
                (system.read(&real)?.as_deref() != Some(bytes.as_slice())).then(|| Op::Write {
                    path: path.to_path_buf(),
                    bytes: bytes.clone(),
                    mode: *mode,
                })
            }
            Entry::Link { target } => {
                (system.read_link(&real)?.as_deref() != Some(target.as_path())).then(|| Op::Link {
                    path: path.to_path_buf(),
                    target: target.clone(),
                })
            }
            Entry::Block { bytes } => {
                let current = system.read(&real)?.unwrap_or_default();
                let spliced = hosts_file::splice(&current, bytes);
                (spliced != current).then(|| Op::Write {
                    path: path.to_path_buf(),
                    bytes: spliced,
                    mode: 0o644,
                })
            }
        };
        if !matches!(entry, Entry::Block { .. }) {
            changes.manifest.insert(path.to_path_buf());
        }
        match op {
            Some(op) => changes.ops.push(op),
            None => changes.unchanged += 1,
        }
    }
    for path in previous.difference(&changes.manifest) {
        changes.ops.push(Op::Remove { path: path.clone() });
    }
    for op in &changes.ops {
        if let Some(request) = reload_for(op.path())
            && !changes.reloads.contains(&request)
        {
            changes.reloads.push(request);
        }
    }
    Ok(changes)
}

/// The reload a change at `path` needs, if any. .nspawn files and userdb records are read
/// when used, so they need none.
fn reload_for(path: &Path) -> Option<Request> {
    if path.starts_with("run/systemd/network") {
        return Some(Request::ReloadNetworkd);
    }
    if crate::render::haproxy::is_haproxy_path(path) {
        return Some(Request::Reload(crate::render::haproxy::UNIT.into()));
    }
    let rest = path.strip_prefix(crate::render::mesh::CONFIG_DIR).ok()?;
    let instance = match rest.to_str()?.strip_suffix(".conf") {
        Some(client) if client.starts_with("client-") => client.to_owned(),
        _ => "server".to_owned(),
    };
    Some(Request::TryRestart(mesh_unit(&instance)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn plans_writes_removals_and_reloads() {
        let sys = Recording::default();
        let base = Path::new("/r");
        let mut tree = Tree::default();
        tree.file("run/systemd/network/50-x.network", "a".into());
        tree.file("run/srvctl/openvpn/client-2.conf", "b".into());
        tree.link("run/userdb/1.user", "x.user");
        let previous: BTreeSet<PathBuf> =
            [PathBuf::from("run/old"), PathBuf::from("run/userdb/1.user")].into();
        let c = plan(&tree, base, &previous, &sys).unwrap();
        assert_eq!(c.ops.len(), 4);
        assert_eq!(
            c.ops.last().unwrap(),
            &Op::Remove {
                path: "run/old".into()
            }
        );
        assert_eq!(
            c.reloads,
            vec![
                Request::TryRestart("srvctl-mesh@client-2.service".into()),
                Request::ReloadNetworkd
            ]
        );
        sys.write(
            &base.join("run/systemd/network/50-x.network"),
            b"a",
            0o644,
            false,
        )
        .unwrap();
        let c = plan(&tree, base, &c.manifest, &sys).unwrap();
        assert_eq!((c.ops.len(), c.unchanged), (2, 1));
        assert!(!c.reloads.contains(&Request::ReloadNetworkd));
        assert!(!is_durable(Path::new("run/x")) && is_durable(Path::new("etc/hosts")));
    }
}
