//! `srvctl-service`: the privileged service through which everyone but root runs `sc`.
//!
//! systemd starts it on the first connection to `/run/srvctl/sc.socket` (`srvctl.socket`,
//! which passes the listening socket); it serves each connection in a process of its own and
//! exits after a minute with no request and none running. The client sends one message,
//! `{"argv": [...]}`, with its standard input, output and error attached (`SCM_RIGHTS`); the
//! service takes the caller from the socket's peer credentials (never from the message or
//! an environment variable), puts the client's streams on its own, runs the command line for
//! that caller, and answers `{"exit": N}`. For tests, `srvctl-service --root DIR --listen
//! SOCKET` serves a scratch root the same way until it is killed.

use crate::system::journal::{self, Priority};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::Failure;
use crate::access::Caller;
use crate::config::site::Settings;
use crate::failure::FailureKind;
use crate::system::paths::Paths;
use crate::system::socket::{self, Peer};
use crate::system::{Local, System};

/// The most a request may hold.
const REQUEST_LIMIT: usize = 1 << 20;

/// What a client asks: its command line, nothing else (a request that says more, e.g. who it
/// claims to be, is refused).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The arguments of `sc`, without the program name.
    pub argv: Vec<String>,
    /// The client's terminal type (`TERM`), for a shell it opens; ignored unless it is a plain
    /// name ([`is_term_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
}

/// Whether `term` can be a terminal type: 1 to 64 ASCII letters, digits and `._+-`.
pub fn is_term_name(term: &str) -> bool {
    (1..=64).contains(&term.len())
        && term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// What the service answers when the command is done.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    /// The command's exit status.
    pub exit: u8,
}

/// The command line of `srvctl-service`.
#[derive(Debug, Parser)]
#[command(name = "srvctl-service", version)]
pub(crate) struct Args {
    /// Serve the scratch tree DIR (systemd requests are only printed).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Listen on SOCKET and serve every connection until killed (instead of the socket
    /// systemd passes, served until a minute passes with nothing to do).
    #[arg(long, value_name = "SOCKET")]
    listen: Option<PathBuf>,
    /// With the socket systemd passes: exit after SECONDS with no request and none running.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    idle: u64,
}

/// Run `srvctl-service`.
pub fn service_main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return super::usage_error(e, "srvctl-service", false),
    };
    let paths = args.root.map(Paths::rooted).unwrap_or_else(Paths::system);
    let system = Local::new(paths.root().is_some());
    let (listener, idle) = match &args.listen {
        Some(path) => (socket::listen(path), None),
        None => (
            socket::listener_from_systemd(&system).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no socket from systemd (LISTEN_FDS): start srvctl.socket, or use --listen SOCKET",
                )
            }),
            Some(std::time::Duration::from_secs(args.idle)),
        ),
    };
    let served = listener.and_then(|listener| {
        socket::serve_forking(&system, &listener, idle, |c| handle(&system, c, &paths))
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => Failure::from(e).exit("srvctl-service", false),
    }
}

/// The caller behind `peer`, resolved against the datastore's accounts (its containers are
/// not read for this) and settings.json.
pub(super) fn caller(system: &dyn System, paths: &Paths, peer: &Peer) -> Result<Caller, Failure> {
    let state = crate::store::read_accounts(system, paths)?;
    let settings = Settings::load(system, paths)?;
    Ok(Caller::resolve(peer.uid, &peer.gids, &state, &settings)?)
}

/// Serve one connection: read the request and the client's streams, run it, answer. What
/// goes wrong before the client's streams are in place is logged on this service's stderr
/// (the journal).
fn handle(system: &dyn System, connection: UnixStream, paths: &Paths) {
    let code = match receive(&connection) {
        Ok((peer, request)) => serve_request(system, paths, &peer, request),
        Err(e) => {
            journal::log(Priority::Error, "srvctl-service", &e.to_string());
            FailureKind::Usage.exit_code()
        }
    };
    let answer = serde_json::to_vec(&Answer { exit: code }).expect("an answer serialises");
    if let Err(e) = (&connection).write_all(&answer) {
        let said = format!("cannot answer: {e}");
        journal::log(Priority::Error, "srvctl-service", &said);
    }
}

/// The peer, and its request with the client's three streams already put on this
/// process's standard input, output and error.
fn receive(connection: &UnixStream) -> std::io::Result<(Peer, serde_json::Result<Request>)> {
    let peer = socket::peer(connection)?;
    let (bytes, fds) = socket::receive_with_fds(connection, REQUEST_LIMIT)?;
    let fds: [_; 3] = fds.try_into().map_err(|fds: Vec<_>| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "a request from UID {} came with {} file descriptors, not 3",
                peer.uid,
                fds.len()
            ),
        )
    })?;
    socket::put_on_stdio(&fds)?;
    Ok((peer, serde_json::from_slice(&bytes)))
}

/// Run a request that was read, or refuse (and audit) one that is malformed.
fn serve_request(
    system: &dyn System,
    paths: &Paths,
    peer: &Peer,
    request: serde_json::Result<Request>,
) -> u8 {
    match request {
        Ok(request) => {
            let term = request.term.filter(|t| is_term_name(t));
            super::serve(system, paths.clone(), peer, request.argv, term)
        }
        Err(e) => {
            let failure = Failure::new(FailureKind::Usage, format!("malformed request: {e}"));
            super::audit_refusal(system, paths, peer, &[], &failure);
            failure.report("sc", false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_its_command_line_and_nothing_else() {
        let request: Request = serde_json::from_str(r#"{"argv": ["status"]}"#).unwrap();
        assert_eq!(request.argv, ["status"]);
        let request: Request =
            serde_json::from_str(r#"{"argv": ["x.ve", "shell"], "term": "xterm-256color"}"#)
                .unwrap();
        assert_eq!(request.term.as_deref(), Some("xterm-256color"));
        assert!(is_term_name("xterm-256color") && is_term_name("screen.xterm"));
        for bad in ["", "xterm\nX=1", "a b", "x;y", &"x".repeat(65)] {
            assert!(!is_term_name(bad), "{bad:?}");
        }
        for claim in [
            r#"{"argv": ["status"], "uid": 0}"#,
            r#"{"argv": ["status"], "user": "root"}"#,
            r#"{"argv": ["status"], "SUDO_USER": "root"}"#,
            r#"{"uid": 0}"#,
        ] {
            assert!(serde_json::from_str::<Request>(claim).is_err(), "{claim}");
        }
    }
}
