//! The guard in front of haproxy: a new configuration (haproxy.cfg with its maps, crt-list and
//! error pages) is checked with `haproxy -c` before any of it replaces the live files. A
//! configuration haproxy refuses is not applied at all: the old files stay, haproxy is not
//! reloaded, and the error is reported. The proxy never goes down over a bad render.
//!
//! The check runs on a staged copy under `/run/srvctl/haproxy.check/`, with srvctl's paths in
//! it moved there, so the maps and certificates it reads are the new ones.

use std::path::{Path, PathBuf};

use crate::engine::changeset::Changes;
use crate::engine::registry::{Inputs, Module};
use crate::engine::templates::TemplateError;
use crate::engine::tree::{Entry, Tree};
use crate::front::haproxy::{self, CONFIG, DIR};
use crate::system::paths::Paths;
use crate::system::{CommandLine, Request, System};

/// The staging directory, relative to the host root.
pub const STAGING: &str = "run/srvctl/haproxy.check";
/// A fingerprint of the last front `haproxy -c` accepted (durable, so that the same front
/// rendered again after a reboot, when everything under /run is new, is not checked again:
/// the check loads every certificate, about 3 s with 4,000 sites).
pub const CHECKED: &str = "/var/lib/srvctl/haproxy.checked";

/// What the guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing of the front changes.
    Unchanged,
    /// `haproxy -c` accepted the new configuration.
    Checked,
    /// Only maps changed: they cannot break the configuration, so it was not checked.
    MapsOnly,
    /// Only maps and the crt-list changed and haproxy runs: they go to it through its runtime
    /// API, which loads each new certificate itself (a reload, if it comes to one, is checked
    /// by haproxy.service), so the whole configuration is not checked again.
    Live,
    /// `haproxy -c` accepted this very front before.
    CheckedBefore,
    /// haproxy is not installed: the files are written unchecked.
    NotChecked(String),
    /// `haproxy -c` refused it: none of it was applied.
    Refused(String),
}

/// The haproxy program, if installed.
pub fn haproxy_program(system: &dyn System) -> Option<PathBuf> {
    crate::system::program(system, "haproxy")
}

/// Check the front rendered in `tree`, whose planned changes are `changes`. The verdict only
/// decides: when haproxy refuses, the engine leaves every change of the front out.
pub fn guard(
    system: &dyn System,
    paths: &Paths,
    tree: &Tree,
    changes: &Changes,
    program: Option<&Path>,
) -> Verdict {
    if changes.ops.is_empty() {
        return Verdict::Unchanged;
    }
    // Maps hold only validated names and URLs and are read as data: a change to them alone
    // (a redirect, an alias without a new certificate) cannot break the configuration, and
    // skips the check, which loads every certificate (3 s with 4,000 sites).
    let maps_only = changes.ops.iter().all(|op| {
        matches!(op, crate::engine::changeset::Op::Write { path, .. }
            if path.starts_with(DIR) && path.extension().is_some_and(|e| e == "map"))
    });
    if maps_only {
        return Verdict::MapsOnly;
    }
    if crate::front::live::only_runtime_changes(changes) && runs(system, paths) {
        return Verdict::Live;
    }
    let Some(program) = program else {
        return Verdict::NotChecked(
            "haproxy is not installed: its configuration is written without `haproxy -c`".into(),
        );
    };
    let stamp = paths.host(CHECKED);
    let print = fingerprint(tree);
    if system.read(&stamp).ok().flatten().as_deref() == Some(print.as_bytes()) {
        return Verdict::CheckedBefore;
    }
    match check(system, paths, tree, program, STAGING) {
        Ok(()) => {
            // Losing the stamp only costs a check next time.
            let _ = system.write(&stamp, print.as_bytes(), 0o600, true);
            Verdict::Checked
        }
        Err(msg) => Verdict::Refused(format!(
            "haproxy refused the new configuration; the running one is kept: {msg}"
        )),
    }
}

/// Whether haproxy answers on its runtime API.
fn runs(system: &dyn System, paths: &Paths) -> bool {
    let socket = paths.host(&format!("/{}", haproxy::ADMIN_SOCKET));
    system
        .ask_socket(&socket, b"show info\n", std::time::Duration::from_secs(2))
        .is_ok_and(|answer| answer.starts_with(b"Name: HAProxy"))
}

/// A fingerprint of the front in `tree`: every file, path and bytes (the crt-list names each
/// certificate's issue time, so a new certificate changes it too).
fn fingerprint(tree: &Tree) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (path, entry) in tree.entries() {
        if let Entry::File { bytes, .. } = entry {
            path.hash(&mut h);
            bytes.hash(&mut h);
        }
    }
    format!("{:016x}\n", h.finish())
}

/// Where `sc diagnose` stages the installed front (not [`STAGING`], which a regenerate running
/// at the same time may be using).
pub const DIAGNOSE_STAGING: &str = "run/srvctl/haproxy.diagnose";

/// Check the front this host has installed with `haproxy -c`, as the guard checks a new one:
/// its `files` (paths relative to the front's directory) read back and staged, with srvctl's
/// paths moved there.
pub fn check_installed(
    system: &dyn System,
    paths: &Paths,
    program: &Path,
    files: &[PathBuf],
) -> Result<(), String> {
    let dir = paths.host(&format!("/{DIR}"));
    let mut tree = Tree::default();
    for file in files {
        let path = dir.join(file);
        let bytes = system
            .read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .unwrap_or_default();
        tree.file(
            format!("{DIR}/{}", file.to_string_lossy()),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
    }
    check(system, paths, &tree, program, DIAGNOSE_STAGING)
}

/// Stage the front of `tree` under `staging` (relative to the host root) and run
/// `haproxy -c` on it.
fn check(
    system: &dyn System,
    paths: &Paths,
    tree: &Tree,
    program: &Path,
    staging: &str,
) -> Result<(), String> {
    let staging = paths.host(&format!("/{staging}"));
    let certs_dir = crate::front::certs::dir(paths);
    let result = (|| {
        system
            .remove_tree(&staging)
            .map_err(|e| format!("{}: {e}", staging.display()))?;
        for (path, entry) in tree.entries() {
            let Entry::File { bytes, .. } = entry else {
                continue;
            };
            let (dest, relocate) = if path == Path::new(CONFIG) {
                (staging.join("haproxy.cfg"), true)
            } else if let Ok(rest) = path.strip_prefix(DIR) {
                (staging.join(rest), rest == Path::new("crt-list"))
            } else {
                continue;
            };
            let bytes = if relocate {
                haproxy::relocate(&String::from_utf8_lossy(bytes), &staging, &certs_dir)
                    .into_bytes()
            } else {
                bytes.clone()
            };
            system
                .write(&dest, &bytes, 0o600, false)
                .map_err(|e| format!("{}: {e}", dest.display()))?;
        }
        let args = vec![
            "-c".into(),
            "-f".into(),
            staging.join("haproxy.cfg").into_os_string(),
        ];
        system
            .run(&CommandLine::new(&program.to_string_lossy(), args))
            .map_err(|e| e.to_string())
    })();
    let _ = system.remove_tree(&staging);
    result
}

/// The front module: haproxy.cfg and what it reads under `/run/srvctl/haproxy/`, checked by
/// [`guard`] before it replaces the live files. A change of maps and the crt-list only goes to
/// the running haproxy through its runtime API ([`crate::front::live`]); any other change, or
/// one the runtime API did not take, reloads haproxy.
pub struct Front;

impl Module for Front {
    fn name(&self) -> &'static str {
        "front"
    }

    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
        haproxy::render(
            tree,
            inputs.state,
            inputs.me,
            inputs.settings,
            inputs.acme_listen,
            inputs.certificates,
            inputs.templates,
        )
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[DIR]
    }

    /// A reload when haproxy runs; a start when it does not (the first front of a host, or a
    /// haproxy that srvctl's drop-in kept from starting before there was one).
    fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
        if changed.is_empty() {
            return Vec::new();
        }
        vec![
            Request::Reload(haproxy::UNIT.into()),
            Request::StartIfStopped(haproxy::UNIT.into()),
        ]
    }

    fn update_live(
        &self,
        system: &dyn System,
        base: &Path,
        changes: &Changes,
    ) -> Option<crate::engine::registry::Live> {
        crate::front::live::update(system, base, changes)
    }

    fn guard(
        &self,
        system: &dyn System,
        paths: &Paths,
        tree: &Tree,
        changes: &Changes,
    ) -> crate::engine::registry::Verdict {
        use crate::engine::registry::Verdict as V;
        match guard(
            system,
            paths,
            tree,
            changes,
            haproxy_program(system).as_deref(),
        ) {
            Verdict::NotChecked(note) => V::Note(note),
            Verdict::Refused(error) => V::Refuse(error),
            Verdict::Unchanged
            | Verdict::Checked
            | Verdict::MapsOnly
            | Verdict::Live
            | Verdict::CheckedBefore => V::Accept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::changeset::{self, Op};
    use crate::system::Recording;
    use std::collections::BTreeSet;

    fn tree(cfg: &str) -> Tree {
        let mut t = Tree::default();
        t.file(CONFIG, cfg.into());
        t.file(format!("{DIR}/hosts.map"), "a.example c:a.example\n".into());
        t.file(
            format!("{DIR}/crt-list"),
            "/var/lib/srvctl/certs/_default.pem\n".into(),
        );
        t
    }

    #[test]
    fn the_staged_copy_is_checked_with_paths_moved() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let t = tree("bind :443 ssl crt-list /run/srvctl/haproxy/crt-list\n");
        let changes = changeset::plan(&Front, &t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
        let v = guard(
            &sys,
            &paths,
            &t,
            &changes,
            Some(Path::new("/usr/sbin/haproxy")),
        );
        assert_eq!(v, Verdict::Checked);
        let cmd = &sys.commands.borrow()[0];
        assert_eq!(
            cmd.to_string(),
            "/usr/sbin/haproxy -c -f /r/run/srvctl/haproxy.check/haproxy.cfg"
        );
        // Staged with the paths moved, then removed.
        let written = sys.writes.borrow();
        assert!(written.contains(&PathBuf::from("/r/run/srvctl/haproxy.check/crt-list")));
        assert!(
            sys.read(Path::new("/r/run/srvctl/haproxy.check/haproxy.cfg"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            Front.reloads(&[Path::new(CONFIG)]),
            [
                Request::Reload(haproxy::UNIT.into()),
                Request::StartIfStopped(haproxy::UNIT.into())
            ]
        );
        assert_eq!(Front.reloads(&[]), []);
        // The same front again (after a reboot emptied /run): not checked twice.
        assert_eq!(
            guard(&sys, &paths, &t, &changes, Some(Path::new("haproxy"))),
            Verdict::CheckedBefore
        );
        assert_eq!(sys.commands.borrow().len(), 1);
        // Only maps changed: no check needed, haproxy reloads.
        let maps = changeset::Changes {
            ops: vec![Op::Write {
                path: PathBuf::from(DIR).join("hosts.map"),
                bytes: Vec::new(),
                mode: 0o644,
            }],
            ..changeset::Changes::default()
        };
        assert_eq!(guard(&sys, &paths, &t, &maps, None), Verdict::MapsOnly);
        assert_eq!(sys.commands.borrow().len(), 1);
        // Unchanged files: no check.
        let none = changeset::Changes::default();
        assert_eq!(guard(&sys, &paths, &t, &none, None), Verdict::Unchanged);
        // No haproxy: written unchecked, with a note.
        assert!(matches!(
            guard(&sys, &paths, &t, &changes, None),
            Verdict::NotChecked(_)
        ));
    }

    #[test]
    fn a_certificate_change_goes_unchecked_to_a_running_haproxy() {
        let mut sys = Recording::default();
        let paths = Paths::rooted("/r");
        let crt_list = changeset::Changes {
            ops: vec![Op::Write {
                path: PathBuf::from(DIR).join("crt-list"),
                bytes: Vec::new(),
                mode: 0o644,
            }],
            ..changeset::Changes::default()
        };
        let t = tree("global\n");
        let haproxy = Some(Path::new("haproxy"));
        // Not running: checked.
        assert_eq!(
            guard(&sys, &paths, &t, &crt_list, haproxy),
            Verdict::Checked
        );
        sys.sockets.insert(
            PathBuf::from("/r/run/srvctl/haproxy/admin.sock"),
            [(
                "show info".into(),
                b"Name: HAProxy\nVersion: 2.6\n".to_vec(),
            )]
            .into(),
        );
        let _ = sys.remove(Path::new("/r/var/lib/srvctl/haproxy.checked"));
        let before = sys.commands.borrow().len();
        assert_eq!(guard(&sys, &paths, &t, &crt_list, haproxy), Verdict::Live);
        assert_eq!(sys.commands.borrow().len(), before);
    }

    #[test]
    fn relocation_points_at_the_staging_dir() {
        let text = haproxy::relocate(
            "crt-list /run/srvctl/haproxy/crt-list\n/var/lib/srvctl/certs/a.pem\n",
            Path::new("/s"),
            Path::new("/c"),
        );
        assert_eq!(text, "crt-list /s/crt-list\n/c/a.pem\n");
    }

    #[test]
    fn a_refused_front_says_why() {
        // Like a `haproxy -c` that refuses the config.
        let sys = Recording {
            failing_programs: [("haproxy".into(), "unknown keyword".into())].into(),
            ..Recording::default()
        };
        let paths = Paths::rooted("/r");
        let t = tree("broken\n");
        let changes = changeset::plan(&Front, &t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
        let v = guard(&sys, &paths, &t, &changes, Some(Path::new("haproxy")));
        let Verdict::Refused(msg) = v else {
            panic!("{v:?}")
        };
        assert!(msg.contains("unknown keyword"), "{msg}");
        assert!(msg.contains("the running one is kept"), "{msg}");
        assert!(
            sys.read(Path::new("/r/var/lib/srvctl/haproxy.checked"))
                .unwrap()
                .is_none()
        );
    }
}
