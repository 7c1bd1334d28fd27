//! The one harness of the integration tests: a scratch farm and a way to run the real programs.
//!
//! A [`Farm`] is a temporary directory whose `root/` is used as `--root`, holding
//! `etc/srvctl/clusters.json` (by default two hosts: `h1.test`, hostnet 1 and `h2.test`,
//! hostnet 2), and whose `generator/` receives the generator's output. Every program runs the
//! binary built by Cargo with `--root <root>` (`SRVCTL_ROOT` for the generator) and
//! `SRVCTL_HOSTNAME=h1.test`, so it acts as host `h1.test` and never touches the real system.
//! [`Farm::sc`] runs a command to the end and captures what it printed; [`Farm::command`] gives
//! a [`Command`] to spawn (for the concurrency and crash tests). The datastore and every
//! `*.json` file under the state directory can be read back byte for byte, to prove that a
//! refused command changed nothing.
//!
//! [`tree`] snapshots generated files; [`real`] holds what the tests of the real tools need
//! (root checks, network namespaces, background processes, pebble).

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use srvctl::model::State;

pub mod etcd;
pub mod real;
pub mod sync;
pub mod tree;
pub mod trust;

/// The cluster definition every farm starts with.
pub const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#;

/// Two hosts with resolvers: h1.test (hostnet 1) and h2.test (hostnet 2).
pub const TWO_HOSTS: &str = r#"{
  "test": {
    "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca", "dns1": "192.0.2.53", "dns2": "198.51.100.53"},
    "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2, "dns1": "192.0.2.53", "dns2": "198.51.100.53"}
  }
}
"#;

/// One host, h1.test on hostnet 1.
pub const ONE_HOST: &str = r#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "dns1": "192.0.2.53"}}}
"#;

/// The host every command runs as.
pub const HOSTNAME: &str = "h1.test";

/// The `sc` binary under test.
pub const SC: &str = env!("CARGO_BIN_EXE_sc");

/// The `srvctl` binary under test (the long name of `sc`).
pub const SRVCTL: &str = env!("CARGO_BIN_EXE_srvctl");

/// `srvctl-regenerate`.
pub const REGENERATE: &str = env!("CARGO_BIN_EXE_srvctl-regenerate");

/// `srvctl-generator`.
pub const GENERATOR: &str = env!("CARGO_BIN_EXE_srvctl-generator");

/// A `Command` for `bin` with a clean, deterministic environment: this host is `h1.test`,
/// no `SRVCTL_ROOT` or `SUDO_USER` leaks in from the caller, stdin is empty.
pub fn base_command(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("SRVCTL_HOSTNAME", HOSTNAME)
        .env_remove("SRVCTL_ROOT")
        .env_remove("SUDO_USER")
        .stdin(Stdio::null());
    cmd
}

/// Run `cmd` to the end with `input` on its standard input.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Run {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("write its input");
    Run::from_output(child.wait_with_output().expect("wait for it"))
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// Its exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// Capture a finished process.
    pub fn from_output(out: std::process::Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Assert that it succeeded and return its stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Assert that it failed the way every refusal must: a non-zero exit, nothing on stdout
    /// and exactly one line on stderr, starting with `sc: error:`. Returns that line.
    #[track_caller]
    pub fn refused(&self) -> &str {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a non-zero exit: {self:#?}"
        );
        assert!(
            self.stdout.is_empty(),
            "a refusal printed on stdout: {self:#?}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
        assert!(
            self.stderr.ends_with('\n'),
            "stderr line not terminated: {self:#?}"
        );
        assert!(
            lines[0].starts_with("sc: error:"),
            "stderr does not start with `sc: error:`: {self:#?}"
        );
        lines[0]
    }
}

/// A scratch tree used as `--root`, removed when dropped.
pub struct Farm {
    dir: tempfile::TempDir,
    root: PathBuf,
    hostname: String,
}

impl Default for Farm {
    fn default() -> Self {
        Self::new()
    }
}

impl Farm {
    /// A new farm with the two-host `clusters.json` and no datastore yet.
    pub fn new() -> Self {
        Self::with_clusters(CLUSTERS)
    }

    /// A new farm whose clusters.json is `clusters`, and no datastore yet.
    pub fn with_clusters(clusters: &str) -> Self {
        Self::for_host(clusters, HOSTNAME)
    }

    /// A new farm whose clusters.json is `clusters`, on which every program runs as host
    /// `hostname`.
    pub fn for_host(clusters: &str, hostname: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let etc = root.join("etc/srvctl");
        std::fs::create_dir_all(&etc).expect("create etc/srvctl");
        std::fs::write(etc.join("clusters.json"), clusters).expect("write clusters.json");
        Self {
            dir,
            root,
            hostname: hostname.to_owned(),
        }
    }

    /// Give the farm a built debian image, so that `sc add-ve` clones a root filesystem
    /// (`sc regenerate rootfs` would build a real one; the clone copies this small one).
    pub fn build_image(&self) {
        let image = self.join("var/lib/machines/.srvctl-images/debian");
        std::fs::create_dir_all(image.join("etc")).expect("create the image");
        std::fs::write(image.join("etc/os-release"), "ID=debian\n").expect("write os-release");
    }

    /// The whole temporary directory: the root and the generator's directories are in it.
    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/REL`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The generator's output directory.
    pub fn generator_dir(&self) -> PathBuf {
        self.tmp().join("generator")
    }

    /// `<root>/var/lib/srvctl`.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("var/lib/srvctl")
    }

    /// `<root>/var/lib/srvctl/datastore.json`.
    pub fn datastore_path(&self) -> PathBuf {
        self.state_dir().join("datastore.json")
    }

    /// Run `sc ARGS…`, which must be refused with one line on stderr that says `why`, and
    /// leave the datastore byte for byte as `before`.
    #[track_caller]
    pub fn assert_refused(&self, args: &[&str], why: &str, before: &[u8]) {
        let run = self.sc(args);
        assert_ne!(run.code, Some(0), "{args:?} accepted");
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{:?}", run.stderr);
        assert_eq!(
            std::fs::read(self.datastore_path()).unwrap(),
            before,
            "{args:?}"
        );
    }

    /// `<root>/var/lib/srvctl/audit.log`.
    pub fn audit_path(&self) -> PathBuf {
        self.state_dir().join("audit.log")
    }

    /// A command for `bin` acting as this farm's host (see [`base_command`]), without
    /// `--root`: for programs that take the root another way.
    pub fn program(&self, bin: &str) -> Command {
        let mut cmd = base_command(bin);
        cmd.env("SRVCTL_HOSTNAME", &self.hostname);
        cmd
    }

    /// A command for `bin` on this farm: `bin --root <root> ARGS…`, not yet run.
    pub fn command_of(&self, bin: &str, args: &[&str]) -> Command {
        let mut cmd = self.program(bin);
        cmd.arg("--root").arg(self.root()).args(args);
        cmd
    }

    /// A command for `sc` on this farm, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(SC, args)
    }

    /// Run `bin --root <root> ARGS…` to the end.
    pub fn run_bin(&self, bin: &str, args: &[&str]) -> Run {
        let out = self
            .command_of(bin, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        Run::from_output(out)
    }

    /// Run `sc --root <root> ARGS…` to the end.
    pub fn sc(&self, args: &[&str]) -> Run {
        self.run_bin(SC, args)
    }

    /// Run `sc --root <root> ARGS…` as host `hostname`, which must succeed; returns its stdout.
    #[track_caller]
    pub fn sc_as(&self, hostname: &str, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        cmd.env("SRVCTL_HOSTNAME", hostname);
        let run = Run::from_output(cmd.output().expect("run sc"));
        assert!(run.success(), "sc {args:?} on {hostname} failed: {run:#?}");
        run.stdout
    }

    /// Run `srvctl-regenerate --root <root> ARGS…` to the end.
    pub fn regenerate(&self, args: &[&str]) -> Run {
        self.run_bin(REGENERATE, args)
    }

    /// Run `SRVCTL_ROOT=<root> srvctl-generator <generator dir> <tmp>/early <tmp>/late`.
    pub fn generator(&self) -> Run {
        let mut cmd = self.program(GENERATOR);
        cmd.env("SRVCTL_ROOT", self.root())
            .arg(self.generator_dir())
            .arg(self.tmp().join("early"))
            .arg(self.tmp().join("late"));
        Run::from_output(cmd.output().expect("run the generator"))
    }

    /// Run `sc` and assert that it succeeded; returns its stdout.
    #[track_caller]
    pub fn sc_ok(&self, args: &[&str]) -> String {
        let run = self.sc(args);
        assert!(run.success(), "sc {args:?} failed: {run:#?}");
        run.stdout
    }

    /// The datastore's bytes, if it exists.
    pub fn datastore_bytes(&self) -> Option<Vec<u8>> {
        match std::fs::read(self.datastore_path()) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("cannot read the datastore: {e}"),
        }
    }

    /// The datastore, parsed with the library's own loader (panics if it is missing or
    /// invalid).
    #[track_caller]
    pub fn state(&self) -> State {
        let bytes = self.datastore_bytes().expect("the datastore exists");
        State::from_json(&bytes).expect("the datastore parses")
    }

    /// The UID the datastore gives account `name` (panics if there is no such account).
    #[track_caller]
    pub fn uid(&self, name: &str) -> u32 {
        let account = srvctl::model::names::AccountName::new(name).expect("an account name");
        self.state().users[&account].uid
    }

    /// The datastore as a JSON value (panics if it is missing or not JSON).
    #[track_caller]
    pub fn datastore_json(&self) -> serde_json::Value {
        let bytes = self.datastore_bytes().expect("the datastore exists");
        serde_json::from_slice(&bytes).expect("the datastore is JSON")
    }

    /// Replace the datastore with `doc`, serialised the way srvctl writes it.
    pub fn write_datastore(&self, doc: &serde_json::Value) {
        let mut bytes = serde_json::to_vec_pretty(doc).expect("serialise");
        bytes.push(b'\n');
        std::fs::write(self.datastore_path(), bytes).expect("write the datastore");
    }

    /// Every `*.json` file under the state directory (recursively) with its bytes.
    pub fn json_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.insert(path.clone(), std::fs::read(&path).expect("read json file"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.state_dir(), &mut out);
        out
    }

    /// The audit log's records, one JSON value a line (empty if there is no log).
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}"))
            })
            .collect()
    }

    /// Reseller `alice` and her user `bob`: the start of the worked example.
    pub fn with_alice_and_bob(self) -> Self {
        self.sc_ok(&["add-reseller", "alice"]);
        self.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
        self
    }
}

/// The lines of `stderr` that contain `needle`.
pub fn lines_with<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(needle)).collect()
}

/// xorshift64: a deterministic PRNG, so a failing run (of the crash tests) can be replayed.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
