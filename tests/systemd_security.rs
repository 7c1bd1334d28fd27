//! Every service srvctl ships is sandboxed as far as its job allows, and stays so: its
//! `systemd-analyze security` exposure score is at or below the one docs/security.md states.
//!
//! The table of docs/security.md ("Unit sandboxes") is the record: one row per service in
//! units/, the score after hardening in its last column. The units are copied into a scratch
//! root's `/etc/systemd/system` (so no unit or drop-in of this machine mixes in) and scored
//! with `systemd-analyze security --offline=true --root=ROOT`; the template
//! `srvctl-mesh@.service` is scored as an instance. A unit that loses a line of its sandbox
//! scores higher, which a copy of srvctl-nat.service without its capability bounding set
//! proves.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::real::{output, require_tool};

/// The document whose table records each unit's score.
const DOC: &str = "docs/security.md";

/// The instance a template is scored as.
const INSTANCE: &str = "server";

/// The service files in units/, by file name.
fn shipped_services() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".service"))
        .collect();
    names.sort();
    names
}

/// The scores of the table in docs/security.md: the rows whose first cell is a unit file name
/// in backquotes, the score after hardening in the last cell.
fn documented_scores() -> BTreeMap<String, f64> {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC)).unwrap();
    let mut scores = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(unit) = cells
            .first()
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix(".service`"))
        else {
            continue;
        };
        let last = cells.last().unwrap();
        let score: f64 = last
            .parse()
            .unwrap_or_else(|_| panic!("{DOC}: the score of {unit}.service is {last:?}"));
        let previous = scores.insert(format!("{unit}.service"), score);
        assert!(previous.is_none(), "{DOC} lists {unit}.service twice");
    }
    scores
}

/// The name `systemd-analyze` is asked about for unit file `file`.
fn scored_name(file: &str) -> String {
    match file.strip_suffix("@.service") {
        Some(template) => format!("{template}@{INSTANCE}.service"),
        None => file.to_owned(),
    }
}

/// The overall exposure of each of `files` (unit files in `root`'s /etc/systemd/system), by
/// file name.
fn measure(root: &Path, files: &[String]) -> BTreeMap<String, f64> {
    let names: Vec<String> = files.iter().map(|f| scored_name(f)).collect();
    let out = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .args(&names)
            .env("SYSTEMD_LOG_COLOR", "0")
            .env("SYSTEMD_COLORS", "0"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security failed ({:?}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_name = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line
            .split_once("Overall exposure level for ")
            .map(|(_, r)| r)
        else {
            continue;
        };
        let (name, tail) = rest.split_once(": ").expect("NAME: SCORE");
        let score = tail.split_whitespace().next().unwrap();
        by_name.insert(name.to_owned(), score.parse::<f64>().unwrap());
    }
    files
        .iter()
        .zip(&names)
        .map(|(file, name)| {
            let score = *by_name
                .get(name)
                .unwrap_or_else(|| panic!("no overall exposure for {name} in:\n{text}"));
            (file.clone(), score)
        })
        .collect()
}

/// A scratch root holding `units` (file name, text) in /etc/systemd/system.
fn root_with(units: &[(String, String)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("etc/systemd/system");
    fs::create_dir_all(&dir).unwrap();
    for (name, text) in units {
        fs::write(dir.join(name), text).unwrap();
    }
    root
}

#[test]
fn every_service_scores_at_or_below_its_documented_exposure() {
    require_tool("/usr/bin/systemd-analyze");
    let files = shipped_services();
    let documented = documented_scores();
    assert_eq!(
        files,
        documented.keys().cloned().collect::<Vec<_>>(),
        "{DOC}'s table must list exactly the services in units/"
    );

    let units: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("units").join(f);
            (f.clone(), fs::read_to_string(path).unwrap())
        })
        .collect();
    let root = root_with(&units);
    let measured = measure(root.path(), &files);

    println!("{:<34} {:>8} {:>8}", "unit", "measured", "ceiling");
    for (file, score) in &measured {
        println!("{file:<34} {score:>8.1} {:>8.1}", documented[file]);
    }
    let over: Vec<String> = measured
        .iter()
        .filter(|(file, score)| **score > documented[*file])
        .map(|(file, score)| format!("{file}: {score} > {}", documented[file]))
        .collect();
    assert!(
        over.is_empty(),
        "exposure above the score {DOC} states:\n{}",
        over.join("\n")
    );

    // Negative control: without its capability bounding set, srvctl-nat.service exposes more
    // than its ceiling allows.
    let nat = "srvctl-nat.service".to_owned();
    let text = &units.iter().find(|(f, _)| *f == nat).unwrap().1;
    let loosened: String = text
        .lines()
        .filter(|l| !l.starts_with("CapabilityBoundingSet="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        &loosened, text,
        "srvctl-nat.service has a CapabilityBoundingSet= line"
    );
    let root = root_with(&[(nat.clone(), loosened)]);
    let score = measure(root.path(), std::slice::from_ref(&nat))[&nat];
    assert!(
        score > documented[&nat],
        "srvctl-nat.service without CapabilityBoundingSet= scores {score}, not above {}",
        documented[&nat]
    );
}
