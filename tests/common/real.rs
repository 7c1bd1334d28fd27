//! Helpers of the tests that feed srvctl's generated files to the real tools (systemd-analyze,
//! openvpn, systemd-networkd, haproxy, pebble): network namespaces that are removed whatever
//! happens, processes that are killed whatever happens, and the one check that a scratch root
//! survives the mounts these tests make. The scratch root itself is the [`super::Farm`].
//!
//! These tests need root (network namespaces, mounts, tun devices). Without it they print
//! `skipped: needs root` and pass; CI runs as root after `scripts/test-deps.sh` installed the
//! tools, so there a missing tool is a failure, not a skip.

pub mod pebble;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether the test may run: true as root, else prints the skip line and returns false.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("{test}: skipped: needs root (network namespaces, mounts, system tools)");
    false
}

/// Panic unless `path` is an executable file: the tools come from `scripts/test-deps.sh`.
#[track_caller]
pub fn require_tool(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    let ok = fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    assert!(
        ok,
        "{path} is missing: run scripts/test-deps.sh (as root) first"
    );
}

/// A name unique to this test process and call, e.g. `mesh12345x0`; short enough that
/// `"{name}a"` is still a valid interface name (15 bytes).
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{tag}{}x{n}", std::process::id());
    assert!(
        name.len() <= 14,
        "name {name:?} is too long for an interface"
    );
    name
}

/// Run `cmd` to the end and return what it printed; panics when it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run `cmd` and assert that it succeeded; returns its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Assert that `root` stays visible once `/run` and `/var/lib` are masked.
///
/// The generated files name absolute paths (`/run/srvctl/…`, `/var/lib/srvctl/pki/…`,
/// `/run/systemd/network`). Inside a private mount namespace (`unshare -m`) the tests mount a
/// tmpfs over `/run` and `/var/lib` and bind the scratch root's directories there, so the
/// machine's own `/run` and `/var/lib` are never touched; a scratch root under one of them
/// would be hidden by that tmpfs.
pub fn assert_root_outside_masked_dirs(root: &Path) {
    for masked in ["/run", "/var/lib"] {
        assert!(
            !root.starts_with(masked),
            "the scratch root {} lies under {masked}, which the test masks with a tmpfs; \
             point TMPDIR elsewhere",
            root.display()
        );
    }
}

/// Mounts a tmpfs over `/run` and `/var/lib`, then binds `$root$path` at each `path` given
/// before `--`, makes each empty directory given after it up to the next `--`, and execs the
/// rest.
const AT_HOST_PATHS: &str = r#"set -e
root=$1; shift
mount -t tmpfs -o mode=0755 srvctl-test /run
mount -t tmpfs -o mode=0755 srvctl-test /var/lib
while [ "$1" != "--" ]; do mkdir -p "$1"; mount --bind "$root$1" "$1"; shift; done
shift
while [ "$1" != "--" ]; do mkdir -p "$1"; shift; done
shift
exec "$@"
"#;

/// A network namespace, deleted (with every process still in it) when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create the namespace `name` with its loopback up.
    #[track_caller]
    pub fn new(name: &str) -> Self {
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A veth pair: `a` here, `b` moved to `other`, both up.
    #[track_caller]
    pub fn veth(&self, a: &str, other: &Netns, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", b, "netns", other.name()]);
        self.ip(&["link", "set", a, "up"]);
        other.ip(&["link", "set", b, "up"]);
    }

    /// Run `ip -n NS ARGS…` and assert that it succeeded; returns its stdout.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command running `argv` inside the namespace in a private mount namespace that shows
    /// the scratch `root`'s directories at the absolute paths the generated files name: a tmpfs
    /// covers `/run` and `/var/lib` (the machine's own are never touched), each of `binds`
    /// (e.g. `/run/srvctl`) is the root's directory of that path, and each of `empty` is a new
    /// empty directory.
    #[track_caller]
    pub fn exec_at_host_paths(
        &self,
        root: &Path,
        binds: &[&str],
        empty: &[&str],
        argv: &[&str],
    ) -> Command {
        assert_root_outside_masked_dirs(root);
        let mut cmd = self.exec(&["unshare", "--mount", "sh", "-c", AT_HOST_PATHS, "sh"]);
        cmd.arg(root)
            .args(binds)
            .arg("--")
            .args(empty)
            .arg("--")
            .args(argv);
        cmd
    }

    /// Whether one ping from this namespace reaches `to` (optionally from address `from`).
    pub fn ping(&self, from: Option<&str>, to: &str) -> bool {
        let mut argv = vec!["ping", "-n", "-q", "-c", "1", "-W", "1"];
        if let Some(from) = from {
            argv.extend(["-I", from]);
        }
        argv.push(to);
        self.exec(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command running `argv` inside the namespace (`ip netns exec NS argv…`).
    pub fn exec(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs in it (the Procs guard normally did), then delete it; its
        // interfaces (veth ends, tun devices, bridges) go with it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Background processes with their log files, killed when dropped.
#[derive(Default)]
pub struct Procs {
    procs: Vec<(String, Child, PathBuf)>,
}

impl Procs {
    /// Spawn `cmd` under `label`, its stdout and stderr going to `log`.
    #[track_caller]
    pub fn spawn(&mut self, label: &str, mut cmd: Command, log: PathBuf) {
        let file = fs::File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        self.procs.push((label.to_owned(), child, log));
    }

    /// The label of the first process that has exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        self.procs.iter_mut().find_map(|(label, child, _)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| format!("{label} exited: {status}"))
        })
    }

    /// Every log, labelled, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (label, _, log) in &self.procs {
            let body = fs::read_to_string(log).unwrap_or_else(|e| format!("(unreadable: {e})"));
            text.push_str(&format!("----- {label} ({})\n{body}\n", log.display()));
        }
        text
    }

    /// The log of `label`.
    pub fn log(&self, label: &str) -> String {
        self.procs
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, _, log)| fs::read_to_string(log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// The process id of `label`.
    pub fn pid(&self, label: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|(l, _, _)| l == label)
            .map(|(_, child, _)| child.id())
    }

    /// Kill the process `label` now.
    pub fn kill(&mut self, label: &str) {
        for (_, child, _) in self.procs.iter_mut().filter(|(l, _, _)| l == label) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill every process now.
    pub fn kill_all(&mut self) {
        for (_, child, _) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `dig @SERVER -p 53 +time=1 +tries=1 ARGS…` inside `ns`: what it printed, trimmed.
pub fn dig(ns: &Netns, server: &str, args: &[&str]) -> String {
    let server = format!("@{server}");
    let mut argv = vec!["/usr/bin/dig", &server, "-p", "53", "+time=1", "+tries=1"];
    argv.extend(args);
    let out = output(&mut ns.exec(&argv));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Send `signal` to every process named `comm` that runs in `ns` (SIGHUP to named: it reloads
/// its configuration and zones, what `rndc reload` asks).
pub fn signal_in(ns: &Netns, comm: &str, signal: nix::sys::signal::Signal) {
    let out = output(Command::new("ip").args(["netns", "pids", ns.name()]));
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let name =
            std::fs::read_to_string(Path::new("/proc").join(pid).join("comm")).unwrap_or_default();
        if name.trim() == comm {
            let pid: i32 = pid.parse().expect("a pid");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("kill");
        }
    }
}

/// Poll `check` every 250 ms until it holds or `timeout` passes; also stops early when a
/// process of `procs` exited. Returns whether `check` held.
pub fn wait_for(procs: &mut Procs, timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline || procs.exited().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Make sure `/dev/net/tun` can be opened; Err says why not.
pub fn ensure_tun() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let tun = Path::new("/dev/net/tun");
    if !tun.exists() {
        let _ = Command::new("modprobe").arg("tun").status();
    }
    if !tun.exists() {
        let _ = fs::create_dir_all("/dev/net");
        let _ = Command::new("mknod")
            .args(["/dev/net/tun", "c", "10", "200"])
            .status();
        let _ = fs::set_permissions(tun, fs::Permissions::from_mode(0o600));
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tun)
        .map(drop)
        .map_err(|e| format!("/dev/net/tun: {e}"))
}

/// The command line of the first `ExecStart=` of srvctl's unit `units/UNIT`, with `%i` replaced
/// by `instance`: what systemd would run.
pub fn exec_start(unit: &str, instance: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("units")
        .join(unit);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit} has no ExecStart="));
    line.split_whitespace()
        .map(|w| w.replace("%i", instance))
        .collect()
}

/// The scratch root's directories the mesh tunnels read at their absolute paths.
const MESH_BINDS: &[&str] = &["/run/srvctl", "/var/lib/srvctl/pki"];

/// One host of a mesh test: its short name, its scratch root and its namespace.
pub struct MeshHost {
    /// Its short name, for labels (`h1`).
    pub name: &'static str,
    /// Its scratch root, regenerated by `sc`.
    pub root: super::Farm,
    /// Its network namespace.
    pub ns: Netns,
}

impl MeshHost {
    /// Start the mesh instance `instance` (`server`, `client-H`) of this host with the command
    /// line of `srvctl-mesh@.service`; its log is `LOGS/NAME-INSTANCE.log`, its label
    /// `NAME INSTANCE`.
    pub fn start(&self, procs: &mut Procs, logs: &Path, instance: &str) {
        let argv = exec_start("srvctl-mesh@.service", instance);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let cmd = self
            .ns
            .exec_at_host_paths(self.root.root(), MESH_BINDS, &[], &argv);
        let label = format!("{} {instance}", self.name);
        let log: PathBuf = logs.join(format!("{}-{instance}.log", self.name));
        procs.spawn(&label, cmd, log);
    }

    /// Whether one ping from this host reaches `to` (optionally from address `from`).
    pub fn ping(&self, from: Option<&str>, to: &str) -> bool {
        self.ns.ping(from, to)
    }
}

/// The haproxy program.
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// The scratch root's directories haproxy reads at their absolute paths, and its own.
const HAPROXY_BINDS: &[&str] = &["/run/srvctl", "/var/lib/srvctl/certs"];
const HAPROXY_EMPTY: &[&str] = &["/var/lib/haproxy"];

/// The configuration srvctl's drop-in for haproxy.service has haproxy run: the `-f` of its
/// `ExecStart=` (`units/haproxy.service.d/srvctl.conf`).
pub fn haproxy_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("units/haproxy.service.d/srvctl.conf");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let line = text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .find(|l| !l.is_empty())
        .expect("the drop-in sets ExecStart=");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "-f")
        .expect("ExecStart= has -f");
    words[at + 1].to_owned()
}

/// haproxy in master-worker mode in `ns`, reading the configuration rendered under `root` at
/// the path srvctl's drop-in gives haproxy.service (the scratch root's `/run/srvctl` is bound
/// there).
pub fn haproxy(ns: &Netns, root: &super::Farm) -> Command {
    let cfg = haproxy_config();
    ns.exec_at_host_paths(
        root.root(),
        HAPROXY_BINDS,
        HAPROXY_EMPTY,
        &[HAPROXY, "-W", "-db", "-f", &cfg],
    )
}

/// BIND's name server.
pub const NAMED: &str = "/usr/sbin/named";

/// Start, in `procs` under `label`, a named in `ns` that listens on `ip` and serves the DNS
/// fragment srvctl rendered under `root` (`/run/srvctl/dns/named.conf`), with its working
/// directory and log in `work`; `binds` are the host paths of `root` it sees at their place.
/// It takes `rndc` commands on `ip` port 953 with the key [`rndc`] uses.
pub fn spawn_named(
    ns: &Netns,
    root: &Path,
    binds: &[&str],
    ip: &str,
    work: &Path,
    label: &str,
    procs: &mut Procs,
) {
    fs::create_dir_all(work).unwrap();
    let key = work.join("rndc.key");
    let secret = run_ok(Command::new(TSIG_KEYGEN).args(["-a", "hmac-sha256", "rndc-key"]));
    fs::write(&key, secret).unwrap();
    let conf = work.join("named.conf");
    fs::write(
        &conf,
        format!(
            "options {{ directory \"{dir}\"; pid-file \"{dir}/named.pid\"; \
             listen-on port 53 {{ {ip}; }}; listen-on-v6 {{ none; }}; recursion no; }};\n\
             include \"{key}\";\n\
             controls {{ inet {ip} port 953 allow {{ {ip}; }} keys {{ \"rndc-key\"; }}; }};\n\
             include \"/run/srvctl/dns/named.conf\";\n",
            dir = work.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let named = ns.exec_at_host_paths(
        root,
        binds,
        &[],
        &[NAMED, "-g", "-c", conf.to_str().unwrap()],
    );
    procs.spawn(label, named, work.join("named.log"));
}

/// `tsig-keygen`, for the keys of zone transfers and of rndc.
pub const TSIG_KEYGEN: &str = "/usr/sbin/tsig-keygen";
/// named's control program.
pub const RNDC: &str = "/usr/sbin/rndc";

/// Run `rndc ARGS` inside `ns` against the named [`spawn_named`] started there on `ip` with
/// its working directory `work`; panics when rndc fails.
#[track_caller]
pub fn rndc(ns: &Netns, ip: &str, work: &Path, args: &[&str]) -> String {
    let key = work.join("rndc.key");
    let mut argv = vec![RNDC, "-k", key.to_str().unwrap(), "-s", ip, "-p", "953"];
    argv.extend(args);
    run_ok(&mut ns.exec(&argv))
}
