//! The real system: the file system, and systemd over D-Bus.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::systemd::{self, Request, SystemdError, UnitState};
use super::{CommandLine, FileStamp, System};

/// The machine. With `dry_systemd`, systemd requests are printed to stderr instead of sent
/// (used under `--root`).
#[derive(Debug, Default)]
pub struct Local {
    dry_systemd: bool,
}

impl Local {
    /// The machine; `dry_systemd` prints systemd requests instead of sending them.
    pub fn new(dry_systemd: bool) -> Self {
        Self { dry_systemd }
    }
}

fn missing_ok<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

fn parent_dirs(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

impl System for Local {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        missing_ok(fs::read(path))
    }

    fn stamp(&self, path: &Path) -> io::Result<Option<FileStamp>> {
        use std::os::unix::fs::MetadataExt;
        let nanos =
            |secs: i64, nsecs: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsecs);
        Ok(missing_ok(fs::metadata(path))?.map(|m| FileStamp {
            inode: m.ino(),
            len: m.len(),
            modified: nanos(m.mtime(), m.mtime_nsec()),
            changed: nanos(m.ctime(), m.ctime_nsec()),
        }))
    }

    fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        match fs::read_link(path) {
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(None),
            other => missing_ok(other),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
        parent_dirs(path)?;
        let tmp = temp_beside(path);
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(bytes)?;
            if durable {
                f.sync_all()?;
            }
            fs::rename(&tmp, path)?;
            if durable && let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        let f = fs::File::open(path)?;
        nix::unistd::syncfs(&f).map_err(io::Error::from)
    }

    fn symlink(&self, path: &Path, target: &Path) -> io::Result<()> {
        parent_dirs(path)?;
        let tmp = temp_beside(path);
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        fs::rename(&tmp, path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        missing_ok(fs::remove_file(path)).map(drop)
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    fn remove_empty_dir(&self, path: &Path) -> io::Result<()> {
        match fs::remove_dir(path) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn remove_tree(&self, path: &Path) -> io::Result<()> {
        missing_ok(fs::remove_dir_all(path)).map(drop)
    }

    fn interface_exists(&self, name: &str) -> bool {
        self.dry_systemd || Path::new("/sys/class/net").join(name).exists()
    }

    fn run(&self, command: &CommandLine) -> io::Result<()> {
        let out = std::process::Command::new(&command.program)
            .args(&command.args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", command.program)))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The last three lines: tools such as `haproxy -c` print the cause before a summary.
        let mut tail: Vec<&str> = stderr
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect();
        tail.reverse();
        let last = tail.join(" / ");
        Err(io::Error::other(format!(
            "`{command}` failed ({}): {last}",
            out.status
        )))
    }

    fn unit_states(&self, pattern: &str) -> Result<Vec<UnitState>, SystemdError> {
        if self.dry_systemd {
            return Ok(Vec::new());
        }
        systemd::unit_states(pattern)
    }

    fn systemd(&self, request: &Request) -> Result<(), SystemdError> {
        if self.dry_systemd {
            eprintln!("would ask systemd: {request}");
            return Ok(());
        }
        systemd::send(request)
    }
}
