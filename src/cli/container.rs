//! `sc NAME ACTION`: act on one container, srvctl 3 style.

use crate::failure::FailureKind;

use super::output::Output;
use super::{Failure, Invocation};
use crate::containers::boot;
use crate::containers::units::container_unit;
use crate::gateway::enter;
use crate::model::names::{ContainerLogin, ContainerName};
use crate::ops::views;
use crate::ops::{Change, follow_up};
use crate::store::Held;
use crate::system::{CommandLine, Request, System};

/// What to do with a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show its status.
    Status,
    /// Start it (making its root filesystem first if it has none).
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
    /// Start it at boot again, and now.
    Enable,
    /// Keep it from starting at boot, and stop it.
    Disable,
    /// SIGKILL all its processes.
    Kill,
    /// A login shell inside, as `login` (default: root).
    Shell {
        /// The account inside (`--login`).
        login: Option<String>,
    },
    /// Run a command inside as `login` (default: root), passing its exit code through.
    Exec {
        /// The account inside (`--login`).
        login: Option<String>,
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// The container's sftp-server as `login` (default: root) on this standard input and
    /// output: the gateway's sftp and scp sessions.
    Sftp {
        /// The account inside (`--login`).
        login: Option<String>,
    },
    /// Add an account inside (`sc NAME add-user LOGIN`), with a home and the owner's keys.
    AddUser(String),
    /// List the accounts inside that a gateway login may name.
    Users,
    /// Set (or, without a value, reset) the redirect policy of plain HTTP or of HTTPS.
    Redirect {
        /// HTTPS (`https-redirect`) rather than HTTP (`http-redirect`).
        https: bool,
        /// none, http, https or a URL; `None` resets to the default.
        value: Option<String>,
    },
    /// List the aliases or the alternative names, or add or remove one.
    Names {
        /// Which list.
        list: crate::model::web::NameList,
        /// `Some((true, d))` adds `d`, `Some((false, d))` removes it; `None` lists.
        change: Option<(bool, String)>,
    },
    /// List the site's own DNS records, or add or remove one.
    Dns {
        /// `Some((add, [name, type, value]))` adds or removes that record; `None` lists.
        change: Option<(bool, [String; 3])>,
    },
}

impl Action {
    fn parse(word: &str, rest: &[String]) -> Option<Self> {
        Some(match word {
            "status" | "?" => Self::Status,
            "start" | "+" => Self::Start,
            "stop" | "-" => Self::Stop,
            "restart" | "!" => Self::Restart,
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            "kill" => Self::Kill,
            "shell" | "sftp" => {
                let (login, []) = login_option(rest)? else {
                    return None;
                };
                if word == "shell" {
                    Self::Shell { login }
                } else {
                    Self::Sftp { login }
                }
            }
            "exec" => {
                let (login, rest) = login_option(rest)?;
                let command = rest.strip_prefix(&["--".to_owned()]).unwrap_or(rest);
                if command.is_empty() {
                    return None;
                }
                Self::Exec {
                    login,
                    command: command.to_vec(),
                }
            }
            "add-user" => match rest {
                [login] => Self::AddUser(login.clone()),
                _ => return None,
            },
            "users" if rest.is_empty() => Self::Users,
            "http-redirect" | "https-redirect" if rest.len() <= 1 => Self::Redirect {
                https: word == "https-redirect",
                value: rest.first().cloned(),
            },
            "aliases" | "altnames" | "alias" | "altname" => {
                let list = if word.starts_with("alias") {
                    crate::model::web::NameList::Aliases
                } else {
                    crate::model::web::NameList::Altnames
                };
                let change = match rest {
                    [] => None,
                    [op, domain] => match op.as_str() {
                        "add" => Some((true, domain.clone())),
                        "remove" | "rm" | "del" => Some((false, domain.clone())),
                        _ => return None,
                    },
                    _ => return None,
                };
                Self::Names { list, change }
            }
            "dns" => Self::Dns {
                change: match rest {
                    [] => None,
                    [op] if op == "list" => None,
                    [op, rest @ ..] => {
                        let add = match op.as_str() {
                            "add" => true,
                            "remove" | "rm" | "del" => false,
                            _ => return None,
                        };
                        Some((add, dns_record(rest)?))
                    }
                },
            },
            _ => return None,
        })
    }

    /// Whether the action only reads or edits the datastore (so it may run on any host).
    fn is_data(&self) -> bool {
        matches!(
            self,
            Self::Status
                | Self::Redirect { .. }
                | Self::Names { .. }
                | Self::Dns { .. }
                | Self::Users
        )
    }
}

/// `[--name LABEL] TYPE VALUE…` of `sc NAME dns add|remove`: the owner name (default `@`,
/// the site's own name), the type, and the value's words joined by spaces (`MX 10 mx.example.net`).
fn dns_record(args: &[String]) -> Option<[String; 3]> {
    let (name, rest) = match args {
        [flag, name, rest @ ..] if flag == "--name" => (name.clone(), rest),
        [flag, rest @ ..] if flag.starts_with("--name=") => {
            (flag["--name=".len()..].to_owned(), rest)
        }
        _ => ("@".to_owned(), args),
    };
    match rest {
        [kind, value @ ..] if !value.is_empty() => Some([name, kind.clone(), value.join(" ")]),
        _ => None,
    }
}

/// A leading `--login LOGIN` (or `--login=LOGIN`) of a container action, and the arguments
/// after it; `None` when `--login` has no value.
fn login_option(rest: &[String]) -> Option<(Option<String>, &[String])> {
    match rest {
        [flag, value, rest @ ..] if flag == "--login" => Some((Some(value.clone()), rest)),
        [flag, ..] if flag == "--login" => None,
        [flag, rest @ ..] if flag.starts_with("--login=") => {
            Some((Some(flag["--login=".len()..].to_owned()), rest))
        }
        _ => Some((None, rest)),
    }
}

/// The account `login` (default: root) of container `name`, which must be one of its
/// accounts: refused before anything runs inside.
fn account(
    container: &crate::model::Container,
    name: &ContainerName,
    login: Option<&str>,
) -> Result<ContainerLogin, Failure> {
    let login = ContainerLogin::new(login.unwrap_or(crate::model::OPERATOR))?;
    if container.has_login(&login) {
        return Ok(login);
    }
    Err(Failure::new(
        FailureKind::NotFound,
        format!(
            "container {name} has no account {login}; its accounts: {} (add one with `sc {name} add-user LOGIN`)",
            container.all_logins().join(", ")
        ),
    ))
}

/// Refuse unless container `name` runs (when systemd is asked at all): an account is made
/// inside a running container.
fn require_running(inv: &Invocation, name: &ContainerName) -> Result<(), Failure> {
    let unit = container_unit(name);
    let Some(units) =
        live_states(inv.system(), Some(unit.as_str()))?.filter(|_| inv.paths.root().is_none())
    else {
        return Ok(());
    };
    match units.get(&unit) {
        Some(u) if u.active == "active" => Ok(()),
        _ => Err(Failure::new(
            FailureKind::System,
            format!("container {name} is not running; start it first (`sc {name} start`)"),
        )),
    }
}

/// Parse `NAME [ACTION [ARGS…]]` or `ACTION NAME` (srvctl 3 accepted both orders).
pub fn parse(args: &[String]) -> Result<(ContainerName, Action), Failure> {
    let usage = || {
        Failure::new(
            FailureKind::Usage,
            format!(
                "unknown command {}; see 'sc --help' (container actions: sc NAME status|start|stop|restart|enable|disable|kill|shell|exec CMD…|sftp|users|add-user LOGIN|http-redirect V|https-redirect V|alias[es] [add|remove D]|altname[s] [add|remove D]|dns [add|remove [--name LABEL] TYPE VALUE]; shell, exec and sftp take --login LOGIN)",
                crate::model::names::shown(args.first().map(String::as_str).unwrap_or(""))
            ),
        )
    };
    match args {
        [name] => Ok((
            ContainerName::new(name).map_err(|_| usage())?,
            Action::Status,
        )),
        [first, second, rest @ ..] => {
            if let Ok(name) = ContainerName::new(first)
                && let Some(action) = Action::parse(second, rest)
            {
                return Ok((name, action));
            }
            // srvctl 3's order for the web front: `sc http-redirect NAME [VALUE]`,
            // `sc alias NAME add DOMAIN`.
            if let Some(action @ (Action::Redirect { .. } | Action::Names { .. })) =
                Action::parse(first, rest)
            {
                return Ok((ContainerName::new(second)?, action));
            }
            match (Action::parse(first, &[]), rest.is_empty()) {
                (Some(action), true) if !matches!(action, Action::Shell { .. }) => {
                    Ok((ContainerName::new(second)?, action))
                }
                _ => Err(usage()),
            }
        }
        [] => Err(usage()),
    }
}

/// Carry out `action` on `name`. The datastore is held against writers from the check to the
/// end of the action, so that a destroy cannot slip in between; a container being destroyed
/// is refused.
pub fn act(
    inv: &Invocation,
    out: &mut Output,
    name: &ContainerName,
    action: Action,
) -> Result<(), Failure> {
    let held = held_here(inv, name, &action)?;
    let container = &held.state.containers[name];
    let system = inv.system();
    let unit = container_unit(name);
    match action {
        Action::Status => {
            let live = live_states(system, Some(unit.as_str()))?;
            let rows: Vec<_> = views::status(&held.state, &inv.hostname, &live, None)
                .into_iter()
                .filter(|r| r.name == name.as_str())
                .collect();
            return out.status(&rows);
        }
        Action::Start | Action::Stop | Action::Restart | Action::Kill => {
            power(inv, name, container, &action)?;
        }
        Action::Enable | Action::Disable => {
            // The change takes the writer lock itself.
            drop(held);
            let disable = action == Action::Disable;
            let change = Change::PutContainer {
                name: name.as_str(),
                key: "disabled",
                value: disable.then_some("true"),
            };
            super::change(inv, out, false, None, &change)?;
            let request = if disable {
                Request::Stop(unit)
            } else {
                Request::Start(unit)
            };
            let _held = hold(inv, name, false)?;
            return Ok(system.systemd(&request)?);
        }
        Action::Redirect { https, value } => {
            drop(held);
            let change = Change::SetRedirect {
                name,
                https,
                value: value.as_deref(),
            };
            return super::change(inv, out, false, None, &change);
        }
        Action::Names { list, change: None } => {
            let web = &container.web;
            let names = match list {
                crate::model::web::NameList::Aliases => &web.aliases,
                crate::model::web::NameList::Altnames => &web.altnames,
            };
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            return out.list(&names);
        }
        Action::Names {
            list,
            change: Some((add, domain)),
        } => {
            drop(held);
            let change = Change::ChangeNames {
                name,
                list,
                add,
                domain: &domain,
            };
            return super::change(inv, out, false, None, &change);
        }
        Action::Dns { change: None } => {
            let records: Vec<String> = container.dns.iter().map(ToString::to_string).collect();
            return out.list(&records);
        }
        Action::Dns {
            change: Some((add, [owner, kind, value])),
        } => {
            drop(held);
            let change = Change::ChangeDns {
                name,
                add,
                record: (&owner, &kind, &value),
            };
            return super::change(inv, out, false, None, &change);
        }
        Action::Shell { login } => {
            let login = account(container, name, login.as_deref())?;
            // A session may last for hours: it must not hold writers off.
            drop(held);
            return audited(
                inv,
                interactive(inv, &enter::shell(name, &login, inv.term.as_deref())),
            );
        }
        Action::Exec { login, command } => {
            let login = account(container, name, login.as_deref())?;
            drop(held);
            return audited(inv, interactive(inv, &enter::exec(name, &login, command)));
        }
        Action::Sftp { login } => {
            let login = account(container, name, login.as_deref())?;
            let rootfs = crate::containers::rootfs::machine_dir(&inv.paths, name);
            let server = enter::sftp_server(system, &rootfs).ok_or_else(|| {
                Failure::new(
                    FailureKind::System,
                    format!(
                        "container {name} has no sftp-server ({}); install OpenSSH's sftp server in it",
                        enter::SFTP_SERVERS.join(" or ")
                    ),
                )
            })?;
            drop(held);
            return audited(inv, interactive(inv, &enter::sftp(name, &login, server)));
        }
        Action::Users => {
            let logins: Vec<String> = container
                .all_logins()
                .into_iter()
                .map(str::to_owned)
                .collect();
            return out.list(&logins);
        }
        Action::AddUser(login) => {
            require_running(inv, name)?;
            // The change takes the writer lock itself.
            drop(held);
            let change = Change::AddLogin {
                name,
                login: &login,
            };
            return super::change(inv, out, false, None, &change);
        }
    }
    inv.audit("ok");
    out.value(&format!("{name}: done"))
}

/// The datastore held against writers with `name` in it ([`hold`]), refused unless the
/// container lives on this host or `action` only touches its data.
fn held_here(inv: &Invocation, name: &ContainerName, action: &Action) -> Result<Held, Failure> {
    let held = hold(inv, name, *action == Action::Status)?;
    let host = &held.state.containers[name].host;
    if *host != inv.hostname && !action.is_data() {
        return Err(Failure::new(
            FailureKind::Invalid,
            format!("{name} lives on {host}; run this there"),
        ));
    }
    Ok(held)
}

/// Start (making its root filesystem first if it has none), stop, restart or kill
/// `container`, named `name`; any other action is no power action and does nothing.
fn power(
    inv: &Invocation,
    name: &ContainerName,
    container: &crate::model::Container,
    action: &Action,
) -> Result<(), Failure> {
    let system = inv.system();
    let unit = container_unit(name);
    let live = inv.paths.root().is_none();
    match action {
        Action::Start => {
            let image = container
                .settings
                .image
                .clone()
                .unwrap_or_else(|| crate::containers::image::DEFAULT_IMAGE.into());
            let identity = container.rootfs_identity(name);
            let rootfs = crate::containers::rootfs::machine_dir(&inv.paths, name);
            let had_rootfs = system.kind(&rootfs).is_some();
            follow_up::provision(system, &inv.paths, name, &image, &identity)?;
            // The generator wants only containers that have a root filesystem: once it has
            // one, machines.target (boot) must want it too, not only after the next reload.
            if !had_rootfs && system.kind(&rootfs).is_some() {
                system.systemd(&Request::DaemonReload)?;
            }
            boot::start(system, name, &Request::Start(unit), live)?;
        }
        Action::Stop => system.systemd(&Request::Stop(unit))?,
        Action::Restart => boot::start(system, name, &Request::Restart(unit), live)?,
        Action::Kill => system.systemd(&Request::Kill(unit))?,
        _ => {}
    }
    Ok(())
}

/// [`power`] of container `name` of this host, held against writers meanwhile, without
/// printing or auditing: one step of `sc all-containers`.
pub fn power_one(inv: &Invocation, name: &ContainerName, action: &Action) -> Result<(), Failure> {
    let held = held_here(inv, name, action)?;
    power(inv, name, &held.state.containers[name], action)
}

/// How a program run inside ended: its exit code (`None`: a signal ended it) and its standard
/// output.
pub type Ran = (Option<i32>, Vec<u8>);

/// Run `command` as root inside container `name` of this host (checked and held as for
/// `sc NAME exec`, released while it runs), with nothing on its standard input: its exit code
/// (`None`: a signal ended it) and standard output. `None` under a scratch root, where it is
/// only printed: one step of `sc exec-all`.
pub fn exec_captured(
    inv: &Invocation,
    name: &ContainerName,
    command: &[String],
) -> Result<Option<Ran>, Failure> {
    let action = Action::Exec {
        login: None,
        command: command.to_vec(),
    };
    let held = held_here(inv, name, &action)?;
    let login = account(&held.state.containers[name], name, None)?;
    drop(held);
    let line = enter::exec(name, &login, command.to_vec());
    if inv.paths.root().is_some() {
        eprintln!("would run: {line}");
        return Ok(None);
    }
    let ran = inv.system().capture(&line);
    Ok(Some(ran.map_err(|e| {
        Failure::new(FailureKind::System, e.to_string())
    })?))
}

/// Audit how a session inside a container ended, and pass that on.
fn audited(inv: &Invocation, result: Result<(), Failure>) -> Result<(), Failure> {
    inv.audit(&Failure::outcome(&result));
    result
}

/// The datastore held against writers, with `name` in it, in the caller's scope (one outside
/// answers like a missing one) and (unless `even_destroying`) not being destroyed.
fn hold(inv: &Invocation, name: &ContainerName, even_destroying: bool) -> Result<Held, Failure> {
    let held = inv.store()?.hold()?;
    crate::access::container(&inv.caller, &held.state, name)?;
    match held.state.containers.get(name) {
        None => Err(Failure::new(
            FailureKind::NotFound,
            format!("no container named {name}"),
        )),
        Some(c) if c.destroying && !even_destroying => {
            Err(crate::ops::OpError::Destroying(name.clone()).into())
        }
        Some(_) => Ok(held),
    }
}

/// Run an interactive program with this terminal; its exit code becomes ours.
fn interactive(inv: &Invocation, command: &CommandLine) -> Result<(), Failure> {
    if inv.paths.root().is_some() {
        eprintln!("would run: {command}");
        return Ok(());
    }
    let code = inv
        .system()
        .interact(command)
        .map_err(|e| Failure::new(FailureKind::System, e.to_string()))?;
    match code {
        Some(0) => Ok(()),
        code => Err(Failure::silent(code.map_or(1, |c| c.clamp(1, 255) as u8))),
    }
}

/// The live states of this host's container units (one call to systemd), or of the one unit
/// `only` names (with the time it entered its state); `None` when systemd is not asked.
pub fn live_states(system: &dyn System, only: Option<&str>) -> Result<views::Live, Failure> {
    let units = system.unit_states(only.unwrap_or("systemd-nspawn@*.service"))?;
    Ok(Some(
        units.into_iter().map(|u| (u.name.clone(), u)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Option<Action> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        parse(&args).ok().map(|(_, action)| action)
    }

    #[test]
    fn login_options_of_shell_exec_and_sftp() {
        let www = Some("www".to_owned());
        assert_eq!(
            parsed(&["web.ve", "shell", "--login", "www"]),
            Some(Action::Shell { login: www.clone() })
        );
        assert_eq!(
            parsed(&["web.ve", "sftp", "--login=www"]),
            Some(Action::Sftp { login: www.clone() })
        );
        assert_eq!(
            parsed(&["web.ve", "exec", "--login", "www", "--", "--login", "x"]),
            Some(Action::Exec {
                login: www,
                command: vec!["--login".into(), "x".into()],
            })
        );
        assert_eq!(
            parsed(&["web.ve", "exec", "ls", "--login"]),
            Some(Action::Exec {
                login: None,
                command: vec!["ls".into(), "--login".into()],
            })
        );
        for usage in [
            &["web.ve", "shell", "--login"][..],
            &["web.ve", "shell", "www"],
            &["web.ve", "sftp", "--login", "www", "x"],
            &["web.ve", "exec", "--login", "www"],
            &["web.ve", "exec", "--login", "www", "--"],
            &["web.ve", "users", "x"],
        ] {
            assert_eq!(parsed(usage), None, "{usage:?}");
        }
    }

    #[test]
    fn every_action_word_is_reserved_for_no_container() {
        let domain = ["add".to_owned(), "x.example.com".to_owned()];
        for (word, rest) in [
            ("status", &[][..]),
            ("start", &[]),
            ("stop", &[]),
            ("restart", &[]),
            ("enable", &[]),
            ("disable", &[]),
            ("kill", &[]),
            ("shell", &[]),
            ("exec", &domain[..1]),
            ("sftp", &[]),
            ("users", &[]),
            ("add-user", &domain[..1]),
            ("http-redirect", &[]),
            ("https-redirect", &[]),
            ("alias", &domain),
            ("aliases", &[]),
            ("altname", &domain),
            ("altnames", &[]),
            ("dns", &[]),
        ] {
            assert!(Action::parse(word, rest).is_some(), "{word} is no action");
            assert!(
                crate::model::claims::COMMAND_WORDS.contains(&word),
                "{word} missing"
            );
        }
        for op in ["add", "remove", "rm", "del"] {
            let rest = [op.to_owned(), "x.example.com".to_owned()];
            assert!(Action::parse("alias", &rest).is_some());
            assert!(
                crate::model::claims::COMMAND_WORDS.contains(&op),
                "{op} missing"
            );
        }
    }
}
