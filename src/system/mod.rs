//! The one small interface through which srvctl touches the machine: files and systemd.
//!
//! [`Local`] is the real thing; [`Recording`] keeps files in memory and records systemd calls,
//! so the logic above it is tested without root.

mod local;
mod recording;
pub mod systemd;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use local::Local;
pub use recording::Recording;
pub use systemd::Request;

/// What srvctl asks of the machine. Paths are real paths (already re-rooted).
pub trait System {
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
    /// Replace a symbolic link atomically.
    fn symlink(&self, path: &Path, target: &Path) -> io::Result<()>;
    /// Remove a file or link; a missing one is fine.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Create a directory (and its parents) with `mode` for the last one.
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()>;
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
    /// The state of every loaded unit whose name matches `pattern` (a glob). Under a scratch
    /// root there is no systemd to ask: the list is empty.
    fn unit_states(&self, pattern: &str) -> Result<Vec<systemd::UnitState>, systemd::SystemdError>;
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

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl CommandLine {
    /// A program with arguments.
    pub fn new(program: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Self {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
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

/// This host's name: `SRVCTL_HOSTNAME` when set (for tests), else the system's, lower-case.
pub fn hostname() -> String {
    std::env::var("SRVCTL_HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .to_ascii_lowercase()
}
