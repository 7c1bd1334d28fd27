//! A full disk fails the write and keeps the old datastore, byte for byte; once space is free
//! again, writes succeed. Needs root to mount a tiny tmpfs as the state directory.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Farm;
use srvctl::model::State;

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Self(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Write zeros to `path` until the file system refuses with ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = [0u8; 512];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => panic!("unexpected error while filling: {e}"),
        }
    }
    let _ = f.sync_all();
}

#[test]
fn full_disk_keeps_the_old_datastore() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let farm = Farm::new();
    // Declared after `farm`, so it is unmounted before the temp dir is removed.
    let _mount = Mount::tmpfs(&farm.state_dir(), "64k");

    let farm = farm.with_alice_and_bob();
    for n in 1..=5 {
        farm.sc_ok(&["add-ve", &format!("site{n}.example.com"), "--user", "bob"]);
    }
    let filler = farm.state_dir().join("filler");
    fill(&filler);

    let before = farm.datastore_bytes().expect("the datastore exists");
    let run = farm.sc(&["add-ve", "full.example.com", "--user", "bob"]);
    let line = run.refused();
    assert!(
        line.contains("No space left on device"),
        "not an ENOSPC failure: {line}"
    );
    let after = farm.datastore_bytes().expect("the datastore still exists");
    assert!(before == after, "the failed write changed the datastore");
    let state = State::from_json(&after).expect("the datastore still parses");
    assert_eq!(state.containers.len(), 5);
    let leftovers: Vec<_> = std::fs::read_dir(farm.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temp file left behind: {leftovers:?}");
    let audit = farm.audit_records();
    let last = audit.last().expect("audited");
    assert!(
        last["outcome"].as_str().unwrap().contains("No space left"),
        "the refusal was not audited: {last}"
    );

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        farm.sc_ok(&["add-ve", "full.example.com", "--user", "bob"]),
        "full.example.com 10.17.1.7\n"
    );
    assert_eq!(farm.state().containers.len(), 6);
}
