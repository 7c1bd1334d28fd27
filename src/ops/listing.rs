//! `sc ls [DIR]`: every file under a directory, oldest first and newest last, as srvctl 3's
//! `find . -type f -exec ls -lt {} +` showed them. Symbolic links are listed, never followed
//! (a link cannot lead the walk out of the directory or round in a loop).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use crate::system::{FileKind, System};

/// One file of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Its path, relative to the directory listed.
    pub path: PathBuf,
    /// When it was last modified.
    #[serde(serialize_with = "rfc3339")]
    pub modified: Timestamp,
    /// Its size in bytes (a link: 0).
    pub size: u64,
    /// Whether it is a symbolic link.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
}

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// The files under `dir`, oldest first (ties by path); directories that cannot be read are
/// skipped and counted in the second value.
pub fn newest_last(system: &dyn System, dir: &Path) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut unreadable = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let Ok(names) = system.list_dir(&dir.join(&rel)) else {
            unreadable += 1;
            continue;
        };
        for name in names {
            let rel = rel.join(&name);
            let path = dir.join(&rel);
            let link = matches!(system.read_link(&path), Ok(Some(_)));
            match (link, system.kind(&path)) {
                (false, Some(FileKind::Dir)) => pending.push(rel),
                (false, None) => {}
                _ => {
                    let Ok(Some(modified)) = system.modified(&path) else {
                        continue;
                    };
                    let size = match link {
                        true => 0,
                        false => system.stamp(&path).ok().flatten().map_or(0, |s| s.len),
                    };
                    entries.push(Entry {
                        path: rel,
                        modified,
                        size,
                        link,
                    });
                }
            }
        }
    }
    entries.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
    (entries, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn files_below_are_listed_and_links_not_followed() {
        let system = Recording::default();
        let dir = Path::new("/d");
        system
            .write(&dir.join("b/inner.txt"), b"12345", 0o644, false)
            .unwrap();
        system
            .write(&dir.join("a.txt"), b"1", 0o644, false)
            .unwrap();
        system.symlink(&dir.join("loop"), Path::new(".")).unwrap();
        let (entries, unreadable) = newest_last(&system, dir);
        assert_eq!(unreadable, 0);
        let paths: Vec<_> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
        // The fake's clock stands still: every file has the same time, so by path.
        assert_eq!(paths, ["a.txt", "b/inner.txt", "loop"]);
        assert_eq!(entries[1].size, 5);
        assert!(entries[2].link);
    }
}
