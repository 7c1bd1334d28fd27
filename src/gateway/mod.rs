//! The SSH gateway: `ssh -p 2222 USER_CONTAINER_LOGIN@host` lands as LOGIN inside container
//! CONTAINER, with USER's own key (docs/ssh-gateway.md).
//!
//! OpenSSH itself listens on port 2222 (`srvctl-gateway.service`, a configuration srvctl ships).
//! sshd learns the login name from nss-systemd, which asks [`userdb`], srvctl's varlink user
//! database: a gateway login of account USER is a user record with USER's UID. sshd checks the
//! key with `srvctl-authorized-keys --gateway LOGIN` and starts the session as USER's UID, in
//! [`session`]'s program, which hands it to `sc CONTAINER shell|exec|sftp --login LOGIN`: the
//! privileged service authorizes (may USER enter CONTAINER?) and audits it, and [`enter`]'s
//! programs run it inside the container.

pub mod enter;
pub mod login;
pub mod userdb;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::system::paths::Paths;
use crate::system::{CommandLine, Local, System};
pub use login::Login;

/// The command sshd's `Subsystem sftp` names in the gateway's configuration. sshd runs the
/// `ForceCommand` instead, with this in `SSH_ORIGINAL_COMMAND`: it marks an sftp session.
pub const SFTP_SUBSYSTEM: &str = "srvctl-gateway-sftp";

/// The TCP port the gateway's sshd listens on (`Port` of conf/gateway/sshd_config).
pub const PORT: u16 = 2222;

/// The arguments of `sc` for a session of `login`, given what the client asked for
/// (`SSH_ORIGINAL_COMMAND`): nothing, a login shell; the sftp subsystem, the container's
/// sftp-server; anything else, that command through the account's `sh -c`.
pub fn sc_arguments(login: &Login, original_command: Option<&str>) -> Vec<String> {
    let container = login.container.to_string();
    let as_login = ["--login".to_owned(), login.login.to_string()];
    let (action, rest): (&str, Vec<String>) = match original_command {
        None | Some("") => ("shell", Vec::new()),
        Some(SFTP_SUBSYSTEM) => ("sftp", Vec::new()),
        Some(command) => (
            "exec",
            ["--", "sh", "-c", command].map(String::from).to_vec(),
        ),
    };
    std::iter::once(container)
        .chain(std::iter::once(action.to_owned()))
        .chain(as_login)
        .chain(rest)
        .collect()
}

/// srvctl's SSH gateway: the user database sshd resolves gateway logins with, and the
/// session program sshd runs for them.
#[derive(Debug, Parser)]
#[command(name = "srvctl-gateway", version)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Serve io.systemd.UserDatabase for gateway logins: on the socket systemd passes
    /// (srvctl-gateway-userdb.socket), or on --listen PATH.
    Userdb {
        /// Bind this socket instead of taking one from systemd.
        #[arg(long, value_name = "PATH")]
        listen: Option<PathBuf>,
        /// Read the datastore under DIR.
        #[arg(long, env = "SRVCTL_ROOT", value_name = "DIR")]
        root: Option<PathBuf>,
        /// Exit after this many seconds without a connection.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        idle: u64,
    },
    /// The session of a gateway login (sshd's ForceCommand): the login from $USER, the
    /// client's command from $SSH_ORIGINAL_COMMAND; runs `sc CONTAINER shell|exec|sftp
    /// --login LOGIN`.
    Session,
}

/// Run `srvctl-gateway` with the process's arguments.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let system = Local::new(true);
    let result = match args.what {
        What::Userdb { listen, root, idle } => {
            let paths = root.map(Paths::rooted).unwrap_or_else(Paths::system);
            serve_userdb(&system, &paths, listen, Duration::from_secs(idle))
        }
        What::Session => Err(session(&system)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("srvctl-gateway: error: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn serve_userdb(
    system: &(dyn System + Sync),
    paths: &Paths,
    listen: Option<PathBuf>,
    idle: Duration,
) -> Result<(), String> {
    let directory = userdb::Datastore {
        system,
        paths,
        machine_id: userdb::machine_id(system, paths)?,
    };
    let listener = match listen {
        Some(path) => UnixListener::bind(&path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?,
        None => crate::system::socket::listener_from_systemd(system).ok_or(
            "no socket from systemd (LISTEN_FDS): start srvctl-gateway-userdb.socket, or use --listen PATH",
        )?,
    };
    userdb::serve(listener, &directory, idle).map_err(|e| e.to_string())
}

/// The session program: exec `sc` for the login's session; returns only a failure.
fn session(system: &dyn System) -> String {
    let var = |name| system.env(name).map(|v| v.into_string());
    let Some(Ok(name)) = var("USER").or_else(|| var("LOGNAME")) else {
        return "no login name in $USER".into();
    };
    let login = match Login::parse(&name) {
        Ok(login) => login,
        Err(e) => return e.to_string(),
    };
    let original = match var("SSH_ORIGINAL_COMMAND").transpose() {
        Ok(command) => command,
        Err(_) => return "the command is not valid UTF-8".into(),
    };
    let sc = CommandLine::new("sc", sc_arguments(&login, original.as_deref()));
    format!("cannot start sc: {}", system.exec(&sc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_becomes_an_sc_command() {
        let login = Login::parse("bob_web.ve_www").unwrap();
        let args = |c| sc_arguments(&login, c);
        assert_eq!(args(None), ["web.ve", "shell", "--login", "www"]);
        assert_eq!(args(Some("")), ["web.ve", "shell", "--login", "www"]);
        assert_eq!(
            args(Some(SFTP_SUBSYSTEM)),
            ["web.ve", "sftp", "--login", "www"]
        );
        for command in ["ls -l; exit 3", "scp -t /var/www/html"] {
            assert_eq!(
                args(Some(command)),
                [
                    "web.ve", "exec", "--login", "www", "--", "sh", "-c", command
                ]
            );
        }
    }

    #[test]
    fn the_session_program_execs_sc_for_a_well_formed_login_only() {
        let system = crate::system::Recording {
            environment: [
                ("USER".into(), "bob_web.ve_root".into()),
                ("SSH_ORIGINAL_COMMAND".into(), "hostname".into()),
            ]
            .into(),
            ..Default::default()
        };
        let failure = session(&system);
        assert!(failure.contains("recorded"), "{failure}");
        let ran = system.commands.borrow();
        assert_eq!(ran.len(), 1);
        assert_eq!(
            ran[0].to_string(),
            "sc web.ve exec --login root -- sh -c hostname"
        );
        drop(ran);
        let malformed = crate::system::Recording {
            environment: [("USER".into(), "bob".into())].into(),
            ..Default::default()
        };
        let failure = session(&malformed);
        assert!(failure.contains("USER_CONTAINER_LOGIN"), "{failure}");
        assert!(malformed.commands.borrow().is_empty());
    }
}
