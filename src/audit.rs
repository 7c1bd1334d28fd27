//! The append-only audit log: one JSON object a line, recording every command that changes or
//! tried to change the datastore.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde::Serialize;

use crate::paths::Paths;

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// When (RFC 3339, UTC).
    pub time: &'a str,
    /// The invoking user (the sudo caller when run through sudo).
    pub user: &'a str,
    /// The host it ran on.
    pub host: &'a str,
    /// The command line, argument by argument.
    pub command: &'a [String],
    /// `ok`, or the error that refused it.
    pub outcome: &'a str,
}

/// Append one record. JSON escaping keeps every record on exactly one line whatever the
/// arguments hold; `O_APPEND` keeps concurrent writers from overwriting each other.
pub fn append(paths: &Paths, record: &AuditRecord<'_>) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::create_dir_all(paths.state_dir())?;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(paths.audit_log())?
        .write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_whatever_the_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        let command = vec!["add-ve".to_string(), "evil\nname\"".to_string()];
        for outcome in ["ok", "error: bad\nthing"] {
            append(
                &paths,
                &AuditRecord {
                    time: "t",
                    user: "root",
                    host: "h",
                    command: &command,
                    outcome,
                },
            )
            .unwrap();
        }
        let text = std::fs::read_to_string(paths.audit_log()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["command"][1], "evil\nname\"");
    }
}
