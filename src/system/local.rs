//! The real system: the file system, and systemd over D-Bus.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::systemd::{self, Request, SystemdError, UnitState};
use super::{
    Btrfs, CommandLine, FileKind, FileLock, FileStamp, Finished, Fresh, LockKind, Ownership,
    Program, System,
};

/// The machine. With `dry_systemd`, systemd requests are printed to stderr instead of sent
/// (used under `--root`). Each program builds one, in its entry point.
#[derive(Debug)]
pub struct Local {
    dry_systemd: bool,
    started: Instant,
}

impl Local {
    /// The machine; `dry_systemd` prints systemd requests instead of sending them.
    pub fn new(dry_systemd: bool) -> Self {
        Self {
            dry_systemd,
            started: Instant::now(),
        }
    }
}

/// The inode number of the root of every btrfs subvolume.
const BTRFS_SUBVOLUME_INODE: u64 = 256;

fn command(line: &CommandLine) -> Command {
    let mut command = Command::new(&line.program);
    command.args(&line.args);
    command.envs(line.env.iter().map(|(k, v)| (k, v)));
    command
}

/// Read all of `pipe` in a thread of its own (so that neither output can fill up and block
/// the program while we wait for the other).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn spawn_error(line: &CommandLine) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", line.program))
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

    fn write_fresh(&self, path: &Path, content: Fresh<'_>) -> io::Result<()> {
        match content {
            Fresh::Dir => fs::create_dir_all(path),
            Fresh::File(bytes) => fs::write(path, bytes),
            Fresh::Link(target) => std::os::unix::fs::symlink(target, path).or_else(|e| {
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
                fs::remove_file(path)?;
                std::os::unix::fs::symlink(target, path)
            }),
        }
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

    fn create_owned_dir(&self, path: &Path, mode: u32, uid: u32, gid: u32) -> io::Result<bool> {
        match fs::DirBuilder::new().mode(mode).create(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            other => other?,
        }
        // Made just now, by us: the mode is set past the umask, the owner without following
        // a link; a directory that cannot be handed over is not left behind.
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .and_then(|()| std::os::unix::fs::lchown(path, Some(uid), Some(gid)))
            .inspect_err(|_| {
                let _ = fs::remove_dir(path);
            })?;
        Ok(true)
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
        let out = self::command(command)
            .stdin(Stdio::null())
            .output()
            .map_err(spawn_error(command))?;
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
        systemd::send(request, |command| self.run(command))
    }

    fn kind(&self, path: &Path) -> Option<FileKind> {
        let kind = fs::metadata(path).ok()?.file_type();
        Some(if kind.is_file() {
            FileKind::File
        } else if kind.is_dir() {
            FileKind::Dir
        } else {
            FileKind::Other
        })
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let Some(entries) = missing_ok(fs::read_dir(path))? else {
            return Ok(Vec::new());
        };
        let mut names = entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn append(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        parent_dirs(path)?;
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode)
            .open(path)?
            .write_all(bytes)
    }

    fn lock(&self, path: &Path, how: LockKind) -> io::Result<FileLock> {
        parent_dirs(path)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        match how {
            LockKind::Shared => file.lock_shared()?,
            LockKind::Exclusive => file.lock()?,
            LockKind::ExclusiveNow => file.try_lock().map_err(|e| match e {
                fs::TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
                fs::TryLockError::Error(e) => e,
            })?,
        }
        Ok(FileLock::new(file))
    }

    fn btrfs(&self, path: &Path) -> Btrfs {
        let on_btrfs = nix::sys::statfs::statfs(path)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC);
        if !on_btrfs {
            Btrfs::No
        } else if fs::metadata(path).is_ok_and(|m| m.ino() == BTRFS_SUBVOLUME_INODE) {
            Btrfs::Subvolume
        } else {
            Btrfs::Inside
        }
    }

    fn random(&self, buf: &mut [u8]) -> io::Result<()> {
        fs::File::open("/dev/urandom")?.read_exact(buf)
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn monotonic(&self) -> Duration {
        self.started.elapsed()
    }

    fn env(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    fn hostname(&self) -> String {
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

    fn run_lines(&self, command: &CommandLine, line: &mut dyn FnMut(&str)) -> io::Result<()> {
        let mut child = self::command(command)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .map_err(spawn_error(command))?;
        if let Some(out) = child.stdout.take() {
            for text in BufReader::new(out).lines().map_while(Result::ok) {
                line(&text);
            }
        }
        let status = child.wait().map_err(spawn_error(command))?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "{} failed ({status})",
                command.program
            )));
        }
        Ok(())
    }

    fn exchange(&self, command: &CommandLine, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut child = self::command(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(spawn_error(command))?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = input.to_vec();
        // Written from a thread of its own: a program that answers before it has read all of
        // its input would otherwise block on a full pipe while we block on writing.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().map_err(spawn_error(command))?;
        let written = writer.join().expect("the writer does not panic");
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`{command}` failed ({})",
                out.status
            )));
        }
        written.map_err(spawn_error(command))?;
        Ok(out.stdout)
    }

    fn ask_socket(&self, path: &Path, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut stream = std::os::unix::net::UnixStream::connect(path)?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(request)?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: no whole answer within {timeout:?}", path.display()),
                ));
            }
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut buf)? {
                0 => return Ok(answer),
                n => answer.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn interact(&self, command: &CommandLine) -> io::Result<Option<i32>> {
        let status = self::command(command)
            .status()
            .map_err(spawn_error(command))?;
        Ok(status.code())
    }

    fn run_program(&self, program: &Program<'_>) -> io::Result<Finished> {
        use std::os::unix::process::{CommandExt, ExitStatusExt};
        let line = program.command;
        // A process group of its own: the time limit ends whatever it started too.
        let mut child = self::command(line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error(line))?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = program.input.to_vec();
        // A program that exits without reading its input is no error of ours.
        let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        // Waited for in a thread of its own, so the end is seen at once and the time limit
        // is a plain timeout on the answer.
        let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || drop(done.send(child.wait())));
        let (status, timed_out) = match ended.recv_timeout(program.timeout) {
            Ok(status) => (status.map_err(spawn_error(line))?, false),
            Err(_) => {
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                let status = ended.recv().map_err(io::Error::other)?;
                (status.map_err(spawn_error(line))?, true)
            }
        };
        let _ = writer.join();
        Ok(Finished {
            code: if timed_out || status.signal().is_some() {
                None
            } else {
                status.code()
            },
            timed_out,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    fn ownership(&self, path: &Path) -> io::Result<Option<Ownership>> {
        Ok(missing_ok(fs::metadata(path))?.map(|m| Ownership {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        }))
    }

    fn modified(&self, path: &Path) -> io::Result<Option<Timestamp>> {
        let Some(m) = missing_ok(fs::symlink_metadata(path))? else {
            return Ok(None);
        };
        Timestamp::new(m.mtime(), m.mtime_nsec() as i32)
            .map(Some)
            .map_err(io::Error::other)
    }

    fn free_space(&self, path: &Path) -> io::Result<(u64, u64)> {
        let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let block = s.fragment_size() as u64;
        Ok((
            s.blocks_available() as u64 * block,
            s.blocks() as u64 * block,
        ))
    }

    fn capture(&self, command: &CommandLine) -> io::Result<(Option<i32>, Vec<u8>)> {
        let out = self::command(command)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(spawn_error(command))?;
        Ok((out.status.code(), out.stdout))
    }

    fn exec(&self, command: &CommandLine) -> io::Error {
        use std::os::unix::process::CommandExt;
        spawn_error(command)(self::command(command).exec())
    }

    fn notify(&self, assignments: &str) {
        // NOTIFY_SOCKET unset (not a service of systemd) is no error: nothing to tell.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Custom(assignments)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exclusive_lock_taken_now_fails_at_once_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/renew.lock");
        let system = Local::new(true);
        let held = system.lock(&path, LockKind::Exclusive).unwrap();
        let e = system.lock(&path, LockKind::ExclusiveNow).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        system.lock(&path, LockKind::ExclusiveNow).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn appends_add_to_the_end_and_listings_are_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let system = Local::new(true);
        let log = dir.path().join("log/audit.log");
        system.append(&log, b"one\n", 0o600).unwrap();
        system.append(&log, b"two\n", 0o600).unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"one\ntwo\n");
        system
            .write(&dir.path().join("log/a"), b"", 0o644, false)
            .unwrap();
        assert_eq!(
            system.list_dir(&dir.path().join("log")).unwrap(),
            ["a", "audit.log"]
        );
        assert_eq!(
            system.list_dir(&dir.path().join("none")).unwrap(),
            Vec::<OsString>::new()
        );
        assert_eq!(system.kind(&log), Some(FileKind::File));
        assert_eq!(system.kind(dir.path()), Some(FileKind::Dir));
    }
}
