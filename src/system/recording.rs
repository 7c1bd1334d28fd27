//! An in-memory system for tests: files in a map, systemd requests in a log.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::systemd::{Request, SystemdError, UnitState};
use super::{
    Btrfs, CommandLine, FileKind, FileLock, FileStamp, Finished, Fresh, LockKind, Ownership,
    Program, System,
};

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
    /// What `unit_states` answers, besides the units started through it.
    pub units: Vec<UnitState>,
    /// Units started (or restarted) through it and not stopped since, which `unit_states`
    /// answers as active unless `units` lists them.
    pub started: RefCell<BTreeSet<String>>,
    /// Jobs that end badly: the unit, and the result its start, stop or restart job ends
    /// with (`failed`, `dependency`, `timeout`, `canceled`).
    pub failing_jobs: BTreeMap<String, String>,
    /// Programs that fail: the program, and the last line of its standard error.
    pub failing_programs: BTreeMap<String, String>,
    /// The owner (uid, gid) of every directory made by `create_owned_dir`, and of files a
    /// test says are not root's (every other path is root's).
    pub owners: RefCell<BTreeMap<PathBuf, (u32, u32)>>,
    /// Every lock taken, in order.
    pub locks: RefCell<Vec<(PathBuf, LockKind)>>,
    /// What the clock says.
    pub clock: Clock,
    /// The environment.
    pub environment: BTreeMap<String, OsString>,
    /// What `hostname` answers.
    pub hostname: String,
    /// Every notification to the service manager, in order.
    pub notifications: RefCell<Vec<String>>,
    /// What `exchange` and `capture` print, per program.
    pub answers: BTreeMap<String, Vec<u8>>,
    /// What `exchange` and `run_program` were given, in order.
    pub exchanged: RefCell<Vec<Vec<u8>>>,
    /// Programs that `run_program` finds still running at their time limit.
    pub hanging_programs: BTreeSet<String>,
    /// What `free_space` answers: (free, size) in bytes; by default half of 100 GB free.
    pub space: Option<(u64, u64)>,
    /// The sockets `ask_socket` reaches (any other path refuses the connection), each with
    /// its answers by the request's first line; a request not listed gets an empty answer.
    pub sockets: BTreeMap<PathBuf, BTreeMap<String, Vec<u8>>>,
    /// What `ask_socket` sent, in order: the socket and the request.
    pub asked: RefCell<Vec<(PathBuf, Vec<u8>)>>,
}

/// The recording system's clock: it stands still, by default at [`Clock::START`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock(pub Timestamp);

impl Clock {
    /// Where the clock stands by default: 2026-01-01T00:00:00Z.
    pub const START: Timestamp = Timestamp::constant(1_767_225_600, 0);
}

impl Default for Clock {
    fn default() -> Self {
        Self(Self::START)
    }
}

impl Recording {
    /// Every program run so far, as its command line.
    pub fn command_lines(&self) -> Vec<String> {
        self.commands
            .borrow()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn file_kind(&self, path: &Path) -> Option<FileKind> {
        let nodes = self.nodes.borrow();
        match nodes.get(path) {
            Some(Node::File(..)) => Some(FileKind::File),
            Some(Node::Dir(_)) => Some(FileKind::Dir),
            Some(Node::Link(_)) => None,
            // A directory made implicitly by writing below it.
            None => nodes
                .keys()
                .any(|p| p != path && p.starts_with(path))
                .then_some(FileKind::Dir),
        }
    }
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

    fn write_fresh(&self, path: &Path, content: Fresh<'_>) -> io::Result<()> {
        match content {
            Fresh::Dir => self.create_dir(path, 0o755),
            Fresh::File(bytes) => self.write(path, bytes, 0o644, false),
            Fresh::Link(target) => self.symlink(path, target),
        }
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

    fn create_owned_dir(&self, path: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<bool> {
        if self.nodes.borrow().contains_key(path) || self.file_kind(path).is_some() {
            return Ok(false);
        }
        self.create_dir(path, mode)?;
        self.owners.borrow_mut().insert(path.to_owned(), (uid, gid));
        Ok(true)
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
        match self.failing_programs.get(&command.program) {
            Some(stderr) => Err(io::Error::other(format!("`{command}` failed: {stderr}"))),
            None => Ok(()),
        }
    }

    fn unit_states(&self, pattern: &str) -> Result<Vec<UnitState>, SystemdError> {
        let prefix = pattern.trim_end_matches('*');
        let started = self.started.borrow();
        let running = started
            .iter()
            .filter(|name| !self.units.iter().any(|u| &u.name == *name))
            .map(|name| UnitState {
                name: name.clone(),
                active: "active".into(),
                sub: "running".into(),
                since_usec: 0,
            });
        Ok(self
            .units
            .iter()
            .cloned()
            .chain(running)
            .filter(|u| u.name.starts_with(prefix))
            .collect())
    }

    fn systemd(&self, request: &Request) -> Result<(), SystemdError> {
        self.requests.borrow_mut().push(request.clone());
        match request {
            Request::Start(unit) | Request::Stop(unit) | Request::Restart(unit) => {
                if let Some(result) = self.failing_jobs.get(unit) {
                    return super::systemd::job_outcome(request, unit, result);
                }
                let mut started = self.started.borrow_mut();
                if matches!(request, Request::Stop(_)) {
                    started.remove(unit);
                } else {
                    started.insert(unit.clone());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn kind(&self, path: &Path) -> Option<FileKind> {
        let target = match self.nodes.borrow().get(path) {
            Some(Node::Link(target)) => path.parent().unwrap_or(path).join(target),
            _ => path.to_owned(),
        };
        self.file_kind(&target)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let names: BTreeSet<OsString> = self
            .nodes
            .borrow()
            .keys()
            .filter_map(|p| p.strip_prefix(path).ok()?.iter().next().map(Into::into))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.writes.borrow_mut().push(to.to_owned());
        let mut nodes = self.nodes.borrow_mut();
        let moved: Vec<PathBuf> = nodes
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        if moved.is_empty() {
            return Err(io::ErrorKind::NotFound.into());
        }
        for old in moved {
            let node = nodes.remove(&old).expect("listed above");
            let rest = old.strip_prefix(from).expect("listed above");
            nodes.insert(to.join(rest), node);
        }
        Ok(())
    }

    fn append(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.writes.borrow_mut().push(path.to_owned());
        let mut nodes = self.nodes.borrow_mut();
        match nodes.get_mut(path) {
            Some(Node::File(old, _)) => old.extend_from_slice(bytes),
            _ => {
                nodes.insert(path.to_owned(), Node::File(bytes.to_vec(), mode));
            }
        }
        Ok(())
    }

    fn lock(&self, path: &Path, how: LockKind) -> io::Result<FileLock> {
        self.locks.borrow_mut().push((path.to_owned(), how));
        Ok(FileLock::new(()))
    }

    fn btrfs(&self, _path: &Path) -> Btrfs {
        Btrfs::No
    }

    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(())
    }

    fn now(&self) -> Timestamp {
        self.clock.0
    }

    fn monotonic(&self) -> Duration {
        Duration::ZERO
    }

    fn env(&self, name: &str) -> Option<OsString> {
        self.environment.get(name).cloned()
    }

    fn hostname(&self) -> String {
        self.hostname.clone()
    }

    fn run_lines(&self, command: &CommandLine, _line: &mut dyn FnMut(&str)) -> io::Result<()> {
        self.run(command)
    }

    fn exchange(&self, command: &CommandLine, input: &[u8]) -> io::Result<Vec<u8>> {
        self.run(command)?;
        self.exchanged.borrow_mut().push(input.to_vec());
        Ok(self
            .answers
            .get(&command.program)
            .cloned()
            .unwrap_or_default())
    }

    fn ask_socket(&self, path: &Path, request: &[u8], _timeout: Duration) -> io::Result<Vec<u8>> {
        let answers = self.sockets.get(path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("{}: nothing listens there", path.display()),
            )
        })?;
        self.asked
            .borrow_mut()
            .push((path.to_path_buf(), request.to_vec()));
        let text = String::from_utf8_lossy(request);
        let first = text.lines().next().unwrap_or_default();
        Ok(answers.get(first).cloned().unwrap_or_default())
    }

    fn interact(&self, command: &CommandLine) -> io::Result<Option<i32>> {
        self.run(command).map(|()| Some(0))
    }

    fn run_program(&self, program: &Program<'_>) -> io::Result<Finished> {
        self.exchanged.borrow_mut().push(program.input.to_vec());
        if self.hanging_programs.contains(&program.command.program) {
            self.commands.borrow_mut().push(program.command.clone());
            return Ok(Finished {
                timed_out: true,
                ..Finished::default()
            });
        }
        Ok(match self.run(program.command) {
            Err(_) => Finished {
                code: Some(1),
                stderr: self.failing_programs[&program.command.program]
                    .clone()
                    .into_bytes(),
                ..Finished::default()
            },
            Ok(()) => Finished {
                code: Some(0),
                stdout: self
                    .answers
                    .get(&program.command.program)
                    .cloned()
                    .unwrap_or_default(),
                ..Finished::default()
            },
        })
    }

    fn ownership(&self, path: &Path) -> io::Result<Option<Ownership>> {
        let mode = match self.nodes.borrow().get(path) {
            Some(Node::File(_, mode) | Node::Dir(mode)) => *mode,
            Some(Node::Link(_)) => 0o777,
            None if self.file_kind(path) == Some(FileKind::Dir) => 0o755,
            None => return Ok(None),
        };
        let (uid, gid) = self.owners.borrow().get(path).copied().unwrap_or((0, 0));
        Ok(Some(Ownership { uid, gid, mode }))
    }

    /// Every file in memory was written at the clock's time.
    fn modified(&self, path: &Path) -> io::Result<Option<Timestamp>> {
        let there = self.nodes.borrow().contains_key(path) || self.file_kind(path).is_some();
        Ok(there.then_some(self.clock.0))
    }

    fn free_space(&self, _path: &Path) -> io::Result<(u64, u64)> {
        Ok(self.space.unwrap_or((50_000_000_000, 100_000_000_000)))
    }

    fn capture(&self, command: &CommandLine) -> io::Result<(Option<i32>, Vec<u8>)> {
        if self.run(command).is_err() {
            return Ok((Some(1), Vec::new()));
        }
        let stdout = self.answers.get(&command.program).cloned();
        Ok((Some(0), stdout.unwrap_or_default()))
    }

    fn exec(&self, command: &CommandLine) -> io::Error {
        self.commands.borrow_mut().push(command.clone());
        io::Error::other(format!("{}: recorded, not run", command.program))
    }

    fn notify(&self, assignments: &str) {
        self.notifications.borrow_mut().push(assignments.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_listings_and_renames_follow_the_files_in_memory() {
        let system = Recording::default();
        let file = Path::new("/r/a/b/file");
        system.write(file, b"x", 0o644, false).unwrap();
        system
            .symlink(Path::new("/r/link"), Path::new("a/b"))
            .unwrap();
        assert_eq!(system.kind(file), Some(FileKind::File));
        assert_eq!(system.kind(Path::new("/r/a")), Some(FileKind::Dir));
        assert_eq!(system.kind(Path::new("/r/link")), Some(FileKind::Dir));
        assert_eq!(system.kind(Path::new("/r/none")), None);
        assert_eq!(system.list_dir(Path::new("/r")).unwrap(), ["a", "link"]);
        system.rename(Path::new("/r/a"), Path::new("/r/c")).unwrap();
        assert_eq!(
            system.read(Path::new("/r/c/b/file")).unwrap(),
            Some(b"x".to_vec())
        );
        assert_eq!(system.kind(Path::new("/r/a")), None);
        assert!(system.rename(Path::new("/r/a"), Path::new("/r/d")).is_err());
    }
}
