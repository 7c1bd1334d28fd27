//! What srvctl's services say, with a priority for the journal. systemd connects a service's
//! standard error to the journal and names that stream in `JOURNAL_STREAM` (`DEVICE:INODE`);
//! journald reads a leading `<N>` on such a line as its syslog priority (sd-daemon(3)), so
//! `journalctl -p warning -u srvctl-sync` shows the warnings and errors alone. Anywhere else (a
//! terminal, a test, a pipe) a line is written as it is, without the prefix.

use std::io::Write as _;
use std::os::fd::AsFd;

/// How much a line matters (the syslog levels srvctl uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Something failed: `err` (3).
    Error = 3,
    /// Something is wrong or missing, and srvctl goes on: `warning` (4).
    Warning = 4,
    /// A change worth noting (a certificate installed, a host renewed): `notice` (5).
    Notice = 5,
    /// Routine: `info` (6).
    Info = 6,
}

/// The line for `message` of `program` (one line: line breaks become spaces), with the
/// priority prefix when it goes to the journal.
pub fn line(priority: Priority, program: &str, message: &str, journal: bool) -> String {
    let message = message.replace(['\n', '\r'], " ");
    if journal {
        format!("<{}>{program}: {message}", priority as u8)
    } else {
        format!("{program}: {message}")
    }
}

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`) names the stream whose device and
/// inode are `device` and `inode`.
pub fn names_stream(journal_stream: &str, device: u64, inode: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((device, inode))
}

/// Whether this process's standard error is the journal stream systemd gave it.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    names_stream(&stream.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// Say `message` of `program` on standard error, with `priority` for the journal.
pub fn log(priority: Priority, program: &str, message: &str) {
    let text = line(priority, program, message, stderr_is_journal());
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_for_the_journal_carries_its_priority_and_stays_one_line() {
        assert_eq!(
            line(Priority::Error, "srvctl-sync", "etcd:\nunreachable", true),
            "<3>srvctl-sync: etcd: unreachable"
        );
        assert_eq!(
            line(Priority::Notice, "srvctl-sync", "installed", false),
            "srvctl-sync: installed"
        );
        assert!(names_stream("2049:1234", 2049, 1234));
        assert!(!names_stream("2049:1234", 2049, 1235));
        assert!(!names_stream("garbage", 2049, 1234));
    }
}
