//! An in-memory system for tests: files in a map, systemd requests in a log.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::systemd::{Request, SystemdError, UnitState};
use super::{CommandLine, FileStamp, System};

/// What the recording system holds at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A file, with its bytes and mode.
    File(Vec<u8>, u32),
    /// A symbolic link.
    Link(PathBuf),
    /// A directory, with its mode.
    Dir(u32),
}

/// Files in memory; systemd requests recorded.
#[derive(Debug, Default)]
pub struct Recording {
    /// Every path and what is there.
    pub nodes: RefCell<BTreeMap<PathBuf, Node>>,
    /// Every systemd request, in order.
    pub requests: RefCell<Vec<Request>>,
    /// Every write, link and removal, in order.
    pub writes: RefCell<Vec<PathBuf>>,
    /// Every program run, in order.
    pub commands: RefCell<Vec<CommandLine>>,
    /// What `unit_states` answers.
    pub units: Vec<UnitState>,
    /// Jobs that end badly: the unit, and the result its start, stop or restart job ends
    /// with (`failed`, `dependency`, `timeout`, `canceled`).
    pub failing_jobs: BTreeMap<String, String>,
}

impl System for Recording {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        Ok(match self.nodes.borrow().get(path) {
            Some(Node::File(b, _)) => Some(b.clone()),
            _ => None,
        })
    }

    /// The stamp of a file in memory: its size, with a hash of its bytes in place of the
    /// times (which the recording system does not keep).
    fn stamp(&self, path: &Path) -> io::Result<Option<FileStamp>> {
        use std::hash::{Hash, Hasher};
        Ok(match self.nodes.borrow().get(path) {
            Some(Node::File(b, _)) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                b.hash(&mut h);
                Some(FileStamp {
                    inode: 0,
                    len: b.len() as u64,
                    modified: h.finish() as i64,
                    changed: 0,
                })
            }
            _ => None,
        })
    }

    fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        Ok(match self.nodes.borrow().get(path) {
            Some(Node::Link(t)) => Some(t.clone()),
            _ => None,
        })
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32, _durable: bool) -> io::Result<()> {
        self.writes.borrow_mut().push(path.to_owned());
        self.nodes
            .borrow_mut()
            .insert(path.to_owned(), Node::File(bytes.to_vec(), mode));
        Ok(())
    }

    fn sync_fs(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn symlink(&self, path: &Path, target: &Path) -> io::Result<()> {
        self.writes.borrow_mut().push(path.to_owned());
        self.nodes
            .borrow_mut()
            .insert(path.to_owned(), Node::Link(target.to_owned()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.writes.borrow_mut().push(path.to_owned());
        self.nodes.borrow_mut().remove(path);
        Ok(())
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.nodes
            .borrow_mut()
            .insert(path.to_owned(), Node::Dir(mode));
        Ok(())
    }

    fn remove_empty_dir(&self, path: &Path) -> io::Result<()> {
        let mut nodes = self.nodes.borrow_mut();
        if !nodes.keys().any(|p| p != path && p.starts_with(path)) {
            nodes.remove(path);
        }
        Ok(())
    }

    fn remove_tree(&self, path: &Path) -> io::Result<()> {
        self.writes.borrow_mut().push(path.to_owned());
        self.nodes.borrow_mut().retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn interface_exists(&self, _name: &str) -> bool {
        true
    }

    fn run(&self, command: &CommandLine) -> io::Result<()> {
        self.commands.borrow_mut().push(command.clone());
        Ok(())
    }

    fn unit_states(&self, pattern: &str) -> Result<Vec<UnitState>, SystemdError> {
        let prefix = pattern.trim_end_matches('*');
        Ok(self
            .units
            .iter()
            .filter(|u| u.name.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn systemd(&self, request: &Request) -> Result<(), SystemdError> {
        self.requests.borrow_mut().push(request.clone());
        match request {
            Request::Start(unit) | Request::Stop(unit) | Request::Restart(unit) => {
                match self.failing_jobs.get(unit) {
                    Some(result) => super::systemd::job_outcome(request, unit, result),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
