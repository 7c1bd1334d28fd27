//! Helpers for the tests of the generated configuration (golden trees, `sc regenerate`,
//! hostile datastore records): a scratch root, the real binaries run against it, and a
//! snapshot of the files under a directory.
//!
//! Every program runs with `--root <root>` (or `SRVCTL_ROOT` for the generator) and
//! `SRVCTL_HOSTNAME=h1.test` unless a test says otherwise, with no `SRVCTL_ROOT` or
//! `SUDO_USER` leaking in from the caller.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `sc`.
pub const SC: &str = env!("CARGO_BIN_EXE_sc");
/// `srvctl-regenerate`.
pub const REGENERATE: &str = env!("CARGO_BIN_EXE_srvctl-regenerate");
/// `srvctl-generator`.
pub const GENERATOR: &str = env!("CARGO_BIN_EXE_srvctl-generator");

/// The host the programs run as, unless told otherwise.
pub const HOSTNAME: &str = "h1.test";

/// Two hosts with resolvers: h1.test (hostnet 1) and h2.test (hostnet 2).
pub const TWO_HOSTS: &str = r#"{
  "test": {
    "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "dns1": "192.0.2.53", "dns2": "198.51.100.53"},
    "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2, "dns1": "192.0.2.53", "dns2": "198.51.100.53"}
  }
}
"#;

/// One host, h1.test on hostnet 1.
pub const ONE_HOST: &str = r#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "dns1": "192.0.2.53"}}}
"#;

/// What a finished program did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Assert exit 0 and return `self`.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        self
    }
}

/// A temporary directory holding a scratch root (`<tmp>/root`) and a generator output
/// directory (`<tmp>/generator`).
pub struct Scratch {
    dir: tempfile::TempDir,
    /// The host the programs run as.
    pub hostname: String,
}

impl Scratch {
    /// A scratch root whose clusters.json is `clusters`.
    pub fn new(clusters: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Self {
            dir,
            hostname: HOSTNAME.into(),
        };
        let etc = s.root().join("etc/srvctl");
        std::fs::create_dir_all(&etc).expect("mkdir etc/srvctl");
        std::fs::write(etc.join("clusters.json"), clusters).expect("write clusters.json");
        s
    }

    /// The whole temporary directory.
    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }

    /// The scratch root.
    pub fn root(&self) -> PathBuf {
        self.tmp().join("root")
    }

    /// The generator's output directory.
    pub fn generator_dir(&self) -> PathBuf {
        self.tmp().join("generator")
    }

    /// `<root>/var/lib/srvctl/datastore.json`.
    pub fn datastore(&self) -> PathBuf {
        self.root().join("var/lib/srvctl/datastore.json")
    }

    fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env("SRVCTL_HOSTNAME", &self.hostname)
            .env_remove("SRVCTL_ROOT")
            .env_remove("SUDO_USER")
            .stdin(Stdio::null());
        cmd
    }

    fn run(mut cmd: Command) -> Run {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// `sc --root <root> ARGS…`, run to the end.
    pub fn sc(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(SC);
        cmd.arg("--root").arg(self.root()).args(args);
        Self::run(cmd)
    }

    /// `sc --root <root> ARGS…` as host `hostname`, which must succeed.
    #[track_caller]
    pub fn sc_as(&self, hostname: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(SC);
        cmd.env("SRVCTL_HOSTNAME", hostname)
            .arg("--root")
            .arg(self.root())
            .args(args);
        let run = Self::run(cmd);
        assert_eq!(
            run.code,
            Some(0),
            "sc {args:?} on {hostname} failed: {run:#?}"
        );
        run
    }

    /// `sc --root <root> ARGS…`, which must succeed.
    #[track_caller]
    pub fn sc_ok(&self, args: &[&str]) -> Run {
        let run = self.sc(args);
        assert_eq!(run.code, Some(0), "sc {args:?} failed: {run:#?}");
        run
    }

    /// `srvctl-regenerate --root <root> ARGS…`.
    pub fn regenerate(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(REGENERATE);
        cmd.arg("--root").arg(self.root()).args(args);
        Self::run(cmd)
    }

    /// `SRVCTL_ROOT=<root> srvctl-generator <generator dir> <tmp>/early <tmp>/late`.
    pub fn generator(&self) -> Run {
        let mut cmd = self.command(GENERATOR);
        cmd.env("SRVCTL_ROOT", self.root())
            .arg(self.generator_dir())
            .arg(self.tmp().join("early"))
            .arg(self.tmp().join("late"));
        Self::run(cmd)
    }

    /// The datastore as JSON.
    #[track_caller]
    pub fn datastore_json(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.datastore()).expect("read the datastore");
        serde_json::from_slice(&bytes).expect("the datastore is JSON")
    }

    /// Replace the datastore with `doc`, serialised the way srvctl writes it.
    pub fn write_datastore(&self, doc: &serde_json::Value) {
        let mut bytes = serde_json::to_vec_pretty(doc).expect("serialise");
        bytes.push(b'\n');
        std::fs::write(self.datastore(), bytes).expect("write the datastore");
    }
}

/// What is at a path, as far as the tests care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Link(PathBuf),
}

/// Every file and link under `dir` (not following links), by path relative to `dir`.
/// Directories are not listed; a missing `dir` is empty.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for (rel, meta) in walk(dir) {
        let path = dir.join(&rel);
        let node = if meta.file_type().is_symlink() {
            Node::Link(std::fs::read_link(&path).expect("read link"))
        } else if meta.is_file() {
            Node::File(std::fs::read(&path).expect("read file"))
        } else {
            continue;
        };
        out.insert(rel, node);
    }
    out
}

/// Every entry under `dir` (directories included, links not followed) with its metadata, by
/// path relative to `dir`. A missing `dir` is empty.
pub fn walk(dir: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    fn go(base: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, std::fs::Metadata>) {
        let Ok(entries) = std::fs::read_dir(base.join(rel)) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("dir entry");
            let rel = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(base.join(&rel)).expect("lstat");
            let is_dir = meta.is_dir();
            out.insert(rel.clone(), meta);
            if is_dir {
                go(base, &rel, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, Path::new(""), &mut out);
    out
}

/// Identity of a file for "was it touched?": inode, size, mtime and ctime (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Stamps of every file and link (not directory) under each of `dirs`, by full path.
pub fn stamps(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        let meta = std::fs::symlink_metadata(dir);
        let entries: Vec<(PathBuf, std::fs::Metadata)> = match meta {
            Ok(m) if !m.is_dir() => vec![(dir.clone(), m)],
            Ok(_) => walk(dir)
                .into_iter()
                .map(|(rel, m)| (dir.join(rel), m))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (path, m) in entries {
            if m.is_dir() {
                continue;
            }
            out.insert(
                path,
                Stamp {
                    ino: m.ino(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    ctime: (m.ctime(), m.ctime_nsec()),
                },
            );
        }
    }
    out
}

/// The lines of `stderr` that contain `needle`.
pub fn lines_with<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(needle)).collect()
}
