//! The HTTPS front at full size: render, check and reload with 4,000 sites (8,000 domains:
//! each name and its www. variant, plus 4,001 certificates), and requests per second through
//! haproxy against straight to the backend.
//!
//! Run with `cargo bench --bench haproxy` (as root for the reload and the throughput; without
//! root those parts print `skipped: needs root`). Needs haproxy (scripts/test-deps.sh).
//!
//! Setup (not timed): the farm of `benches/farm` (4,000 containers on `h1.test`), expanded
//! once by `srvctl-regenerate --root R`, which issues the internal certificates.
//!
//! Timed:
//! (a) render: `render::haproxy::render` in-process for the 4,000 containers, 20 runs;
//! (b) check: `haproxy -c` of the rendered config (loading 4,001 certificates), 5 runs;
//! (c) regenerate with one alias added or removed (render, plan, staged `haproxy -c`, write),
//!     5 runs; and with one redirect changed (only the maps change: no check), 5 runs;
//! (d) reload: haproxy in a network namespace running the config; from SIGUSR2 to its master
//!     until the new worker has loaded ("Loading success."), 5 runs;
//! (e) throughput: plain HTTP/1.1 keep-alive requests from this program (4 connections, 3 s)
//!     through haproxy (:80, Host of a site whose http-redirect is none) and straight to the
//!     backend (a small server of this program on the site's plan address in a second
//!     namespace behind a veth pair); the ratio is proxied / direct. All on one machine, so the
//!     load generator, haproxy and the backend share its cores;
//! (f) live: with that haproxy running, one more site added (`sc add-ve`, then regenerate),
//!     5 runs: from `sc add-ve` returning until haproxy presents the name's certificate
//!     (verified), regenerate's own time, and its live update of haproxy (no reload).
//!
//! The same binary, run as `haproxy serve ADDR` or `haproxy load ADDR HOST SECONDS CONNS`,
//! is the backend and the load generator inside the namespaces.

// Benchmarks may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod farm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use farm::{CONTAINERS, HOSTNAME, Summary, beside, ms, timed};
use srvctl::system::paths::Paths;

/// Binds the scratch root `$1` at the paths the config names, then execs the rest.
const MOUNTS: &str = r#"set -e
root=$1; shift
mount -t tmpfs -o mode=0755 srvctl-bench /run
mkdir -p /run/srvctl
mount --bind "$root/run/srvctl" /run/srvctl
mount -t tmpfs -o mode=0755 srvctl-bench /var/lib
mkdir -p /var/lib/srvctl/certs /var/lib/haproxy
mount --bind "$root/var/lib/srvctl/certs" /var/lib/srvctl/certs
exec "$@"
"#;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n";

fn report(what: &str, times: Vec<Duration>) {
    let s = Summary::of(times);
    println!(
        "{what}: median {:.1} ms, min {:.1} ms, mean {:.1} ms, p95 {:.1} ms, max {:.1} ms (n={})",
        ms(s.median),
        ms(s.min),
        ms(s.mean),
        ms(s.p95),
        ms(s.max),
        s.n
    );
}

/// `serve ADDR`: answer every request on every connection with a small fixed response.
fn serve(addr: &str) -> ExitCode {
    let listener = TcpListener::bind(addr).expect("bind the backend");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut line = String::new();
            loop {
                // Read one request head (GETs only: no body).
                let mut got = false;
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => got = true,
                    }
                }
                if got && writer.write_all(RESPONSE).is_err() {
                    return;
                }
            }
        });
    }
    ExitCode::SUCCESS
}

/// `load ADDR HOST SECONDS CONNS`: keep-alive GETs on CONNS connections for SECONDS; prints
/// the number of responses and failures.
fn load(addr: &str, host: &str, seconds: f64, conns: usize) -> ExitCode {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: srvctl-bench\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let addr = addr.to_owned();
            let request = request.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let Ok(stream) = TcpStream::connect(&addr) else {
                        failed += 1;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    let mut line = String::new();
                    'conn: while Instant::now() < deadline {
                        if writer.write_all(request.as_bytes()).is_err() {
                            failed += 1;
                            break;
                        }
                        let mut length = 0usize;
                        let mut status_ok = false;
                        let mut first = true;
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => {
                                    failed += 1;
                                    break 'conn;
                                }
                                Ok(_) => {}
                            }
                            if first {
                                status_ok = line.starts_with("HTTP/1.1 200");
                                first = false;
                            } else if line == "\r\n" {
                                break;
                            } else if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            failed += 1;
                            break;
                        }
                        if status_ok {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for t in threads {
        let (o, f) = t.join().expect("load thread");
        ok += o;
        failed += f;
    }
    println!("{ok} {failed}");
    ExitCode::SUCCESS
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted with its processes when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Self {
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Self(name.to_owned());
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    fn ip(&self, args: &[&str]) {
        run_ok(Command::new("ip").arg("-n").arg(&self.0).args(args));
    }
    fn exec(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).args(argv);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.0]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn throughput(ns: &Netns, exe: &Path, addr: &str, host: &str) -> (f64, u64) {
    let secs = 3.0;
    let out = run_ok(&mut ns.exec(&[
        &exe.to_string_lossy(),
        "load",
        addr,
        host,
        &secs.to_string(),
        "4",
    ]));
    let mut it = out
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let (ok, failed) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (ok as f64 / secs, failed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => return serve(&args[2]),
        Some("load") => {
            return load(
                &args[2],
                &args[3],
                args[4].parse().expect("seconds"),
                args[5].parse().expect("connections"),
            );
        }
        _ => {}
    }
    let Some(regenerate) = beside("srvctl-regenerate") else {
        eprintln!(
            "haproxy bench: cannot find srvctl-regenerate; run `cargo bench --bench haproxy`"
        );
        return ExitCode::FAILURE;
    };
    let system = srvctl::system::Local::new(true);
    let Some(haproxy) = srvctl::front::guard::haproxy_program(&system) else {
        eprintln!("haproxy bench: skipped: haproxy is not installed (scripts/test-deps.sh)");
        return ExitCode::SUCCESS;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("create the root");
    farm::populate(&root);
    let paths = Paths::rooted(&root);
    // The measured site is served over plain HTTP (no redirect), so the ratio is about the
    // proxy, not about TLS.
    let site = ContainerNameOf(farm::container_name(0));
    {
        let (mut writer, mut state) = srvctl::store::Writer::lock(&system, &paths).expect("lock");
        let c = state.containers.get_mut(&site.name()).expect("site 0");
        c.web.http_redirect = Some(srvctl::model::web::Redirect::None);
        writer.commit(&state).expect("commit");
    }
    let regen = || {
        let mut cmd = Command::new(&regenerate);
        cmd.env("SRVCTL_HOSTNAME", HOSTNAME)
            .env_remove("SRVCTL_ROOT")
            .arg("--root")
            .arg(&root)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        timed(cmd)
    };
    let (first, out) = regen();
    let outcome: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        outcome["haproxy_error"],
        serde_json::Value::Null,
        "{outcome}"
    );
    let issued = outcome["certificates_issued"]
        .as_array()
        .map_or(0, Vec::len);
    let map = std::fs::read_to_string(root.join("run/srvctl/haproxy/hosts.map")).expect("map");
    let redirects =
        std::fs::read_to_string(root.join("run/srvctl/haproxy/http-redirect.map")).expect("map");
    let domains = map.lines().filter(|l| !l.starts_with('#')).count();
    let redirected = redirects.lines().filter(|l| l.starts_with("www.")).count();
    println!(
        "setup: {CONTAINERS} containers, {domains} served domains + {redirected} www. redirects; \
         first regenerate (issuing {issued} internal certificates, staged haproxy -c) {:.0} ms",
        ms(first)
    );

    // (a) Render, in-process.
    let state = srvctl::store::read(&system, &paths).expect("datastore");
    let clusters =
        srvctl::config::cluster::Clusters::load(&system, &paths.clusters()).expect("clusters");
    let me = clusters.host(HOSTNAME).expect("host");
    let templates = srvctl::engine::templates::Templates::load(&system, None).expect("templates");
    let site_settings = srvctl::config::site::Settings::default();
    let installed =
        srvctl::front::certs::installed(&system, &paths, &state).expect("installed certs");
    let times = (0..20)
        .map(|_| {
            let start = Instant::now();
            let mut tree = srvctl::engine::tree::Tree::default();
            srvctl::front::haproxy::render(
                &mut tree,
                &state,
                me,
                &site_settings,
                srvctl::front::acme::DEFAULT_LISTEN
                    .parse()
                    .expect("an address"),
                &installed,
                &templates,
            )
            .expect("render");
            start.elapsed()
        })
        .collect();
    report(
        &format!("render haproxy.cfg + maps + crt-list ({CONTAINERS} sites)"),
        times,
    );

    // (b) haproxy -c of the rendered config, relocated under the root.
    let hdir = root.join("run/srvctl/haproxy");
    let certs = srvctl::front::certs::dir(&paths);
    let checked_dir = dir.path().join("checked");
    std::fs::create_dir_all(&checked_dir).expect("mkdir");
    for entry in std::fs::read_dir(&hdir).expect("haproxy dir").flatten() {
        if entry.file_type().expect("type").is_file() {
            let text = std::fs::read_to_string(entry.path()).expect("read");
            let text = if entry.file_name() == "crt-list" {
                srvctl::front::haproxy::relocate(&text, &hdir, &certs)
            } else {
                text
            };
            std::fs::write(checked_dir.join(entry.file_name()), text).expect("write");
        }
    }
    let cfg = std::fs::read_to_string(root.join(srvctl::front::haproxy::CONFIG)).expect("cfg");
    let cfg = srvctl::front::haproxy::relocate(&cfg, &hdir, &certs).replace(
        &format!("crt-list {}/crt-list", hdir.display()),
        &format!("crt-list {}/crt-list", checked_dir.display()),
    );
    let checked_cfg = checked_dir.join("haproxy.cfg");
    std::fs::write(&checked_cfg, cfg).expect("write cfg");
    let times = (0..5)
        .map(|_| {
            let mut cmd = Command::new(&haproxy);
            cmd.arg("-c").arg("-q").arg("-f").arg(&checked_cfg);
            timed(cmd).0
        })
        .collect();
    report("haproxy -c (4,001 certificates)", times);

    // (c) Regenerate after one alias is added or removed.
    let times = (0..5)
        .map(|k| {
            let (mut writer, mut state) =
                srvctl::store::Writer::lock(&system, &paths).expect("lock");
            let c = state.containers.get_mut(&site.name()).expect("site 0");
            if k % 2 == 0 {
                c.web.aliases =
                    vec![srvctl::model::web::Domain::new("alias.example.net").expect("d")];
            } else {
                c.web.aliases.clear();
            }
            writer.commit(&state).expect("commit");
            drop(writer);
            let (t, out) = regen();
            let outcome: serde_json::Value = serde_json::from_str(&out).expect("JSON");
            assert_eq!(outcome["haproxy_error"], serde_json::Value::Null);
            assert!(
                outcome["reloads"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|v| v == "reload haproxy.service")),
                "{outcome}"
            );
            t
        })
        .collect();
    report(
        "regenerate after an alias change (render, plan, issue 1 certificate, staged haproxy -c, write)",
        times,
    );

    // (c') Regenerate after a redirect change: only the maps change, no check is needed.
    let other = ContainerNameOf(farm::container_name(1));
    let times = (0..5)
        .map(|k| {
            let (mut writer, mut state) =
                srvctl::store::Writer::lock(&system, &paths).expect("lock");
            let c = state.containers.get_mut(&other.name()).expect("site 1");
            c.web.http_redirect = (k % 2 == 0).then_some(srvctl::model::web::Redirect::None);
            writer.commit(&state).expect("commit");
            drop(writer);
            regen().0
        })
        .collect();
    report(
        "regenerate after a redirect change (maps only: render, plan, write, no check)",
        times,
    );

    if !nix::unistd::geteuid().is_root() {
        println!("reload and throughput: skipped: needs root (network namespaces, mounts)");
        return ExitCode::SUCCESS;
    }

    // (d) Reload: haproxy in a namespace, with the containers' namespace behind a veth pair.
    let exe = std::env::current_exe().expect("exe");
    let pid = std::process::id();
    let ns = Netns::new(&format!("hbh{pid}"));
    let cns = Netns::new(&format!("hbc{pid}"));
    let site_ip = state.containers[&site.name()].ip;
    let gateway = {
        let o = site_ip.octets();
        format!("{}.{}.{}.1/24", o[0], o[1], o[2])
    };
    ns.ip(&[
        "link", "add", "sc-br", "type", "veth", "peer", "name", "host0", "netns", &cns.0,
    ]);
    ns.ip(&["addr", "add", &gateway, "dev", "sc-br"]);
    ns.ip(&["link", "set", "sc-br", "up"]);
    cns.ip(&["addr", "add", &format!("{site_ip}/24"), "dev", "host0"]);
    cns.ip(&["link", "set", "host0", "up"]);
    let backend_addr = format!("{site_ip}:80");
    let _backend = Killed(
        cns.exec(&[&exe.to_string_lossy(), "serve", &backend_addr])
            .stdin(Stdio::null())
            .spawn()
            .expect("backend"),
    );
    let log_path: PathBuf = dir.path().join("haproxy.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut cmd = ns.exec(&["unshare", "--mount", "sh", "-c", MOUNTS, "sh"]);
    cmd.arg(&root)
        .arg(&haproxy)
        .args(["-W", "-db", "-f"])
        .arg(root.join(srvctl::front::haproxy::CONFIG))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let started = Instant::now();
    let proxy = Killed(cmd.spawn().expect("haproxy"));
    let loads = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches("Loading success.")
            .count()
    };
    let wait_loads = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while loads() < n {
            assert!(
                Instant::now() < deadline,
                "haproxy did not load:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_loads(1);
    println!(
        "haproxy start with {CONTAINERS} sites and 4,001 certificates: {:.0} ms",
        ms(started.elapsed())
    );
    let master = nix::unistd::Pid::from_raw(i32::try_from(proxy.0.id()).expect("pid"));
    let times = (0..5)
        .map(|k| {
            // A signal that arrives while the master is still settling after a load is lost:
            // let it settle first (not timed).
            std::thread::sleep(Duration::from_secs(1));
            let start = Instant::now();
            nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGUSR2).expect("USR2");
            wait_loads(k + 2);
            start.elapsed()
        })
        .collect();
    report(
        "reload (SIGUSR2 to the master until the new worker is loaded)",
        times,
    );

    // (e) Throughput, proxied and direct, twice each, alternating.
    let host = site.0.clone();
    let mut proxied = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..2 {
        let (p, pf) = throughput(&ns, &exe, "127.0.0.1:80", &host);
        let (d, df) = throughput(&ns, &exe, &backend_addr, &host);
        assert_eq!((pf, df), (0, 0), "failed requests");
        proxied.push(p);
        direct.push(d);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (p, d) = (best(&proxied), best(&direct));
    println!(
        "throughput (HTTP/1.1 keep-alive, 4 connections, 3 s, best of 2): through haproxy {p:.0} req/s, \
         direct {d:.0} req/s, ratio {:.2}",
        p / d
    );

    // (f) One more site on the running front, live: from `sc add-ve` returning until haproxy
    // serves the name with its certificate, and how long regenerate's live update of haproxy
    // itself takes.
    let sc = beside("sc").expect("sc beside the bench");
    let ca = root.join("var/lib/srvctl/pki/ca.crt");
    let mut served = Vec::new();
    let mut regenerated = Vec::new();
    for k in 0..5 {
        let name = format!("live{k}.example.com");
        let out = Command::new(&sc)
            .env("SRVCTL_HOSTNAME", HOSTNAME)
            .env_remove("SRVCTL_ROOT")
            .arg("--root")
            .arg(&root)
            .args(["add-ve", &name])
            .stdin(Stdio::null())
            .output()
            .expect("sc add-ve");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let added = Instant::now();
        let (t, out) = regen();
        let outcome: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(outcome["reloads"], serde_json::json!([]), "{outcome}");
        let live = outcome["updated_live"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(live.starts_with("front: "), "{outcome}");
        loop {
            // A TLS handshake with the name, verified against the internal CA for that name
            // (its container does not run here: a request would wait for the 503 page).
            let verified = ns
                .exec(&[
                    "openssl",
                    "s_client",
                    "-connect",
                    "127.0.0.1:443",
                    "-servername",
                    &name,
                    "-verify_hostname",
                    &name,
                    "-CAfile",
                    &ca.to_string_lossy(),
                    "-verify_return_error",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl")
                .success();
            if verified {
                break;
            }
            assert!(
                added.elapsed() < Duration::from_secs(10),
                "{name} not served"
            );
        }
        served.push(added.elapsed());
        regenerated.push(t);
        println!("{name}: {live}");
    }
    report(
        &format!(
            "one more site on {CONTAINERS} (sc add-ve returned -> served with its certificate)"
        ),
        served,
    );
    report(
        "  of which regenerate (render, plan, issue 1 certificate, live update, write)",
        regenerated,
    );
    assert_eq!(loads(), 6, "haproxy was reloaded");
    drop(proxy);
    ExitCode::SUCCESS
}

/// A container name held as text (the farm's names are valid).
struct ContainerNameOf(String);

impl ContainerNameOf {
    fn name(&self) -> srvctl::model::names::ContainerName {
        srvctl::model::names::ContainerName::new(&self.0).expect("a valid name")
    }
}
