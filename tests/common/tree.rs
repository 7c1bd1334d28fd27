//! Snapshots of the files under a directory: their bytes and link targets ([`tree`]), their
//! metadata ([`walk`]), and stamps that tell whether a file was touched at all ([`stamps`]).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What is at a path, as far as the tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Link(PathBuf),
}

/// Every file and link under `dir` (not following links), by path relative to `dir`.
/// Directories are not listed; a missing `dir` is empty.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for (rel, meta) in walk(dir) {
        let path = dir.join(&rel);
        let node = if meta.file_type().is_symlink() {
            Node::Link(std::fs::read_link(&path).expect("read link"))
        } else if meta.is_file() {
            Node::File(std::fs::read(&path).expect("read file"))
        } else {
            continue;
        };
        out.insert(rel, node);
    }
    out
}

/// Every entry under `dir` (directories included, links not followed) with its metadata, by
/// path relative to `dir`. A missing `dir` is empty.
pub fn walk(dir: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    fn go(base: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, std::fs::Metadata>) {
        let Ok(entries) = std::fs::read_dir(base.join(rel)) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let rel = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(base.join(&rel)).expect("lstat");
            let is_dir = meta.is_dir();
            out.insert(rel.clone(), meta);
            if is_dir {
                go(base, &rel, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, Path::new(""), &mut out);
    out
}

/// Identity of a file for "was it touched?": inode, size, mtime and ctime (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Stamps of every file and link (not directory) under each of `dirs`, by full path.
pub fn stamps(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let meta = std::fs::symlink_metadata(dir);
        let entries: Vec<(PathBuf, std::fs::Metadata)> = match meta {
            Ok(m) if !m.is_dir() => vec![(dir.clone(), m)],
            Ok(_) => walk(dir)
                .into_iter()
                .map(|(rel, m)| (dir.join(rel), m))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (path, m) in entries {
            if m.is_dir() {
                continue;
            }
            out.insert(
                path,
                Stamp {
                    ino: m.ino(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    ctime: (m.ctime(), m.ctime_nsec()),
                },
            );
        }
    }
    out
}
