//! The guard in front of named: the new named.conf fragment is checked with `named-checkconf`
//! and every zone file that changes with `named-checkzone`, on a staged copy under
//! `/run/srvctl/dns.check/`, before any of them replaces the live files. If one of them is
//! refused, none of the module's changes is applied: the old zones keep serving and named is
//! not reloaded. A fragment that reads the transfer key ([`crate::dns::transfer`]) is refused
//! while the key file is missing.

use std::path::{Path, PathBuf};

use crate::dns::transfer::{KEY_FILE, include_key};
use crate::dns::zones::{CONFIG, ZONES};
use crate::engine::changeset::{Changes, Op};
use crate::engine::registry::Verdict;
use crate::engine::tree::{Entry, Tree};
use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// The staging directory, relative to the host root.
pub const STAGING: &str = "run/srvctl/dns.check";

/// The checkers, where installed.
pub struct Checkers {
    /// `named-checkconf`.
    pub checkconf: PathBuf,
    /// `named-checkzone`.
    pub checkzone: PathBuf,
}

impl Checkers {
    /// Both checkers, if both are installed (Debian `bind9-utils`, Fedora `bind-utils`).
    pub fn find(system: &dyn System) -> Option<Self> {
        Some(Self {
            checkconf: crate::system::program(system, "named-checkconf")?,
            checkzone: crate::system::program(system, "named-checkzone")?,
        })
    }
}

/// Check the DNS files of `tree` whose planned changes are `changes`: the fragment, and each
/// zone file written. Nothing written, nothing checked.
pub fn guard(
    system: &dyn System,
    paths: &Paths,
    tree: &Tree,
    changes: &Changes,
    checkers: Option<&Checkers>,
) -> Verdict {
    let written: Vec<(&Path, &[u8])> = changes
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Write { path, bytes, .. } => Some((path.as_path(), bytes.as_slice())),
            _ => None,
        })
        .collect();
    if written.is_empty() {
        return Verdict::Accept;
    }
    let key = paths.host(KEY_FILE);
    let needs_key = bytes_of(tree, Path::new(CONFIG))
        .is_some_and(|b| String::from_utf8_lossy(b).contains(&include_key(KEY_FILE)));
    if needs_key && !matches!(system.read(&key), Ok(Some(_))) {
        return Verdict::Refuse(format!(
            "the zone transfer key {} is missing (srvctl-sync installs it from etcd once this \
             host has its cluster certificate); the running zones are kept",
            key.display()
        ));
    }
    let Some(checkers) = checkers else {
        return Verdict::Note(
            "named-checkconf or named-checkzone is not installed: the DNS zones are written \
             unchecked"
                .into(),
        );
    };
    let staging = paths.host(&format!("/{STAGING}"));
    let result = check(system, paths, &staging, tree, &written, checkers);
    let _ = system.remove_tree(&staging);
    match result {
        Ok(()) => Verdict::Accept,
        Err(e) => Verdict::Refuse(format!(
            "named would not load the new DNS configuration; the running zones are kept: {e}"
        )),
    }
}

fn check(
    system: &dyn System,
    paths: &Paths,
    staging: &Path,
    tree: &Tree,
    written: &[(&Path, &[u8])],
    checkers: &Checkers,
) -> Result<(), String> {
    system
        .remove_tree(staging)
        .map_err(|e| format!("{}: {e}", staging.display()))?;
    let stage = |path: &Path, name: &str, bytes: Option<&[u8]>| -> Result<PathBuf, String> {
        let dest = staging.join(name);
        let bytes = bytes
            .or_else(|| bytes_of(tree, path))
            .ok_or_else(|| format!("{} is not rendered", path.display()))?;
        system
            .write(&dest, bytes, 0o644, false)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        Ok(dest)
    };
    // Without -z, named-checkconf reads no zone file: the fragment is checked as it is, but
    // for the key file it includes, read where this host's root has it.
    let fragment = bytes_of(tree, Path::new(CONFIG)).map(|b| {
        String::from_utf8_lossy(b).replace(
            &include_key(KEY_FILE),
            &include_key(&paths.host(KEY_FILE).to_string_lossy()),
        )
    });
    let conf = stage(
        Path::new(CONFIG),
        "named.conf",
        fragment.as_deref().map(str::as_bytes),
    )?;
    run(system, &checkers.checkconf, vec![conf.into_os_string()])?;
    // Each zone as it is to be written (with its settled serial).
    for &(path, bytes) in written {
        let Ok(file) = path.strip_prefix(ZONES) else {
            continue;
        };
        let file = file.to_string_lossy();
        let Some(zone) = file.strip_suffix(".zone") else {
            continue;
        };
        let staged = stage(path, &file, Some(bytes))?;
        // `-i local`: integrity checks that need no lookups outside the zone.
        let args = ["-i", "local", "-k", "fail", zone]
            .map(Into::into)
            .into_iter()
            .chain([staged.into_os_string()])
            .collect();
        run(system, &checkers.checkzone, args).map_err(|e| format!("zone {zone}: {e}"))?;
    }
    Ok(())
}

/// The bytes of the file `path` of `tree`, if it renders one.
fn bytes_of<'t>(tree: &'t Tree, path: &Path) -> Option<&'t [u8]> {
    tree.entries().find_map(|(p, e)| match e {
        Entry::File { bytes, .. } if p == path => Some(bytes.as_slice()),
        _ => None,
    })
}

fn run(system: &dyn System, program: &Path, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    system
        .run(&CommandLine::new(&program.to_string_lossy(), args))
        .map_err(|e| e.to_string())
}
