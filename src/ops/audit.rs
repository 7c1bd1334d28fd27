//! The append-only audit log: one JSON object a line, recording every command that changes or
//! tried to change the datastore.

use serde::Serialize;

use crate::system::System;
use crate::system::paths::Paths;

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
pub fn append(system: &dyn System, paths: &Paths, record: &AuditRecord<'_>) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    system.append(&paths.audit_log(), &line, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn one_line_per_record_whatever_the_arguments() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let command = vec!["add-ve".to_string(), "evil\nname\"".to_string()];
        for outcome in ["ok", "error: bad\nthing"] {
            append(
                &system,
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
        let text = system.read(&paths.audit_log()).unwrap().unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["command"][1], "evil\nname\"");
    }
}
