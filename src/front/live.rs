//! The front's changes applied to the running haproxy through its runtime API (the admin
//! socket of haproxy.cfg's `stats socket`), so that adding or removing a site or a name and
//! installing a certificate need no reload.
//!
//! This runs in the apply step, before the new files replace the old ones: when only maps and
//! the crt-list change, the difference between the old files and the new ones
//! ([`crate::front::runtime`]) is sent as commands, then what haproxy holds is read back and
//! compared with the new files. Anything else (haproxy.cfg or an error page changed, haproxy
//! not running, a command refused, a read-back that differs) leaves the front to its reload,
//! which haproxy.service checks with `haproxy -c` before it signals haproxy. The files are
//! written either way, for the next start.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::engine::changeset::{Changes, Op};
use crate::engine::registry::Live;
use crate::front::haproxy::{ADMIN_SOCKET, CRT_LIST, DIR};
use crate::front::runtime::{self, Command};
use crate::system::System;

/// How long one command may take (a certificate's commit included).
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the changes of the front are, for the runtime API.
enum Kind<'a> {
    /// A map file: its path and new bytes.
    Map(&'a Path, &'a [u8]),
    /// The crt-list and its new bytes.
    CrtList(&'a [u8]),
}

/// The change `op` as the runtime API can make it, or `None` when it needs a reload.
fn kind(op: &Op) -> Option<Kind<'_>> {
    let Op::Write { path, bytes, .. } = op else {
        return None;
    };
    if path == Path::new(CRT_LIST) {
        Some(Kind::CrtList(bytes))
    } else if path.starts_with(DIR)
        && path.parent() == Some(Path::new(DIR))
        && path.extension().is_some_and(|e| e == "map")
    {
        Some(Kind::Map(path, bytes))
    } else {
        None
    }
}

/// Whether every one of `changes` can be made through the runtime API (only maps and the
/// crt-list change), and there is at least one.
pub fn only_runtime_changes(changes: &Changes) -> bool {
    !changes.ops.is_empty() && changes.ops.iter().all(|op| kind(op).is_some())
}

/// Bring the haproxy running on the host under `base` to the front's planned `changes`, while
/// the old files are still in place. `None` when the changes need a reload anyway.
pub fn update(system: &dyn System, base: &Path, changes: &Changes) -> Option<Live> {
    if !only_runtime_changes(changes) {
        return None;
    }
    match send(system, base, changes) {
        Ok(done) => Some(Live::Updated(done)),
        // haproxy does not run (the host's first front, or stopped): the start or reload
        // follows, as without a runtime API.
        Err(Why::NotRunning) => None,
        Err(Why::Failed(why)) => Some(Live::Failed(format!(
            "the running haproxy was not updated live ({why}): it is reloaded"
        ))),
    }
}

/// Why the running haproxy was not updated.
enum Why {
    /// Nothing listens on its runtime API.
    NotRunning,
    /// It refused a command, the socket failed, or it holds something else than the files.
    Failed(String),
}

impl From<String> for Why {
    fn from(why: String) -> Self {
        Self::Failed(why)
    }
}

/// The path haproxy.cfg names for `rel` (relative to the host root).
fn named(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// What a file under `base` holds now (nothing when missing), as text.
fn read_text(system: &dyn System, base: &Path, path: &Path) -> Result<String, String> {
    let real = base.join(path.strip_prefix("/").unwrap_or(path));
    let bytes = system
        .read(&real)
        .map_err(|e| format!("{}: {e}", real.display()))?
        .unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| format!("{} is not text", real.display()))
}

/// Send the commands, read back, compare. Returns what was done, or why it failed.
fn send(system: &dyn System, base: &Path, changes: &Changes) -> Result<String, Why> {
    let start = system.monotonic();
    let socket = base.join(ADMIN_SOCKET);
    let first = std::cell::Cell::new(true);
    let ask = |request: &[u8]| -> Result<String, Why> {
        let answer = system.ask_socket(&socket, request, TIMEOUT);
        let was_first = first.replace(false);
        match answer {
            Ok(a) => Ok(String::from_utf8_lossy(&a).into_owned()),
            Err(e)
                if was_first
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                Err(Why::NotRunning)
            }
            Err(e) => Err(Why::Failed(format!(
                "its runtime API at {}: {e}",
                named(Path::new(ADMIN_SOCKET))
            ))),
        }
    };
    let mut commands: Vec<Command> = Vec::new();
    let mut maps = Vec::new();
    let mut list = None;
    let (mut entries, mut certs) = (0, 0);
    for op in &changes.ops {
        match kind(op).expect("only runtime changes") {
            Kind::Map(path, bytes) => {
                let old = runtime::map_file(&read_text(system, base, path)?);
                let new = runtime::map_file(&String::from_utf8_lossy(bytes));
                let map = named(path);
                let sent = runtime::map_commands(&map, &old, &new)
                    .ok_or_else(|| format!("{map} has an entry the runtime API cannot take"))?;
                entries += sent.len();
                commands.extend(sent);
                maps.push((map, new));
            }
            Kind::CrtList(bytes) => {
                let path = Path::new(CRT_LIST);
                let old = runtime::crt_list_file(&read_text(system, base, path)?);
                let new = runtime::crt_list_file(&String::from_utf8_lossy(bytes));
                let name = named(path);
                let change = runtime::cert_changes(&old, &new)
                    .ok_or_else(|| Why::from("the default certificate changed".to_owned()))?;
                let mut pem = BTreeMap::new();
                for cert in change.loaded() {
                    pem.insert(cert.clone(), read_text(system, base, Path::new(cert))?);
                }
                let sent = runtime::cert_commands(&name, &change, &pem)
                    .ok_or_else(|| format!("{name} names a file the runtime API cannot take"))?;
                certs += change.loaded().count() + change.removed.len();
                commands.extend(sent);
                list = Some((name, new));
            }
        }
    }
    for command in &commands {
        let answer = ask(&command.request())?;
        if !command.succeeded(&answer) {
            return Err(format!("`{}`: {}", command.line, answer.trim()).into());
        }
    }
    for (map, want) in &maps {
        let held = runtime::shown_map(&ask(format!("show map {map}\n").as_bytes())?);
        runtime::same_map(map, &held, want)?;
    }
    if let Some((name, want)) = &list {
        let held = runtime::shown_crt_list(&ask(format!("show ssl crt-list {name}\n").as_bytes())?);
        runtime::same_crt_list(name, &held, want)?;
    }
    let took = system.monotonic().saturating_sub(start);
    Ok(format!(
        "{entries} map entries and {certs} certificates changed in the running haproxy in {:.1} \
         ms, no reload",
        took.as_secs_f64() * 1000.0
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;
    use std::path::PathBuf;

    const HOSTS: &str = "run/srvctl/haproxy/hosts.map";

    fn write(path: &str, text: &str) -> Op {
        Op::Write {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    fn changes(ops: Vec<Op>) -> Changes {
        Changes {
            ops,
            ..Changes::default()
        }
    }

    /// A host under `/r` whose hosts.map holds one site, and a haproxy that answers `show
    /// map` with `held`.
    fn host(held: &str) -> Recording {
        let mut sys = Recording::default();
        sys.write(
            Path::new("/r/run/srvctl/haproxy/hosts.map"),
            b"# header\na.example 10.16.0.2:80\n",
            0o644,
            false,
        )
        .unwrap();
        sys.sockets.insert(
            PathBuf::from("/r/run/srvctl/haproxy/admin.sock"),
            [(
                "show map /run/srvctl/haproxy/hosts.map".to_owned(),
                held.as_bytes().to_vec(),
            )]
            .into(),
        );
        sys
    }

    const NEW: &str = "# header\na.example 10.16.0.2:80\nb.example 10.16.0.3:80\n";

    #[test]
    fn a_new_site_is_sent_and_read_back_without_a_reload() {
        let sys = host("0x1 a.example 10.16.0.2:80\n0x2 b.example 10.16.0.3:80\n");
        let live = update(&sys, Path::new("/r"), &changes(vec![write(HOSTS, NEW)]));
        let Some(Live::Updated(done)) = live else {
            panic!("{live:?}")
        };
        assert!(done.starts_with("1 map entries"), "{done}");
        let asked: Vec<String> = sys
            .asked
            .borrow()
            .iter()
            .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(
            asked,
            [
                "add map /run/srvctl/haproxy/hosts.map b.example 10.16.0.3:80\n",
                "show map /run/srvctl/haproxy/hosts.map\n"
            ]
        );
    }

    #[test]
    fn a_read_back_that_differs_falls_back_to_the_reload() {
        let sys = host("0x1 a.example 10.16.0.2:80\n");
        let live = update(&sys, Path::new("/r"), &changes(vec![write(HOSTS, NEW)]));
        let Some(Live::Failed(why)) = live else {
            panic!("{live:?}")
        };
        assert!(why.contains("lacks `b.example 10.16.0.3:80`"), "{why}");
        assert!(why.contains("it is reloaded"), "{why}");
    }

    #[test]
    fn no_haproxy_running_is_left_to_the_start() {
        let mut sys = host("");
        sys.sockets.clear();
        assert_eq!(
            update(&sys, Path::new("/r"), &changes(vec![write(HOSTS, NEW)])),
            None
        );
    }

    #[test]
    fn a_refused_command_stops_and_falls_back() {
        let mut sys = host("0x1 a.example 10.16.0.2:80\n0x2 b.example 10.16.0.3:80\n");
        sys.sockets.values_mut().next().unwrap().insert(
            "add map /run/srvctl/haproxy/hosts.map b.example 10.16.0.3:80".into(),
            b"Unknown map identifier. Please use #<id> or <file>.\n".to_vec(),
        );
        let live = update(&sys, Path::new("/r"), &changes(vec![write(HOSTS, NEW)]));
        assert!(
            matches!(&live, Some(Live::Failed(why)) if why.contains("Unknown map identifier")),
            "{live:?}"
        );
        assert_eq!(sys.asked.borrow().len(), 1);
    }

    #[test]
    fn a_structural_change_is_left_to_the_reload() {
        let sys = host("");
        let cfg = write("run/srvctl/haproxy/haproxy.cfg", "global\n");
        assert!(
            update(
                &sys,
                Path::new("/r"),
                &changes(vec![write(HOSTS, NEW), cfg])
            )
            .is_none()
        );
        let page = write("run/srvctl/haproxy/errors/503.http", "x");
        assert!(update(&sys, Path::new("/r"), &changes(vec![page])).is_none());
        let gone = Op::Remove { path: HOSTS.into() };
        assert!(update(&sys, Path::new("/r"), &changes(vec![gone])).is_none());
        assert!(update(&sys, Path::new("/r"), &changes(Vec::new())).is_none());
        assert!(sys.asked.borrow().is_empty());
    }
}
