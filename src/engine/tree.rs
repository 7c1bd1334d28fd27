//! A rendered tree: the files, links and managed blocks that should exist, by path.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One thing that should exist at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A whole file owned by srvctl.
    File {
        /// Its content.
        bytes: Vec<u8>,
        /// Its permission bits.
        mode: u32,
    },
    /// A symbolic link owned by srvctl.
    Link {
        /// Where it points.
        target: PathBuf,
    },
    /// srvctl's block inside a file it shares with others (e.g. `/etc/hosts`): the lines from
    /// the block's first line to its last line are replaced, the rest is kept.
    Block {
        /// The block, first and last marker lines included.
        bytes: Vec<u8>,
    },
}

/// Paths and what should be at them. Paths are relative: to a generator's output directory,
/// or to the host's root (`run/systemd/nspawn/x.nspawn`).
///
/// Keys are kept as strings: ordering plain strings is several times faster than ordering
/// paths component by component, and the generator inserts thousands of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Whether `path` is a plain relative path that stays inside its base directory.
pub fn is_contained(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
        && path.components().next().is_some()
        && !path.to_string_lossy().contains(['\n', '\r'])
}

impl Tree {
    /// Add an entry. Panics if the path could leave its base directory: every path is built
    /// from validated names, so this is a bug, never bad input.
    pub fn insert(&mut self, path: impl Into<String>, entry: Entry) {
        let path = path.into();
        assert!(
            is_contained(Path::new(&path)),
            "rendered path escapes its directory: {path:?}"
        );
        self.entries.insert(path, entry);
    }

    /// Add a file with mode 0644.
    pub fn file(&mut self, path: impl Into<String>, text: String) {
        self.insert(
            path,
            Entry::File {
                bytes: text.into_bytes(),
                mode: 0o644,
            },
        );
    }

    /// Add a symbolic link.
    pub fn link(&mut self, path: impl Into<String>, target: impl Into<PathBuf>) {
        self.insert(
            path,
            Entry::Link {
                target: target.into(),
            },
        );
    }

    /// The entries, by path.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries.iter().map(|(p, e)| (Path::new(p.as_str()), e))
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.entries.get(path.to_str()?)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        assert!(is_contained(Path::new("run/systemd/nspawn/a.nspawn")));
        for bad in ["", "/etc/passwd", "a/../../b", "./a", "a\nb"] {
            assert!(!is_contained(Path::new(bad)), "{bad:?}");
        }
    }

    #[test]
    #[should_panic(expected = "escapes")]
    fn escaping_paths_are_refused() {
        Tree::default().file("../x", String::new());
    }
}
