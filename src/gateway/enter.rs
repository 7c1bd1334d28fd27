//! How a session gets into a container as one of its accounts: the programs `sc NAME shell`,
//! `sc NAME exec` and `sc NAME sftp` run, and the one that creates an account added with
//! `sc NAME add-user`. Each runs inside the container through systemd (machinectl,
//! systemd-run --machine), so nothing needs to be installed in the container for it.

use std::path::{Path, PathBuf};

use crate::model::names::{ContainerLogin, ContainerName};
use crate::system::{CommandLine, FileKind, System};

/// Where images keep OpenSSH's sftp-server, in the order they are tried: Debian's, then
/// Fedora's.
pub const SFTP_SERVERS: [&str; 2] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
];

/// The options of every `systemd-run` into a container: wait for the program, pass this
/// process's standard input, output and error straight to it, forget the unit when done,
/// and start in the account's home.
const RUN_OPTIONS: [&str; 6] = [
    "--quiet",
    "--wait",
    "--pipe",
    "--collect",
    "--service-type=exec",
    "--property=WorkingDirectory=~",
];

/// `systemd-run` of `program` inside container `name` as `login`.
fn run_as(
    name: &ContainerName,
    login: &ContainerLogin,
    program: impl IntoIterator<Item = String>,
) -> CommandLine {
    CommandLine::new(
        "systemd-run",
        [format!("--machine={name}"), format!("--uid={login}")]
            .into_iter()
            .chain(RUN_OPTIONS.map(String::from))
            .chain(std::iter::once("--".to_owned()))
            .chain(program),
    )
}

/// A login shell inside container `name` as `login`.
///
/// `term` is the terminal type to set inside (a client of the privileged service sends its
/// own; `sc` run directly passes its environment on).
pub fn shell(name: &ContainerName, login: &ContainerLogin, term: Option<&str>) -> CommandLine {
    let setenv = term.map(|t| format!("--setenv=TERM={t}"));
    CommandLine::new(
        "machinectl",
        setenv
            .into_iter()
            .chain(["shell".into(), format!("{login}@{name}")]),
    )
}

/// Run `command` inside container `name` as `login`; its exit code is the program's.
pub fn exec(name: &ContainerName, login: &ContainerLogin, command: Vec<String>) -> CommandLine {
    run_as(name, login, command)
}

/// The sftp-server of the container whose root filesystem is `rootfs`: the first of
/// [`SFTP_SERVERS`] it has.
pub fn sftp_server(system: &dyn System, rootfs: &Path) -> Option<&'static str> {
    SFTP_SERVERS.into_iter().find(|server| {
        let inside: PathBuf = rootfs.join(server.trim_start_matches('/'));
        system.kind(&inside) == Some(FileKind::File)
    })
}

/// The container's sftp-server `server` as `login`, speaking SFTP on standard input and
/// output (sshd's sftp subsystem, `sftp` and `scp` clients).
pub fn sftp(name: &ContainerName, login: &ContainerLogin, server: &str) -> CommandLine {
    run_as(name, login, [server.to_owned()])
}

/// The script that creates an account inside a container: `$1` is the login, the other
/// arguments its public keys, one each. An account that exists is left as it is; a new one
/// gets a home directory (from /etc/skel) and the keys in ~/.ssh/authorized_keys. It runs as
/// the container's root, which the container's own users cannot trick beyond what root of
/// the container may do anyway.
const CREATE_LOGIN: &str = r#"set -eu
login=$1; shift
if id -u "$login" >/dev/null 2>&1; then exit 0; fi
useradd --create-home --shell /bin/bash "$login"
home=$(getent passwd "$login" | cut -d: -f6)
group=$(id -g "$login")
install -d -m 0700 -o "$login" -g "$group" "$home/.ssh"
: > "$home/.ssh/authorized_keys"
if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$home/.ssh/authorized_keys"; fi
chown "$login:$group" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
"#;

/// Create account `login` inside container `name`, with `keys` in its authorized_keys. The
/// keys go as arguments, never through a shell's parsing; each is one line (a key with a
/// control character is left out).
pub fn create_login(name: &ContainerName, login: &ContainerLogin, keys: &[String]) -> CommandLine {
    let script = [
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        CREATE_LOGIN.to_owned(),
        "srvctl-add-user".to_owned(),
        login.to_string(),
    ];
    let keys = keys
        .iter()
        .filter(|k| !k.chars().any(char::is_control))
        .cloned();
    run_as(
        name,
        &ContainerLogin::new("root").expect("valid"),
        script.into_iter().chain(keys),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    fn web() -> ContainerName {
        ContainerName::new("web.ve").unwrap()
    }

    fn login(name: &str) -> ContainerLogin {
        ContainerLogin::new(name).unwrap()
    }

    fn args(c: &CommandLine) -> Vec<String> {
        c.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn sessions_run_as_the_login_in_its_home() {
        assert_eq!(
            shell(&web(), &login("www"), None).to_string(),
            "machinectl shell www@web.ve"
        );
        assert_eq!(
            shell(&web(), &login("www"), Some("xterm-256color")).to_string(),
            "machinectl --setenv=TERM=xterm-256color shell www@web.ve"
        );
        let run = exec(
            &web(),
            &login("deploy"),
            vec!["sh".into(), "-c".into(), "ls; id".into()],
        );
        assert_eq!(run.program, "systemd-run");
        let a = args(&run);
        assert_eq!(a[..2], ["--machine=web.ve", "--uid=deploy"]);
        assert!(a.contains(&"--pipe".to_owned()) && a.contains(&"--wait".to_owned()));
        assert!(a.contains(&"--property=WorkingDirectory=~".to_owned()));
        assert_eq!(a[a.len() - 4..], ["--", "sh", "-c", "ls; id"]);
        let sftp = sftp(&web(), &login("www"), SFTP_SERVERS[0]);
        assert_eq!(args(&sftp).last().unwrap(), SFTP_SERVERS[0]);
    }

    #[test]
    fn the_sftp_server_is_the_first_one_the_container_has() {
        let system = Recording::default();
        let rootfs = Path::new("/var/lib/machines/web.ve");
        assert_eq!(sftp_server(&system, rootfs), None);
        let fedora = rootfs.join("usr/libexec/openssh/sftp-server");
        system.write(&fedora, b"", 0o755, false).unwrap();
        assert_eq!(sftp_server(&system, rootfs), Some(SFTP_SERVERS[1]));
        let debian = rootfs.join("usr/lib/openssh/sftp-server");
        system.write(&debian, b"", 0o755, false).unwrap();
        assert_eq!(sftp_server(&system, rootfs), Some(SFTP_SERVERS[0]));
    }

    #[test]
    fn a_new_login_gets_the_keys_as_arguments_never_as_script() {
        let keys = vec![
            "ssh-ed25519 AAAA bob@laptop".to_owned(),
            "ssh-ed25519 BBBB x\ncommand=\"rm -rf /\" ssh-ed25519 CCCC".to_owned(),
            "ssh-ed25519 DDDD $(reboot) `id`".to_owned(),
        ];
        let run = create_login(&web(), &login("deploy"), &keys);
        let a = args(&run);
        assert_eq!(a[..2], ["--machine=web.ve", "--uid=root"]);
        let script = a.iter().position(|x| x == "-c").unwrap() + 1;
        assert_eq!(a[script], CREATE_LOGIN);
        assert_eq!(
            a[script + 1..],
            [
                "srvctl-add-user",
                "deploy",
                "ssh-ed25519 AAAA bob@laptop",
                "ssh-ed25519 DDDD $(reboot) `id`"
            ]
        );
    }
}
