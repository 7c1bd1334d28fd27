//! Unix sockets of the privileged service: who the peer is (as the kernel says), file
//! descriptors passed along with a message, the listening socket systemd passes, and a
//! listener that serves each connection in a process of its own.

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use super::System;

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags, sockopt};

/// The other end of a connection, from the kernel (`SO_PEERCRED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its UID.
    pub uid: u32,
    /// Its primary GID and the supplementary groups the group database gives its user.
    pub gids: Vec<u32>,
}

/// The peer of `stream`.
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let cred = socket::getsockopt(stream, sockopt::PeerCredentials).map_err(io::Error::from)?;
    let uid = cred.uid();
    let gid = cred.gid();
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten();
    let mut gids = vec![gid];
    if let Some(user) = user
        && let Ok(name) = CString::new(user.name)
        && let Ok(groups) = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
    {
        gids.extend(groups.into_iter().map(|g| g.as_raw()));
    }
    Ok(Peer { uid, gids })
}

/// Send `bytes` with `fds` attached, then end the sending half.
pub fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let sent = socket::sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    let mut rest = stream;
    rest.write_all(&bytes[sent..])?;
    stream.shutdown(std::net::Shutdown::Write)
}

/// Receive a whole message (up to `limit` bytes, until the peer ends its sending half) and
/// the file descriptors that came with its first part.
pub fn receive_with_fds(stream: &UnixStream, limit: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut first = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([i32; 8]);
    let (len, fds) = {
        let mut iov = [IoSliceMut::new(&mut first)];
        let msg = socket::recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in this process, and
                // nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (msg.bytes, fds)
    };
    first.truncate(len);
    if len > 0 {
        let mut rest = stream.take((limit.saturating_sub(len) + 1) as u64);
        rest.read_to_end(&mut first)?;
    }
    if first.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a request is at most {limit} bytes"),
        ));
    }
    Ok((first, fds))
}

/// Put `fds` on this process's standard input, output and error.
pub fn put_on_stdio(fds: &[OwnedFd; 3]) -> io::Result<()> {
    nix::unistd::dup2_stdin(&fds[0]).map_err(io::Error::from)?;
    nix::unistd::dup2_stdout(&fds[1]).map_err(io::Error::from)?;
    nix::unistd::dup2_stderr(&fds[2]).map_err(io::Error::from)
}

/// The listening socket systemd passed (`LISTEN_FDS`, the first one: fd 3), if it passed one
/// to this process.
pub fn listener_from_systemd(system: &dyn System) -> Option<UnixListener> {
    let var = |name| system.env(name).and_then(|v| v.into_string().ok());
    let for_us = var("LISTEN_PID")? == std::process::id().to_string();
    let count: u32 = var("LISTEN_FDS")?.parse().ok()?;
    (for_us && count >= 1).then(|| {
        // SAFETY: systemd passed fd 3 to this process (LISTEN_PID, LISTEN_FDS) as its
        // listening socket; nothing else owns it.
        unsafe { UnixListener::from_raw_fd(3) }
    })
}

/// Listen on `path` (replacing a stale socket), open to every local user.
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Serve every connection of `listener` in a child process of its own, which runs `handle`
/// and exits. With `idle`, return once that long has passed with no connection and no child
/// left (a session may last for hours; it keeps the service). Must be called before any
/// thread starts.
pub fn serve_forking(
    system: &dyn System,
    listener: &UnixListener,
    idle: Option<Duration>,
    handle: impl Fn(UnixStream),
) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut children = 0usize;
    let mut quiet_since = system.monotonic();
    loop {
        children -= reap(children);
        if children > 0 {
            quiet_since = system.monotonic();
        }
        if idle.is_some_and(|idle| system.monotonic() - quiet_since >= idle) {
            return Ok(());
        }
        let mut ready = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut ready, PollTimeout::from(1000u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let (stream, _) = listener.accept()?;
        // SAFETY: the caller guarantees this process is single-threaded, so the child may
        // run any code.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            nix::unistd::ForkResult::Child => {
                handle(stream);
                std::process::exit(0);
            }
            nix::unistd::ForkResult::Parent { .. } => {
                children += 1;
                quiet_since = system.monotonic();
            }
        }
    }
}

/// Reap the children that ended, without waiting; how many of at most `alive` did.
fn reap(alive: usize) -> usize {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let mut ended = 0;
    while ended < alive {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => ended += 1,
        }
    }
    ended
}
