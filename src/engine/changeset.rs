//! The plan step: compare each module's rendered tree with what is on disk and list what must
//! change, and which services must then reload. Pure apart from reading through [`System`].

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::engine::registry::Module;
use crate::engine::tree::{Entry, Tree};
use crate::mesh::hosts_file;
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

/// Everything that must change in one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changes, in order: writes and links by path, then removals.
    pub ops: Vec<Op>,
    /// Entries already right.
    pub unchanged: usize,
    /// The paths owned after the change: every whole file and link of the tree.
    pub manifest: BTreeSet<PathBuf>,
}

/// One module's part of a [`Plan`].
pub struct Part {
    /// The module.
    pub module: &'static dyn Module,
    /// What it rendered.
    pub tree: Tree,
    /// The paths of this module that the last run generated.
    pub previous: BTreeSet<PathBuf>,
    /// What must change for it.
    pub changes: Changes,
}

impl Part {
    /// Leave every change of this module out: its old files stay as they are, and stay owned.
    pub fn refuse(&mut self) {
        self.changes.ops.clear();
        self.changes.manifest = self.previous.clone();
    }
}

/// What must change on the host, module by module.
#[derive(Default)]
pub struct Plan {
    /// One part per module, in registry order.
    pub parts: Vec<Part>,
}

impl Plan {
    /// Every change with its module, in one order: writes and links by path, then removals by
    /// path.
    pub fn ops(&self) -> Vec<(&'static dyn Module, &Op)> {
        let mut ops: Vec<(&'static dyn Module, &Op)> = self
            .parts
            .iter()
            .flat_map(|p| p.changes.ops.iter().map(|op| (p.module, op)))
            .collect();
        ops.sort_by(|(_, a), (_, b)| in_order(a, b));
        ops
    }

    /// The reloads the changes need, each once, in the order of the changes that need them.
    pub fn reloads(&self) -> Vec<Request> {
        self.reloads_except(&[])
    }

    /// The reloads the changes need, as [`Plan::reloads`], but none for the modules named in
    /// `live` (their running services took the changes as they are).
    pub fn reloads_except(&self, live: &[&str]) -> Vec<Request> {
        let mut out = Vec::new();
        for (module, op) in self.ops() {
            if live.contains(&module.name()) {
                continue;
            }
            let requests = match op {
                Op::Remove { path } => module.removal_reloads(&[path]),
                _ => module.reloads(&[op.path()]),
            };
            for request in requests {
                if !out.contains(&request) {
                    out.push(request);
                }
            }
        }
        out
    }

    /// The paths owned after the change, of every module.
    pub fn manifest(&self) -> BTreeSet<PathBuf> {
        self.parts
            .iter()
            .flat_map(|p| p.changes.manifest.iter().cloned())
            .collect()
    }

    /// How many entries were already right.
    pub fn unchanged(&self) -> usize {
        self.parts.iter().map(|p| p.changes.unchanged).sum()
    }
}

/// Writes and links before removals; writes by path as the tree orders them (bytes), removals
/// by path as the manifest orders them (components).
fn in_order(a: &Op, b: &Op) -> Ordering {
    match (a, b) {
        (Op::Remove { path: x }, Op::Remove { path: y }) => x.cmp(y),
        (Op::Remove { .. }, _) => Ordering::Greater,
        (_, Op::Remove { .. }) => Ordering::Less,
        _ => a.path().as_os_str().cmp(b.path().as_os_str()),
    }
}

/// Plan every module's rendered tree under `base`. `previous` lists the paths generated last
/// time, of every module; each module removes only its own.
pub fn plan_modules(
    rendered: Vec<(&'static dyn Module, Tree)>,
    base: &Path,
    previous: &BTreeSet<PathBuf>,
    system: &dyn System,
) -> io::Result<Plan> {
    let parts = rendered
        .into_iter()
        .map(|(module, tree)| {
            let previous: BTreeSet<PathBuf> = previous
                .iter()
                .filter(|p| module.owns(p))
                .cloned()
                .collect();
            let changes = plan(module, &tree, base, &previous, system)?;
            Ok(Part {
                module,
                tree,
                previous,
                changes,
            })
        })
        .collect::<io::Result<_>>()?;
    Ok(Plan { parts })
}

/// Whether a file at `path` (relative to the host root) must survive a crash: files on the
/// volatile /run are rebuilt at every boot, so they are not fsynced.
pub fn is_durable(path: &Path) -> bool {
    !path.starts_with("run")
}

/// Compare `tree`, rendered by `module`, with the files under `base`; each file is first
/// settled against the live one ([`Module::settle`]). `previous` lists the paths generated last
/// time; those no longer in the tree are removed, and nothing else ever is.
pub fn plan(
    module: &dyn Module,
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
                let live = system.read(&real)?;
                let settled = module.settle(path, bytes, live.as_deref());
                let bytes = settled.as_deref().unwrap_or(bytes);
                (live.as_deref() != Some(bytes)).then(|| Op::Write {
                    path: path.to_path_buf(),
                    bytes: bytes.to_vec(),
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
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn plans_writes_removals_and_reloads() {
        use crate::accounts::userdb::Accounts;
        use crate::containers::render::Containers;
        use crate::mesh::openvpn::Mesh;
        let sys = Recording::default();
        let base = Path::new("/r");
        let mut bridges = Tree::default();
        bridges.file("run/systemd/network/50-x.network", "a".into());
        let mut tunnels = Tree::default();
        tunnels.file("run/srvctl/openvpn/client-2.conf", "b".into());
        let mut accounts = Tree::default();
        accounts.link("run/userdb/1.user", "x.user");
        let rendered = || -> Vec<(&'static dyn Module, Tree)> {
            vec![
                (&Containers, bridges.clone()),
                (&Accounts, accounts.clone()),
                (&Mesh, tunnels.clone()),
            ]
        };
        let previous: BTreeSet<PathBuf> = [
            PathBuf::from("run/userdb/old"),
            PathBuf::from("run/userdb/1.user"),
        ]
        .into();
        let p = plan_modules(rendered(), base, &previous, &sys).unwrap();
        let ops = p.ops();
        assert_eq!(ops.len(), 4);
        let (owner, last) = ops.last().unwrap();
        assert_eq!(owner.name(), "accounts");
        assert_eq!(
            *last,
            &Op::Remove {
                path: "run/userdb/old".into()
            }
        );
        assert_eq!(
            p.reloads(),
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
        let p = plan_modules(rendered(), base, &p.manifest(), &sys).unwrap();
        assert_eq!((p.ops().len(), p.unchanged()), (2, 1));
        assert!(!p.reloads().contains(&Request::ReloadNetworkd));
        assert!(!is_durable(Path::new("run/x")) && is_durable(Path::new("etc/hosts")));
    }
}
