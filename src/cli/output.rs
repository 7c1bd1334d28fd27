//! How `sc` prints: text for people, JSON (`--json`) for scripts.

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use super::Failure;
pub use crate::ops::Report;
use crate::ops::import_v3::ImportReport;
use crate::ops::views::{self, Fields, Kind, StatusRow};

/// `text` as it is, or escaped (quoted, control characters visible) when it holds any, so
/// that it stays one line.
fn one_line(text: &str) -> String {
    match text.chars().any(char::is_control) {
        true => format!("{text:?}"),
        false => text.to_owned(),
    }
}

/// The printer.
pub struct Output {
    json: bool,
    stdout: std::io::StdoutLock<'static>,
    /// Under `--json`, the report of a committed change, printed when the command ends.
    committed: Option<serde_json::Value>,
}

impl Output {
    /// Text, or JSON when `json`.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            stdout: std::io::stdout().lock(),
            committed: None,
        }
    }

    /// End the command that ended with `result`. Under `--json` a command prints one
    /// document: the report of its change once all that follows the change succeeded, or
    /// else the error, which carries the report as `committed` (the datastore has the change;
    /// the message says what did not follow).
    pub fn finish(mut self, result: Result<(), Failure>) -> Result<(), Failure> {
        match (result, self.committed.take()) {
            (Ok(()), Some(report)) => self.json(&report),
            (Ok(()), None) => Ok(()),
            (Err(f), committed) => Err(f.after_commit(committed)),
        }
    }

    fn line(&mut self, text: &str) -> Result<(), Failure> {
        writeln!(self.stdout, "{text}").map_err(Failure::from_stdout)?;
        Ok(())
    }

    fn json(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(&text)
    }

    /// Print the outcome of a change: as text now, under `--json` when the command ends
    /// ([`Output::finish`]).
    pub fn report(&mut self, report: &Report) -> Result<(), Failure> {
        if self.json {
            self.committed = Some(serde_json::to_value(report)?);
            return Ok(());
        }
        let text = match report {
            Report::Reseller(r) => format!("reseller {} added: id {}, uid {}", r.name, r.id, r.uid),
            Report::User(u) => format!(
                "user {} added to reseller {}: index {}, uid {}",
                u.name, u.reseller, u.index, u.uid
            ),
            Report::Container(c) => format!("{} {}", c.name, c.ip),
            Report::Removed(r) => format!("{} {} removed", r.kind, r.name),
            Report::Set {
                name,
                key,
                value: Some(v),
            } => format!("{name}: {key} set to {v}"),
            Report::Set {
                name,
                key,
                value: None,
            } => format!("{name}: {key} reset"),
            Report::Import(r) => import_text(r),
            Report::Front { name, change, .. } => format!("{name}: {change}"),
            Report::PublicKey(k) => format!(
                "{}: key {} added ({} {})",
                k.account, k.fingerprint, k.algorithm, k.comment
            ),
            Report::PublicKeysRemoved(r) => r
                .fingerprints
                .iter()
                .map(|f| format!("{}: key {f} removed\n", r.account))
                .collect(),
            Report::Login(l) => format!("{}: account {} added", l.container, l.login),
        };
        self.line(text.trim_end())
    }

    /// Print srvctl's version and the driven packages': one `NAME VERSION` line each.
    pub fn versions(&mut self, versions: &crate::ops::versions::Versions) -> Result<(), Failure> {
        if self.json {
            return self.json(versions);
        }
        self.line(&format!("srvctl {}", versions.srvctl))?;
        if versions.package_manager.is_none() {
            return self.line("(no package manager known on this host: dpkg or rpm)");
        }
        for p in &versions.packages {
            let version = p.version.as_deref().unwrap_or("not installed");
            self.line(&format!("{} {version}", p.name))?;
        }
        Ok(())
    }

    /// Print the report of `sc update-install`: one line per step (`ok`, `would`, `done` or
    /// `FAILED`, the step, what it found or does), and a last line that sums up (`nothing to
    /// change` when no step had anything to do); or the JSON object.
    pub fn install(&mut self, report: &crate::ops::install::InstallReport) -> Result<(), Failure> {
        use crate::ops::install::Outcome;
        if self.json {
            return self.json(report);
        }
        for s in &report.steps {
            let action = s.action.as_deref().unwrap_or("");
            let line = match (&s.outcome, s.needed) {
                (Some(Outcome::Failed(why)), _) if s.needed => {
                    format!("FAILED  {}: {action}: {why}", s.step)
                }
                (Some(Outcome::Failed(why)), _) => format!("FAILED  {}: {why}", s.step),
                (Some(Outcome::Done), _) => format!("done    {}: {action}", s.step),
                (None, true) => format!("would   {}: {action} ({})", s.step, s.found),
                (None, false) => format!("ok      {}: {}", s.step, s.found),
            };
            self.line(&one_line(&line))?;
        }
        let needed = report.steps.iter().filter(|s| s.needed).count();
        let failed = report
            .steps
            .iter()
            .filter(|s| matches!(s.outcome, Some(Outcome::Failed(_))))
            .count();
        self.line(&match (needed, failed, report.dry_run) {
            (0, 0, _) => "nothing to change".to_owned(),
            (n, 0, true) => format!("{n} steps would change this host"),
            (n, 0, false) => format!("{n} steps changed this host"),
            (_, f, _) => format!("{f} steps FAILED"),
        })
    }

    /// Print what a bulk command did: each container's output lines and then its outcome,
    /// every line prefixed with the container's name; or a JSON array.
    pub fn bulk(&mut self, results: &[super::bulk::BulkResult]) -> Result<(), Failure> {
        if self.json {
            return self.json(&results);
        }
        for r in results {
            for line in r.output.iter().flat_map(|o| o.lines()) {
                self.line(&format!("{}: {line}", r.container))?;
            }
            self.line(&format!("{}: {}", r.container, r.outcome))?;
        }
        if results.is_empty() {
            self.line("(no container of yours on this host to act on)")?;
        }
        Ok(())
    }

    /// Print the report of `sc diagnose`: one line per finding (`LEVEL check: message`), its
    /// hint indented below, and a last line that sums up; or the JSON object.
    pub fn diagnosis(&mut self, report: &crate::ops::diagnose::Report) -> Result<(), Failure> {
        use crate::ops::diagnose::Level;
        if self.json {
            return self.json(report);
        }
        for f in &report.findings {
            self.line(&format!(
                "{:<8} {}: {}",
                f.level.word(),
                f.check,
                one_line(&f.message)
            ))?;
            if let Some(hint) = &f.hint {
                self.line(&format!("{:<8}   fix: {}", "", one_line(hint)))?;
            }
        }
        let count = |level| report.findings.iter().filter(|f| f.level == level).count();
        self.line(&match report.healthy {
            true => format!("healthy ({} warnings)", count(Level::Warning)),
            false => format!(
                "NOT HEALTHY: {} problems, {} warnings",
                count(Level::Problem),
                count(Level::Warning)
            ),
        })
    }

    /// Print the files of `sc ls`: `MODIFIED SIZE PATH` lines, newest last; or a JSON array.
    pub fn listing(&mut self, entries: &[crate::ops::listing::Entry]) -> Result<(), Failure> {
        if self.json {
            return self.json(&entries);
        }
        for e in entries {
            let time = e.modified.strftime("%Y-%m-%d %H:%M:%S");
            let path = one_line(&e.path.to_string_lossy());
            let link = if e.link { " (link)" } else { "" };
            self.line(&format!("{time} {:>12} {path}{link}", e.size))?;
        }
        Ok(())
    }

    /// Print a list: one item a line, or a JSON array.
    pub fn list(&mut self, items: &[String]) -> Result<(), Failure> {
        if self.json {
            return self.json(&items);
        }
        for item in items {
            self.line(item)?;
        }
        Ok(())
    }

    /// Print one bare value.
    pub fn value(&mut self, value: &str) -> Result<(), Failure> {
        if self.json {
            return self.json(&value);
        }
        self.line(value)
    }

    /// Print a record as shell assignments, or as a JSON object.
    pub fn shell(&mut self, kind: Kind, fields: &Fields) -> Result<(), Failure> {
        if self.json {
            let map: serde_json::Map<String, serde_json::Value> =
                fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            return self.json(&map);
        }
        for line in views::shell_lines(kind, fields) {
            self.line(&line)?;
        }
        Ok(())
    }

    /// Print what a regenerate run did.
    pub fn regenerated(
        &mut self,
        outcome: &crate::engine::regenerate::Outcome,
    ) -> Result<(), Failure> {
        if self.json {
            return self.json(outcome);
        }
        self.line(&format!("regenerate: {}", outcome.summary()))
    }

    /// Print the status table.
    pub fn status(&mut self, rows: &[StatusRow]) -> Result<(), Failure> {
        if self.json {
            return self.json(&rows);
        }
        let table: Vec<[&str; 7]> = rows
            .iter()
            .map(|r| {
                [
                    r.name.as_str(),
                    &r.user,
                    &r.reseller,
                    &r.host,
                    &r.ip,
                    &r.state,
                    r.since.as_deref().unwrap_or("-"),
                ]
            })
            .collect();
        let header = [
            "NAME", "USER", "RESELLER", "HOST", "ADDRESS", "STATE", "SINCE",
        ];
        self.table(header, &table)?;
        if rows.is_empty() {
            self.line("(no containers; add one with `sc add-ve NAME`)")?;
        }
        Ok(())
    }

    /// Print what `sc cluster status` found.
    pub fn cluster_status(
        &mut self,
        status: &crate::cluster::status::ClusterStatus,
    ) -> Result<(), Failure> {
        if self.json {
            return self.json(status);
        }
        let revision = status
            .revision
            .map_or_else(|| "unknown".to_owned(), |r| r.to_string());
        let quorum = if status.quorum { "yes" } else { "NO" };
        self.line(&format!(
            "cluster {}: datastore revision {revision}, quorum {quorum}",
            status.cluster
        ))?;
        if let Some(e) = &status.error {
            self.line(&format!("etcd: {e}"))?;
        }
        let text = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let rows: Vec<[String; 7]> = status
            .members
            .iter()
            .map(|m| {
                let mesh: Vec<String> = m.mesh.iter().map(|(t, s)| format!("{t} {s}")).collect();
                [
                    m.host.clone(),
                    m.etcd.clone(),
                    if m.leader { "*".into() } else { "".into() },
                    text(m.cache_revision),
                    text(m.lag),
                    match (&m.seen, m.reporting) {
                        (Some(at), true) => at.clone(),
                        (Some(at), false) => format!("{at} (silent)"),
                        (None, _) => "never".into(),
                    },
                    if mesh.is_empty() {
                        "-".into()
                    } else {
                        mesh.join(", ")
                    },
                ]
            })
            .collect();
        let rows: Vec<[&str; 7]> = rows
            .iter()
            .map(|r| r.each_ref().map(String::as_str))
            .collect();
        self.table(
            ["HOST", "ETCD", "LEADER", "CACHE", "LAG", "REPORTED", "MESH"],
            &rows,
        )?;
        if let Some(sync) = &status.sync {
            let state = match &sync.error {
                None => format!("current at revision {}", sync.revision),
                Some(e) => format!(
                    "etcd unreachable ({e}); cache at revision {}",
                    sync.revision
                ),
            };
            self.line(&format!("this host's srvctl-sync: {state}"))?;
        }
        Ok(())
    }

    /// Print an account's public keys.
    pub fn keys(&mut self, rows: &[crate::accounts::keys::KeyRow]) -> Result<(), Failure> {
        if self.json {
            return self.json(&rows);
        }
        let table: Vec<[&str; 4]> = rows
            .iter()
            .map(|r| [r.fingerprint.as_str(), &r.algorithm, &r.comment, &r.added])
            .collect();
        self.table(["FINGERPRINT", "TYPE", "COMMENT", "ADDED"], &table)?;
        if rows.is_empty() {
            self.line("(no keys; add one with `sc add-publickey KEY|FILE|-`)")?;
        }
        Ok(())
    }

    /// Print a table: a header and rows, each column as wide as its widest cell.
    fn table<const N: usize>(
        &mut self,
        header: [&str; N],
        rows: &[[&str; N]],
    ) -> Result<(), Failure> {
        let mut widths = header.map(str::len);
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            self.line(cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}

fn import_text(r: &ImportReport) -> String {
    let mut text = format!(
        "imported {} reseller(s), {} user(s), {} container(s); skipped {}\n",
        r.resellers.len(),
        r.users.len(),
        r.containers.len(),
        r.skipped.len()
    );
    for (name, ip) in &r.containers {
        text.push_str(&format!("  container {name} {ip}\n"));
    }
    for s in &r.skipped {
        text.push_str(&format!("  not imported: {s}\n"));
    }
    for n in &r.notes {
        text.push_str(&format!("  note: {n}\n"));
    }
    text
}
