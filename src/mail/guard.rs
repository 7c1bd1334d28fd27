//! The guard in front of postfix and OpenDKIM: the new configuration is staged under
//! `/run/srvctl/mail.check/`, with srvctl's paths in it moved there, and checked with
//! `postconf -c DIR -n` (main.cf) and `postconf -c DIR -M` (master.cf), which parse each as
//! postfix does, and `opendkim -n -x` (opendkim.conf) before any of it replaces the live files.
//! (`postfix check` is left to the unit, before each start and reload: it also repairs the
//! queue's owners, which needs privileges srvctl-regenerate does not hold.) If one refuses, none of the
//! module's changes is applied: the running mail services keep their configuration and are
//! not reloaded. A change of the tables alone ([`TABLES`], what a new site changes) is not
//! checked: their lines are built from validated values.

use std::path::{Path, PathBuf};

use crate::engine::changeset::Changes;
use crate::engine::registry::Verdict;
use crate::engine::tree::{Entry, Tree};
use crate::mail::DIR;
use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// The staging directory, relative to the host root.
pub const STAGING: &str = "run/srvctl/mail.check";

/// The checkers, where installed.
pub struct Checkers {
    /// `postconf`.
    pub postconf: PathBuf,
    /// `opendkim`.
    pub opendkim: PathBuf,
}

impl Checkers {
    /// Both, if postfix and OpenDKIM are installed.
    pub fn find(system: &dyn System) -> Option<Self> {
        Some(Self {
            postconf: crate::system::program(system, "postconf")?,
            opendkim: crate::system::program(system, "opendkim")?,
        })
    }
}

/// Check the mail configuration of `tree`, whose planned changes are `changes`. Nothing
/// changed, nothing checked.
pub fn guard(
    system: &dyn System,
    paths: &Paths,
    tree: &Tree,
    changes: &Changes,
    checkers: Option<&Checkers>,
) -> Verdict {
    if changes.ops.is_empty() || tables_only(changes) {
        return Verdict::Accept;
    }
    let Some(checkers) = checkers else {
        return Verdict::Note(
            "postfix or opendkim is not installed: the mail configuration is written unchecked \
             (sc update-install installs them)"
                .into(),
        );
    };
    let staging = paths.host(&format!("/{STAGING}"));
    let result = check(system, &staging, tree, checkers);
    let _ = system.remove_tree(&staging);
    match result {
        Ok(()) => Verdict::Accept,
        Err(e) => Verdict::Refuse(format!(
            "the new mail configuration was refused; the running one is kept: {e}"
        )),
    }
}

/// The tables of the two configurations, relative to the host root: the lines of validated
/// domains, addresses, selectors and networks that adding or removing a site changes.
pub const TABLES: &[&str] = &[
    "run/srvctl/mail/postfix/relay_domains",
    "run/srvctl/mail/postfix/transport",
    "run/srvctl/mail/opendkim/KeyTable",
    "run/srvctl/mail/opendkim/SigningTable",
    "run/srvctl/mail/opendkim/TrustedHosts",
];

/// Whether `changes` only write tables: they cannot break a configuration (each line is built
/// from validated values), so a new site skips the check.
fn tables_only(changes: &Changes) -> bool {
    changes.ops.iter().all(|op| {
        matches!(op, crate::engine::changeset::Op::Write { path, .. }
            if TABLES.iter().any(|t| path == Path::new(t)))
    })
}

fn check(
    system: &dyn System,
    staging: &Path,
    tree: &Tree,
    checkers: &Checkers,
) -> Result<(), String> {
    system
        .remove_tree(staging)
        .map_err(|e| format!("{}: {e}", staging.display()))?;
    let live = format!("/{DIR}/");
    let moved = format!("{}/", staging.display());
    for (path, entry) in tree.entries() {
        let (Entry::File { bytes, .. }, Ok(rest)) = (entry, path.strip_prefix(DIR)) else {
            continue;
        };
        let text = String::from_utf8_lossy(bytes).replace(&live, &moved);
        let dest = staging.join(rest);
        system
            .write(&dest, text.as_bytes(), 0o644, false)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    let arg = |p: PathBuf| p.into_os_string();
    let postfix_dir = staging.join("postfix");
    run(
        system,
        &checkers.postconf,
        vec!["-c".into(), arg(postfix_dir.clone()), "-n".into()],
    )?;
    run(
        system,
        &checkers.postconf,
        vec!["-c".into(), arg(postfix_dir), "-M".into()],
    )?;
    run(
        system,
        &checkers.opendkim,
        vec![
            "-n".into(),
            "-x".into(),
            arg(staging.join("opendkim/opendkim.conf")),
        ],
    )
}

fn run(system: &dyn System, program: &Path, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let command = CommandLine::new(&program.to_string_lossy(), args);
    system.run(&command).map_err(|e| format!("{command}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::changeset;
    use crate::system::Recording;
    use std::collections::BTreeSet;

    /// The mail module's changes for `t` on an empty root `/r`.
    fn planned(t: &Tree, sys: &Recording) -> Changes {
        changeset::plan(
            &crate::mail::Mail,
            t,
            Path::new("/r"),
            &BTreeSet::new(),
            sys,
        )
        .unwrap()
    }

    fn checkers() -> Checkers {
        Checkers {
            postconf: "postconf".into(),
            opendkim: "opendkim".into(),
        }
    }

    fn tree() -> Tree {
        let mut t = Tree::default();
        t.file(
            format!("{DIR}/postfix/main.cf"),
            "relay_domains = texthash:/run/srvctl/mail/postfix/relay_domains\n".into(),
        );
        t.file(format!("{DIR}/opendkim/opendkim.conf"), "Mode sv\n".into());
        t
    }

    #[test]
    fn the_staged_copy_is_checked_with_paths_moved() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let t = tree();
        let changes = planned(&t, &sys);
        assert_eq!(
            guard(&sys, &paths, &t, &changes, Some(&checkers())),
            Verdict::Accept
        );
        let ran: Vec<String> = sys
            .commands
            .borrow()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            ran,
            [
                "postconf -c /r/run/srvctl/mail.check/postfix -n",
                "postconf -c /r/run/srvctl/mail.check/postfix -M",
                "opendkim -n -x /r/run/srvctl/mail.check/opendkim/opendkim.conf",
            ]
        );
        assert!(
            sys.writes
                .borrow()
                .contains(&PathBuf::from("/r/run/srvctl/mail.check/postfix/main.cf"))
        );
        // Staged, checked, removed.
        assert!(
            sys.read(Path::new("/r/run/srvctl/mail.check/postfix/main.cf"))
                .unwrap()
                .is_none()
        );
        // Nothing changed: nothing checked.
        let before = sys.commands.borrow().len();
        let none = changeset::Changes::default();
        assert_eq!(
            guard(&sys, &paths, &t, &none, Some(&checkers())),
            Verdict::Accept
        );
        assert_eq!(sys.commands.borrow().len(), before);
        // Not installed: written with a note.
        assert!(matches!(
            guard(&sys, &paths, &t, &changes, None),
            Verdict::Note(_)
        ));
    }

    #[test]
    fn a_change_of_tables_alone_is_not_checked() {
        let sys = Recording::default();
        let mut t = Tree::default();
        for table in TABLES {
            t.file(*table, "example.com OK\n".into());
        }
        let changes = planned(&t, &sys);
        assert_eq!(
            guard(&sys, &Paths::rooted("/r"), &t, &changes, Some(&checkers())),
            Verdict::Accept
        );
        assert!(sys.commands.borrow().is_empty());
    }

    #[test]
    fn a_refused_configuration_is_not_applied() {
        let sys = Recording {
            failing_programs: [("postconf".into(), "bad field count".into())].into(),
            ..Recording::default()
        };
        let t = tree();
        let changes = planned(&t, &sys);
        let v = guard(&sys, &Paths::rooted("/r"), &t, &changes, Some(&checkers()));
        let Verdict::Refuse(msg) = v else {
            panic!("{v:?}")
        };
        assert!(
            msg.contains("bad field count") && msg.contains("running one is kept"),
            "{msg}"
        );
    }
}
