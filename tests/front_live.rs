//! The HTTPS front changed live, with the real haproxy: in a network namespace, haproxy runs
//! the rendered front while h2load sends HTTPS requests to a site the whole time, and 100 sites
//! are added one after another (`sc add-ve`, then `sc regenerate`, as on a host where
//! srvctl-regenerate follows every command). Each new site answers over HTTPS with its own
//! certificate of the internal CA within 1 s of `sc add-ve` returning; no request fails; the
//! master's reload count (`show proc` on its CLI) does not move. Then a renewed certificate
//! (an alias makes the site's certificate be issued again) and a removed site are live too.
//! The figures (median and max from `sc add-ve` returning to the site served) are printed.
//!
//! See tests/haproxy_front.rs for how haproxy runs at the paths the rendered files name.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Farm;
use common::real::{HAPROXY, Netns, Procs, output, require_root, require_tool, unique};

const CURL: &str = "/usr/bin/curl";
const OPENSSL: &str = "/usr/bin/openssl";
const BUSYBOX: &str = "/bin/busybox";
const H2LOAD: &str = "/usr/bin/h2load";

const CLUSTERS: &str = r#"{"front":{"h1.test":{"host_ip":"172.31.97.1","hostnet":1}}}"#;
const SETTINGS: &str = r#"{"company_domain": "company.net", "company_name": "Live Test Hosting"}"#;
/// haproxy's master CLI, at a path under the scratch root's `/run/srvctl`.
const MASTER: &str = "/run/srvctl/haproxy-master.sock";
/// The site under load.
const LOADED: &str = "web.example.com";
/// How many sites are added.
const SITES: usize = 100;

/// The status code of `https://NAME/` from inside `ns`, verified against `ca` for `name` (so
/// a wrong certificate is an error: code 000).
fn https_code(ns: &Netns, ca: &Path, name: &str) -> String {
    let out = output(&mut ns.exec(&[
        CURL,
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        &ca.display().to_string(),
        "--resolve",
        &format!("{name}:443:127.0.0.1"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{name}/"),
    ]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SANs of the certificate haproxy presents for `sni`.
fn presented(ns: &Netns, sni: &str) -> String {
    let script = format!(
        "{OPENSSL} s_client -connect 127.0.0.1:443 -servername {sni} </dev/null 2>/dev/null \
         | {OPENSSL} x509 -noout -ext subjectAltName"
    );
    let out = output(&mut ns.exec(&["sh", "-c", &script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One request on a Unix socket, the whole answer.
fn ask(socket: &Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    s.write_all(request.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The master's reload count, from `show proc`: `PID master RELOADS [failed: N] …`.
fn reloads(master: &Path) -> u64 {
    let shown = ask(master, "show proc\n");
    shown
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let (_, kind, count) = (words.next()?, words.next()?, words.next()?);
            (kind == "master").then(|| count.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no master line in: {shown}"))
}

/// `sc regenerate --json` under the farm: the outcome, which must have updated the front live
/// and reloaded nothing.
#[track_caller]
fn regenerate_live(farm: &Farm) -> serde_json::Value {
    let out = farm.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    let live = outcome["updated_live"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        live.iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("front: "))),
        "the front was not updated live: {outcome:#}"
    );
    // haproxy is not reloaded (the mail services reload for their tables of the new site).
    let reloads = outcome["reloads"].as_array().cloned().unwrap_or_default();
    assert!(
        reloads.iter().all(|r| r
            .as_str()
            .is_some_and(|r| r.contains("srvctl-postfix") || r.contains("srvctl-opendkim"))),
        "{outcome:#}"
    );
    outcome
}

/// h2load's counts of one run: (done, succeeded, failed, errored, timeout, answers other than
/// 2xx). (A response that comes in as a timed run ends may count among the 2xx codes but not
/// as done.)
fn h2load_counts(out: &str) -> Option<[u64; 6]> {
    let num = |line: &str, word: &str| -> Option<u64> {
        let at = line.find(&format!(" {word}"))?;
        line[..at].rsplit([' ', ',']).next()?.parse().ok()
    };
    let requests = out.lines().find(|l| l.starts_with("requests:"))?;
    let codes = out.lines().find(|l| l.starts_with("status codes:"))?;
    Some([
        num(requests, "done")?,
        num(requests, "succeeded")?,
        num(requests, "failed")?,
        num(requests, "errored")?,
        num(requests, "timeout")?,
        num(codes, "3xx")? + num(codes, "4xx")? + num(codes, "5xx")?,
    ])
}

/// h2load, run again and again for 3 s each until `stop`, sending HTTPS (HTTP/2) requests to
/// the loaded site: 2 clients, 4 streams each, 100 requests per second each. Returns each run's
/// output.
fn load(ns_name: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut runs = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns_name, H2LOAD])
                .args(["-c", "2", "-m", "4", "--rps", "100", "-D", "3"])
                .args(["--connect-to", "127.0.0.1:443"])
                .arg(format!("https://{LOADED}/"))
                .stdin(Stdio::null())
                .output()
                .expect("run h2load");
            runs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        runs
    })
}

#[test]
fn sites_and_certificates_go_live_under_load_without_a_reload() {
    if !require_root("front_live") {
        return;
    }
    for tool in [HAPROXY, CURL, OPENSSL, BUSYBOX, H2LOAD] {
        require_tool(tool);
    }
    let farm = Farm::with_clusters(CLUSTERS);
    fs::write(farm.join("etc/srvctl/settings.json"), SETTINGS).unwrap();
    farm.sc_ok(&["add-ve", LOADED]);
    farm.sc_ok(&["regenerate"]);
    let ca = farm.join("var/lib/srvctl/pki/ca.crt");

    // haproxy's namespace, and the containers' behind a veth pair: every address of root's
    // bridge there, one web server answering on all of them.
    let ns = Netns::new(&unique("hlv"));
    let cns = Netns::new(&unique("hlc"));
    ns.veth("sc-br", &cns, "host0");
    ns.ip(&["addr", "add", "10.16.0.1/24", "dev", "sc-br"]);
    let batch: String = (2..=252)
        .map(|c| format!("addr add 10.16.0.{c}/24 dev host0\n"))
        .collect();
    let logs = tempfile::tempdir().unwrap();
    let batch_file = logs.path().join("addresses");
    fs::write(&batch_file, batch).unwrap();
    output(
        Command::new("ip")
            .args(["-n", cns.name(), "-batch"])
            .arg(&batch_file),
    );
    let www = logs.path().join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("index.html"), "a site\n").unwrap();
    let mut procs = Procs::default();
    let mut httpd = cns.exec(&[BUSYBOX, "httpd", "-f", "-p", "80", "-h"]);
    httpd.arg(&www);
    procs.spawn("httpd", httpd, logs.path().join("httpd.log"));
    let mut haproxy = common::real::haproxy(&ns, &farm);
    haproxy.args(["-S", MASTER]);
    procs.spawn("haproxy", haproxy, logs.path().join("haproxy.log"));
    let up = common::real::wait_for(&mut procs, Duration::from_secs(15), || {
        https_code(&ns, &ca, LOADED) == "200"
    });
    assert!(up, "haproxy did not serve:\n{}", procs.logs());
    let master = farm.join(MASTER.trim_start_matches('/'));
    let reloads_before = reloads(&master);

    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(ns.name().to_owned(), Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for i in 0..SITES {
        let name = format!("site{i}.example.com");
        farm.sc_ok(&["add-ve", &name]);
        let added = Instant::now();
        regenerate_live(&farm);
        loop {
            if https_code(&ns, &ca, &name) == "200" {
                break;
            }
            assert!(
                added.elapsed() < Duration::from_secs(5),
                "{name} not served:\n{}",
                procs.logs()
            );
        }
        let took = added.elapsed();
        assert!(
            presented(&ns, &name).contains(&format!("DNS:{name}")),
            "{name}: {}",
            presented(&ns, &name)
        );
        times.push(took);
    }

    // A new certificate for a site (an alias is added: its certificate is issued again with
    // the new name) and a site removed: live too.
    farm.sc_ok(&["site0.example.com", "alias", "add", "alias0.example.net"]);
    let outcome = regenerate_live(&farm);
    assert!(
        outcome["certificates_issued"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "site0.example.com")),
        "{outcome:#}"
    );
    let cert = presented(&ns, "site0.example.com");
    assert!(cert.contains("DNS:alias0.example.net"), "{cert}");
    farm.sc_ok(&["destroy-ve", "site1.example.com"]);
    regenerate_live(&farm);
    let out = output(&mut ns.exec(&[
        CURL,
        "-sS",
        "-k",
        "--resolve",
        "site1.example.com:443:127.0.0.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "https://site1.example.com/",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    assert!(!presented(&ns, "site1.example.com").contains("DNS:site1.example.com"));

    stop.store(true, Ordering::Relaxed);
    let runs = loader.join().expect("the load");
    let mut total = [0u64; 6];
    for run in &runs {
        let counts = h2load_counts(run).unwrap_or_else(|| panic!("h2load said:\n{run}"));
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
    }
    let [done, succeeded, failed, errored, timeout, not_ok] = total;
    assert!(done > 0 && runs.len() > 1, "{runs:?}");
    assert_eq!(
        (succeeded, failed, errored, timeout, not_ok),
        (done, 0, 0, 0, 0),
        "{runs:#?}"
    );
    assert_eq!(
        reloads(&master),
        reloads_before,
        "haproxy was reloaded:\n{}",
        procs.log("haproxy")
    );

    times.sort();
    let median = times[times.len() / 2];
    let max = *times.last().unwrap();
    eprintln!(
        "{SITES} sites added under load ({done} HTTPS requests in {} h2load runs, none failed, \
         no reload): from `sc add-ve` returning to the site served with its certificate, \
         median {:.0} ms, max {:.0} ms",
        runs.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    assert!(max < Duration::from_secs(1), "the slowest took {max:?}");
}
