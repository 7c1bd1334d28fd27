//! The guard in front of named: the new named.conf fragment is checked with `named-checkconf`,
//! and every zone file that changes is loaded by `named-checkconf -z` as named would load it
//! (one process for all of them: a first run on a DNS master checks thousands of zones), on a
//! staged copy under `/run/srvctl/dns.check/`, before any of them replaces the live files. If one of them is
//! refused, none of the module's changes is applied: the old zones keep serving and named is
//! not reloaded. A fragment that reads the transfer key ([`crate::dns::transfer`]) is refused
//! while the key file is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dns::transfer::{KEY_FILE, include_key};
use crate::dns::zones::{CONFIG, ZONES};
use crate::engine::changeset::{Changes, Op};
use crate::engine::registry::Verdict;
use crate::engine::tree::{Entry, Tree};
use crate::system::paths::Paths;
use crate::system::{CommandLine, Program, System};

/// The staging directory, relative to the host root.
pub const STAGING: &str = "run/srvctl/dns.check";

/// The checker, where installed.
pub struct Checkers {
    /// `named-checkconf`.
    pub checkconf: PathBuf,
}

impl Checkers {
    /// The checker, if it is installed (Debian `bind9-utils`, Fedora `bind-utils`).
    pub fn find(system: &dyn System) -> Option<Self> {
        Some(Self {
            checkconf: crate::system::program(system, "named-checkconf")?,
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
            "named-checkconf is not installed: the DNS zones are written unchecked".into(),
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
    let stage = |name: &str, bytes: &[u8]| -> Result<PathBuf, String> {
        let dest = staging.join(name);
        system
            .write(&dest, bytes, 0o644, false)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        Ok(dest)
    };
    let rendered = |path: &Path| {
        bytes_of(tree, path).ok_or_else(|| format!("{} is not rendered", path.display()))
    };
    // Without -z, named-checkconf reads no zone file: the fragment is checked as it is, but
    // for the key file it includes, read where this host's root has it.
    let fragment = String::from_utf8_lossy(rendered(Path::new(CONFIG))?).replace(
        &include_key(KEY_FILE),
        &include_key(&paths.host(KEY_FILE).to_string_lossy()),
    );
    let conf = stage("named.conf", fragment.as_bytes())?;
    run(system, &checkers.checkconf, vec![conf.into_os_string()])?;
    let mut zones = String::new();
    // Each zone as it is to be written (with its settled serial).
    for &(path, bytes) in written {
        let Ok(file) = path.strip_prefix(ZONES) else {
            continue;
        };
        let file = file.to_string_lossy();
        let Some(zone) = file.strip_suffix(".zone") else {
            continue;
        };
        stage(&file, bytes)?;
        // The zone's name is a validated domain and its file name is made of it.
        zones.push_str(&format!(
            "zone \"{zone}\" {{ type master; file \"{file}\"; }};\n"
        ));
    }
    if zones.is_empty() {
        return Ok(());
    }
    // named's own defaults for a master zone: names checked (`check-names master fail`) and
    // in-zone integrity (`check-integrity`), the same as `named-checkzone -i local -k fail`.
    let config = format!(
        "options {{ directory \"{}\"; }};\n{zones}",
        quoted(&staging.to_string_lossy())
    );
    let check = stage("zones.conf", config.as_bytes())?;
    load(system, &checkers.checkconf, check)
}

/// How long loading the changed zones may take (thousands of them on a first run).
const LOAD_TIME: Duration = Duration::from_secs(300);

/// `named-checkconf -z CONFIG`: load every zone `config` declares. It prints each zone's
/// errors on its standard output (`zone example.com/IN: has 0 SOA records`), which the
/// refusal quotes (the first few).
fn load(system: &dyn System, checkconf: &Path, config: PathBuf) -> Result<(), String> {
    let command = CommandLine::new(
        &checkconf.to_string_lossy(),
        ["-z".into(), config.into_os_string()],
    );
    let finished = system
        .run_program(&Program {
            command: &command,
            input: &[],
            timeout: LOAD_TIME,
        })
        .map_err(|e| e.to_string())?;
    if finished.code == Some(0) {
        return Ok(());
    }
    let stdout = String::from_utf8_lossy(&finished.stdout);
    let stderr = String::from_utf8_lossy(&finished.stderr);
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("zone ") && !l.ends_with("not loaded due to errors."))
        .take(5)
        .collect();
    let said = match errors.is_empty() {
        true => stderr.trim(),
        false => &errors.join(" / "),
    };
    Err(match finished.timed_out {
        true => format!("`{command}` took longer than {} s", LOAD_TIME.as_secs()),
        false => format!("`{command}` failed: {said}"),
    })
}

/// `text` inside a named.conf string: backslashes and quotes escaped.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The bytes of the file `path` of `tree`, if it renders one.
fn bytes_of<'t>(tree: &'t Tree, path: &Path) -> Option<&'t [u8]> {
    match tree.get(path)? {
        Entry::File { bytes, .. } => Some(bytes.as_slice()),
        _ => None,
    }
}

fn run(system: &dyn System, program: &Path, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    system
        .run(&CommandLine::new(&program.to_string_lossy(), args))
        .map_err(|e| e.to_string())
}
