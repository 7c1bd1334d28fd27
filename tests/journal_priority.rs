//! A service's lines carry their syslog priority when its standard error is the journal
//! stream systemd names in `JOURNAL_STREAM`, and only then: the real srvctl-sync, refusing to
//! run on a host that is in no cluster, with its standard error a file standing in for the
//! journal's stream.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

const SYNC: &str = env!("CARGO_BIN_EXE_srvctl-sync");

/// Whose stream `JOURNAL_STREAM` names.
#[derive(PartialEq)]
enum Stream {
    /// Unset.
    None,
    /// The file that is srvctl-sync's standard error.
    Stderr,
    /// Another file.
    Other,
}

/// What srvctl-sync on an empty scratch root writes to a file as its standard error.
fn said(stream: Stream) -> String {
    let root = tempfile::tempdir().unwrap();
    let err = root.path().join("stderr");
    let file = std::fs::File::create(&err).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(SYNC);
    cmd.arg("--root")
        .arg(root.path())
        .env("SRVCTL_HOSTNAME", "h1.test")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(file);
    let other = std::fs::File::create(root.path().join("other")).unwrap();
    let named = match stream {
        Stream::None => None,
        Stream::Stderr => Some(meta),
        Stream::Other => Some(other.metadata().unwrap()),
    };
    if let Some(m) = named {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
    }
    let status = cmd.status().unwrap();
    assert!(!status.success());
    std::fs::read_to_string(&err).unwrap()
}

#[test]
fn lines_to_the_journal_carry_their_priority() {
    let error = "srvctl-sync: cannot read ";
    let plain = said(Stream::None);
    assert!(plain.starts_with(error), "{plain:?}");
    let journal = said(Stream::Stderr);
    assert!(journal.starts_with(&format!("<3>{error}")), "{journal:?}");
    let elsewhere = said(Stream::Other);
    assert!(elsewhere.starts_with(error), "{elsewhere:?}");
}
