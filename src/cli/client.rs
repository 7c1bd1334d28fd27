//! `sc` run by anyone but root: the command line goes to the privileged service, together
//! with this terminal's standard streams, and its exit status comes back.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::Failure;
use super::service::{Answer, Request};
use crate::failure::FailureKind;
use crate::system::System;
use crate::system::socket;

/// The socket of the privileged service (`srvctl.socket`).
pub const SOCKET: &str = "/run/srvctl/sc.socket";

/// The commands whose last argument may name a file that the client reads, since the service
/// never opens a path its caller names: the file's text is sent instead.
const FILE_ARGUMENTS: &[&str] = &["add-publickey"];

/// Send `args` (without the program name) to the service at `SRVCTL_SOCKET` (default
/// [`SOCKET`]) and give its exit status.
pub fn request(system: &dyn System, args: &[String], json: bool) -> u8 {
    let path = system
        .env("SRVCTL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| SOCKET.into());
    let args = with_files_read(system, args);
    let term = system.env("TERM").and_then(|t| t.into_string().ok());
    match exchange(&path, &args, term) {
        Ok(code) => code,
        Err(e) => Failure::new(
            FailureKind::System,
            format!(
                "cannot reach the srvctl service at {}: {e} (is srvctl.socket running? root may run sc directly)",
                path.display()
            ),
        )
        .report("sc", json),
    }
}

/// `args` with the file argument of a [`FILE_ARGUMENTS`] command replaced by the file's
/// text, when it names a file this user can read (`-` stays: the service reads the client's
/// standard input).
pub fn with_files_read(system: &dyn System, args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    let command = args.iter().find(|a| !a.starts_with('-'));
    if !command.is_some_and(|c| FILE_ARGUMENTS.contains(&c.as_str())) {
        return args;
    }
    if let Some(last) = args.last_mut()
        && last != "-"
        && let Ok(Some(bytes)) = system.read(Path::new(last.as_str()))
        && let Ok(text) = String::from_utf8(bytes)
    {
        *last = text.trim_end().to_owned();
    }
    args
}

/// One request and its answer.
fn exchange(path: &Path, args: &[String], term: Option<String>) -> std::io::Result<u8> {
    let stream = UnixStream::connect(path)?;
    let request = serde_json::to_vec(&Request {
        argv: args.to_vec(),
        term,
    })?;
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    socket::send_with_fds(
        &stream,
        &request,
        &[stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
    )?;
    let mut answer = Vec::new();
    (&stream).read_to_end(&mut answer)?;
    let answer: Answer = serde_json::from_slice(&answer).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the service's answer is not understood: {e}"),
        )
    })?;
    Ok(answer.exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn only_the_key_file_of_add_publickey_is_read() {
        let system = Recording::default();
        system
            .write(
                Path::new("/home/bob/id.pub"),
                b"ssh-ed25519 AAAA bob\n",
                0o644,
                false,
            )
            .unwrap();
        let read = with_files_read(&system, &strings(&["add-publickey", "/home/bob/id.pub"]));
        assert_eq!(read, strings(&["add-publickey", "ssh-ed25519 AAAA bob"]));
        for unchanged in [
            &["--json", "add-publickey", "bob", "-"][..],
            &["add-publickey", "ssh-ed25519 AAAA bob"],
            &["add-ve", "/home/bob/id.pub"],
        ] {
            let args = strings(unchanged);
            assert_eq!(with_files_read(&system, &args), args);
        }
        let read = with_files_read(
            &system,
            &strings(&["--json", "add-publickey", "bob", "/home/bob/id.pub"]),
        );
        assert_eq!(read[3], "ssh-ed25519 AAAA bob");
    }
}
