//! The one small interface through which srvctl touches the machine: files, processes,
//! systemd, the clock, the environment and the host name.
//!
//! [`Local`] is the real thing, built once by each program's entry point and handed down as
//! `&dyn System`; [`Recording`] keeps files in memory and records systemd calls, so the logic
//! above it is tested without root. The crate's `clippy.toml` makes every other way to the
//! machine a lint error outside this module.

// This module is the one place allowed to reach the machine directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod journal;
mod local;
pub mod paths;
mod recording;
pub mod socket;
pub mod systemd;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

pub use local::Local;
pub use recording::{Clock, Node, Recording};
pub use systemd::Request;

/// The installed program `name`: the first file of that name on `PATH`, then in `/usr/sbin`
/// and `/usr/local/sbin` (where checkers such as haproxy and named-checkzone live, often
/// outside a service's `PATH`).
pub fn program(system: &dyn System, name: &str) -> Option<PathBuf> {
    let path = system.env("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join(name))
        .find(|p| system.kind(p) == Some(FileKind::File))
}

/// What srvctl asks of the machine. Paths are real paths (already re-rooted).
pub trait System: fmt::Debug {
    /// The bytes of a file, or `None` if it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// A stamp of a file that changes whenever the file is written or replaced, or `None` if
    /// it does not exist: cheaper than reading it, to tell whether it changed since.
    fn stamp(&self, path: &Path) -> io::Result<Option<FileStamp>>;
    /// The target of a symbolic link, or `None` if there is no link.
    fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>>;
    /// Replace a file atomically (creating parent directories). `durable` files are fsynced;
    /// files on volatile storage (/run) need not be.
    fn write(&self, path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()>;
    /// Flush everything written to the file system that holds `path` (syncfs): one call
    /// makes a batch of non-durable writes durable.
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
    /// Create a file, link or directory in a directory being filled afresh, as fast as
    /// possible: in place, without a temp file or fsync (an existing link is replaced). The
    /// directory of a file or link must exist.
    fn write_fresh(&self, path: &Path, content: Fresh<'_>) -> io::Result<()>;
    /// Replace a symbolic link atomically.
    fn symlink(&self, path: &Path, target: &Path) -> io::Result<()>;
    /// Remove a file or link; a missing one is fine.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Create a directory (and its parents) with `mode` for the last one.
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Create the directory `path` (its parent must exist) with `mode`, owned by `uid`:`gid`,
    /// unless something is there already (a directory, a file, a link): that is left exactly
    /// as it is, never followed, chowned or changed. Returns whether it was created.
    fn create_owned_dir(&self, path: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<bool>;
    /// Remove a directory if it is empty; a missing or non-empty one is left as it is.
    fn remove_empty_dir(&self, path: &Path) -> io::Result<()>;
    /// Remove a directory tree; a missing one is fine.
    fn remove_tree(&self, path: &Path) -> io::Result<()>;
    /// Whether a network interface of that name exists (always true under a scratch root).
    fn interface_exists(&self, name: &str) -> bool;
    /// Run a program to completion; a non-zero exit is an error carrying its stderr.
    fn run(&self, command: &CommandLine) -> io::Result<()>;
    /// Ask systemd for something. Under a scratch root this prints what would be asked.
    fn systemd(&self, request: &Request) -> Result<(), systemd::SystemdError>;
    /// The state of every loaded unit whose name matches `pattern` (a glob), asked in one
    /// call; the time a unit entered its state only when `pattern` names that one unit. Under
    /// a scratch root there is no systemd to ask: the list is empty.
    fn unit_states(&self, pattern: &str) -> Result<Vec<systemd::UnitState>, systemd::SystemdError>;

    /// What is at `path` (following links), or `None` when nothing is there or it cannot be
    /// looked at.
    fn kind(&self, path: &Path) -> Option<FileKind>;
    /// The names in a directory, sorted; a missing directory has none.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// Rename a file or directory (within one file system).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Append `bytes` to a file in one write, creating it with `mode` (and its parent
    /// directories) when missing; concurrent appenders never overwrite each other.
    fn append(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
    /// Lock the file at `path` (creating it, mode 0600, and its parent directories) until the
    /// returned guard is dropped. [`LockKind::ExclusiveNow`] fails with
    /// [`io::ErrorKind::WouldBlock`] when someone else holds it.
    fn lock(&self, path: &Path, how: LockKind) -> io::Result<FileLock>;
    /// Whether `path` is on btrfs, and whether it is the root of a subvolume.
    fn btrfs(&self, path: &Path) -> Btrfs;
    /// Fill `buf` with random bytes.
    fn random(&self, buf: &mut [u8]) -> io::Result<()>;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A monotonic clock: the time since an arbitrary fixed point, for measuring how long
    /// something took.
    fn monotonic(&self) -> Duration;
    /// A variable of the environment, if set.
    fn env(&self, name: &str) -> Option<OsString>;
    /// This host's name: `SRVCTL_HOSTNAME` when set (for tests), else the system's, lower-case.
    fn hostname(&self) -> String;
    /// Run a long program, handing each line of its standard output to `line` as it comes;
    /// its standard error goes to ours. A non-zero exit is an error.
    fn run_lines(&self, command: &CommandLine, line: &mut dyn FnMut(&str)) -> io::Result<()>;
    /// Run a program with `input` on its standard input and return its standard output; its
    /// standard error goes to ours (ssh's questions and messages). A non-zero exit is an error.
    fn exchange(&self, command: &CommandLine, input: &[u8]) -> io::Result<Vec<u8>>;
    /// Run a program with this terminal (standard input, output and error passed through) and
    /// return its exit code (`None` when a signal ended it).
    fn interact(&self, command: &CommandLine) -> io::Result<Option<i32>>;
    /// Run a program with `input` on its standard input and both outputs captured, killing it
    /// (and the processes it started) when it outlives its time limit.
    fn run_program(&self, program: &Program<'_>) -> io::Result<Finished>;
    /// The owner and permission bits of what is at `path` (following links), or `None` when
    /// nothing is there.
    fn ownership(&self, path: &Path) -> io::Result<Option<Ownership>>;
    /// The modification time of what is at `path` (not following a final link), or `None`
    /// when nothing is there.
    fn modified(&self, path: &Path) -> io::Result<Option<Timestamp>>;
    /// The bytes free to unprivileged users on the file system that holds `path`, and its size.
    fn free_space(&self, path: &Path) -> io::Result<(u64, u64)>;
    /// Run a program with nothing on its standard input, its standard error going to ours;
    /// return its exit code (`None` when a signal ended it) and its standard output.
    fn capture(&self, command: &CommandLine) -> io::Result<(Option<i32>, Vec<u8>)>;
    /// Replace this process with a program (found in `PATH`), which keeps the environment,
    /// the terminal and the process's place for its parent; returns only when it could not.
    fn exec(&self, command: &CommandLine) -> io::Error;
    /// Send `request` to the stream socket at `path` (a service's control socket, such as
    /// haproxy's runtime API), end the sending half, and read the answer until the service
    /// closes the connection, all within `timeout`. Nothing listening there is an error.
    fn ask_socket(&self, path: &Path, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>>;
    /// Tell the service manager about this service (`READY=1`, `WATCHDOG=1`, `STATUS=…`, one
    /// assignment per line); nothing when no service manager listens.
    fn notify(&self, assignments: &str);
}

/// What [`System::write_fresh`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh<'a> {
    /// A file with these bytes (mode 0644 under the usual umask).
    File(&'a [u8]),
    /// A symbolic link to this target.
    Link(&'a Path),
    /// A directory, with its parents (modes as the umask leaves them).
    Dir,
}

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (a device, a socket, a fifo).
    Other,
}

/// How a path relates to btrfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Btrfs {
    /// Not on btrfs (or not there at all).
    No,
    /// On btrfs, inside a subvolume.
    Inside,
    /// The root of a btrfs subvolume.
    Subvolume,
}

/// How [`System::lock`] takes a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Shared with other shared holders, waiting for an exclusive one.
    Shared,
    /// Exclusive, waiting for every other holder.
    Exclusive,
    /// Exclusive, failing at once when anyone else holds it.
    ExclusiveNow,
}

/// A held file lock, released when dropped.
pub struct FileLock {
    _held: Box<dyn std::any::Any>,
}

impl FileLock {
    /// A lock held for as long as `held` lives.
    pub fn new(held: impl std::any::Any) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileLock")
    }
}

/// What [`System::stamp`] tells of a file: its inode, size and change times. Every write of
/// srvctl replaces the file (a new inode, new times); an edit in place changes the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    /// The inode number.
    pub inode: u64,
    /// The size in bytes.
    pub len: u64,
    /// The modification time, in nanoseconds since the epoch.
    pub modified: i64,
    /// The status change time, in nanoseconds since the epoch (not settable by a writer).
    pub changed: i64,
}

/// A program, its arguments, and variables set in its environment (besides ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to (or replaced in) the environment it inherits.
    pub env: Vec<(String, OsString)>,
}

impl CommandLine {
    /// A program with arguments.
    pub fn new(program: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Self {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    /// The same command with `vars` set in its environment.
    pub fn with_env(mut self, vars: impl IntoIterator<Item = (String, OsString)>) -> Self {
        self.env.extend(vars);
        self
    }

    /// The value this command sets for the variable `name`, if it sets one.
    pub fn env_var(&self, name: &str) -> Option<&OsString> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A program run to its end by [`System::run_program`], with its standard input given and a
/// time limit after which it is killed, with every process it started.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// The command.
    pub command: &'a CommandLine,
    /// Its whole standard input.
    pub input: &'a [u8],
    /// How long it may run.
    pub timeout: Duration,
}

/// How a [`Program`] ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code (`None`: a signal ended it, or the time limit).
    pub code: Option<i32>,
    /// Whether it ran out of time and was killed.
    pub timed_out: bool,
    /// What it printed on its standard output.
    pub stdout: Vec<u8>,
    /// What it printed on its standard error.
    pub stderr: Vec<u8>,
}

/// The owner and permission bits of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// The owning user.
    pub uid: u32,
    /// The owning group.
    pub gid: u32,
    /// The permission bits (`0o7777` of the mode).
    pub mode: u32,
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}
