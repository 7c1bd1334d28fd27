//! Every path srvctl reads or writes, re-rooted under `--root DIR` when given.

use std::path::{Path, PathBuf};

/// Where srvctl's files live on this host, possibly under a scratch root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths {
    root: Option<PathBuf>,
}

impl Paths {
    /// The real system paths.
    pub fn system() -> Self {
        Self { root: None }
    }

    /// Every path under `root`.
    pub fn rooted(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Some(root.into()),
        }
    }

    /// The scratch root, if any. With a root, no systemd call is made.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Map an absolute host path to where it lives now.
    pub fn host(&self, absolute: &str) -> PathBuf {
        match &self.root {
            Some(root) => root.join(absolute.trim_start_matches('/')),
            None => PathBuf::from(absolute),
        }
    }

    /// The cluster definition.
    pub fn clusters(&self) -> PathBuf {
        self.host("/etc/srvctl/clusters.json")
    }

    /// The directory of the live datastore and srvctl's state.
    pub fn state_dir(&self) -> PathBuf {
        self.host("/var/lib/srvctl")
    }

    /// The datastore document.
    pub fn datastore(&self) -> PathBuf {
        self.state_dir().join("datastore.json")
    }

    /// The lock that serialises writers.
    pub fn lock(&self) -> PathBuf {
        self.state_dir().join("datastore.lock")
    }

    /// The append-only audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.state_dir().join("audit.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerooting() {
        assert_eq!(
            Paths::system().datastore(),
            Path::new("/var/lib/srvctl/datastore.json")
        );
        assert_eq!(
            Paths::rooted("/tmp/x").clusters(),
            Path::new("/tmp/x/etc/srvctl/clusters.json")
        );
    }
}
