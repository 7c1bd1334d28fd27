//! The HTTPS front with the real haproxy: `haproxy -c` accepts what srvctl renders, a config
//! haproxy refuses is never applied, and, in a network namespace, haproxy running the rendered
//! config routes to two small HTTP servers standing in for two containers on their plan
//! addresses: http→https redirects, SNI to the right container with a certificate of the
//! internal CA for that name, aliases redirected to the canonical name, the branded 404 page for
//! unknown hosts and 503 page for a stopped backend, ACME challenges forwarded without a
//! redirect, and 2,000 requests during 10 hitless reloads.
//!
//! The config names absolute paths (`/run/srvctl/haproxy/…`, `/var/lib/srvctl/certs/…`):
//! haproxy runs in a private mount namespace where a tmpfs covers `/run` and `/var/lib` and
//! the scratch root's directories are bound at those paths, as tests/openvpn_mesh.rs does.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Farm;
use common::real::{
    HAPROXY, Netns, Procs, haproxy, output, require_root, require_tool, run_ok, unique,
};

const CURL: &str = "/usr/bin/curl";
const OPENSSL: &str = "/usr/bin/openssl";
const BUSYBOX: &str = "/bin/busybox";

const CLUSTERS: &str = r#"{"front":{"h1.test":{"host_ip":"172.31.98.1","hostnet":1}}}"#;
const SETTINGS: &str = r#"{"company_domain": "company.net", "company_name": "Front Test Hosting"}"#;

fn front_root() -> Farm {
    let root = Farm::with_clusters(CLUSTERS);
    fs::write(root.join("etc/srvctl/settings.json"), SETTINGS).unwrap();
    for args in [
        &["add-ve", "web.example.com"][..],
        &["web.example.com", "alias", "add", "example.net"],
        &["web.example.com", "altname", "add", "shop.example.com"],
        &["add-ve", "blog.example.org"],
        // Served over plain HTTP too: no HSTS for it.
        &["blog.example.org", "http-redirect", "none"],
    ] {
        root.sc_ok(args);
    }
    root
}

#[test]
fn haproxy_accepts_the_rendered_config_and_a_refused_one_is_never_applied() {
    if !require_root("haproxy_check") {
        return;
    }
    require_tool(HAPROXY);
    let root = front_root();
    let out = root.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["haproxy_error"], serde_json::Value::Null, "{out}");
    assert_eq!(outcome["notes"], serde_json::json!([]), "{out}");
    // The check the guard ran, by hand: the live paths moved under the root.
    let cfg = root.join("run/srvctl/haproxy/haproxy.cfg");
    let dir = root.join("run/srvctl/haproxy");
    let certs = root.join("var/lib/srvctl/certs");
    let text = srvctl::front::haproxy::relocate(&fs::read_to_string(&cfg).unwrap(), &dir, &certs);
    let crt = srvctl::front::haproxy::relocate(
        &fs::read_to_string(dir.join("crt-list")).unwrap(),
        &dir,
        &certs,
    );
    fs::write(dir.join("crt-list"), crt).unwrap();
    let checked = root.join("checked.cfg");
    fs::write(&checked, text).unwrap();
    let out = run_ok(Command::new(HAPROXY).arg("-c").arg("-f").arg(&checked));
    assert!(out.contains("Configuration file is valid"), "{out}");
    root.sc_ok(&["regenerate"]);

    // A template haproxy refuses: nothing of the new front is applied, regenerate fails.
    let before = fs::read(&cfg).unwrap();
    let map_before = fs::read(dir.join("hosts.map")).unwrap();
    let templates = root.join("etc/srvctl/templates");
    fs::create_dir_all(&templates).unwrap();
    let broken = include_str!("../templates/haproxy.cfg").replace("mode http", "mode nonsense");
    fs::write(templates.join("haproxy.cfg"), broken).unwrap();
    root.sc_ok(&["add-ve", "new.example.com"]);
    let run = output(
        root.program(common::SC)
            .arg("--root")
            .arg(root.root())
            .arg("regenerate"),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("haproxy refused the new configuration") && stderr.contains("nonsense"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(&cfg).unwrap(),
        before,
        "the live config was replaced"
    );
    assert_eq!(fs::read(dir.join("hosts.map")).unwrap(), map_before);
    assert!(!root.join("run/srvctl/haproxy.check").exists());
    // The rest of the host was expanded all the same.
    assert!(
        root.join("run/systemd/nspawn/new.example.com.nspawn")
            .exists()
    );
    // Fixed: the front follows.
    fs::remove_file(templates.join("haproxy.cfg")).unwrap();
    root.sc_ok(&["regenerate"]);
    let map = fs::read_to_string(dir.join("hosts.map")).unwrap();
    assert!(map.contains("\nnew.example.com 10.16.0.4:80\n"), "{map}");
}

/// `curl` inside the namespace, resolving the names given to loopback.
fn curl(ns: &Netns, ca: &Path, names: &[&str], args: &[&str]) -> (String, String) {
    let mut argv: Vec<String> = vec![
        CURL.into(),
        "-sS".into(),
        "--max-time".into(),
        "10".into(),
        "--cacert".into(),
        ca.display().to_string(),
    ];
    for n in names {
        for port in [80, 443] {
            argv.push("--resolve".into());
            argv.push(format!("{n}:{port}:127.0.0.1"));
        }
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = output(&mut ns.exec(&argv));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Status code and Location of one request (`-k`: for names no certificate covers).
fn head(ns: &Netns, ca: &Path, name: &str, url: &str) -> (String, String) {
    let (out, err) = curl(
        ns,
        ca,
        &[name],
        &["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", url],
    );
    let (code, location) = out.split_once(' ').unwrap_or((&out, ""));
    assert!(!code.is_empty(), "curl {url}: {err}");
    (code.to_owned(), location.to_owned())
}

/// The subject and SANs of the certificate haproxy presents for `sni`.
fn presented(ns: &Netns, sni: &str) -> String {
    let script = format!(
        "{OPENSSL} s_client -connect 127.0.0.1:443 -servername {sni} </dev/null 2>/dev/null \
         | {OPENSSL} x509 -noout -subject -ext subjectAltName"
    );
    let out = output(&mut ns.exec(&["sh", "-c", &script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn haproxy_routes_redirects_serves_certificates_and_reloads_hitlessly() {
    if !require_root("haproxy_front") {
        return;
    }
    for tool in [HAPROXY, CURL, OPENSSL, BUSYBOX] {
        require_tool(tool);
    }
    let root = front_root();
    root.sc_ok(&["regenerate"]);
    let ip = |name: &str| {
        root.sc_ok(&["get", "container", name, "ip"])
            .trim()
            .to_owned()
    };
    let (web_ip, blog_ip) = (ip("web.example.com"), ip("blog.example.org"));
    let ca = root.join("var/lib/srvctl/pki/ca.crt");

    // The host's namespace runs haproxy; the containers' namespace holds their plan addresses,
    // behind a veth pair standing in for their bridge.
    let ns = Netns::new(&unique("hfr"));
    let cns = Netns::new(&unique("hfc"));
    ns.veth("sc-br", &cns, "host0");
    ns.ip(&["addr", "add", "10.16.0.1/24", "dev", "sc-br"]);
    for a in [&web_ip, &blog_ip] {
        cns.ip(&["addr", "add", &format!("{a}/24"), "dev", "host0"]);
    }
    let logs = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    // The two "containers", and the ACME challenge responder haproxy forwards to.
    let site = |name: &str, body: &str| {
        let dir = logs.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("index.html"), body).unwrap();
        dir
    };
    let web_dir = site("web", "this is web.example.com\n");
    let blog_dir = site("blog", "this is blog.example.org\n");
    let acme_dir = site("acme", "");
    fs::create_dir_all(acme_dir.join(".well-known/acme-challenge")).unwrap();
    fs::write(
        acme_dir.join(".well-known/acme-challenge/token123"),
        "token123.thumbprint",
    )
    .unwrap();
    let httpd = |ns: &Netns, dir: &Path, listen: &str| {
        let mut cmd = ns.exec(&[BUSYBOX, "httpd", "-f", "-p", listen, "-h"]);
        cmd.arg(dir);
        cmd
    };
    procs.spawn(
        "web",
        httpd(&cns, &web_dir, &format!("{web_ip}:80")),
        logs.path().join("web.log"),
    );
    procs.spawn(
        "blog",
        httpd(&cns, &blog_dir, &format!("{blog_ip}:80")),
        logs.path().join("blog.log"),
    );
    procs.spawn(
        "acme",
        httpd(&ns, &acme_dir, "127.0.0.1:8402"),
        logs.path().join("acme.log"),
    );
    procs.spawn(
        "haproxy",
        haproxy(&ns, &root),
        logs.path().join("haproxy.log"),
    );

    let up = common::real::wait_for(&mut procs, Duration::from_secs(15), || {
        head(&ns, &ca, "web.example.com", "https://web.example.com/").0 == "200"
    });
    assert!(up, "haproxy did not serve:\n{}", procs.logs());

    // http:// is redirected to https://, path and query kept.
    assert_eq!(
        head(
            &ns,
            &ca,
            "web.example.com",
            "http://web.example.com/a/b?c=d"
        ),
        ("301".into(), "https://web.example.com/a/b?c=d".into())
    );
    // HTTPS with SNI reaches the right container under every name it serves, with a
    // certificate of the internal CA for that name (curl verifies name and chain).
    for (name, body) in [
        ("web.example.com", "this is web.example.com"),
        ("shop.example.com", "this is web.example.com"),
        ("web-example-com.company.net", "this is web.example.com"),
        ("blog.example.org", "this is blog.example.org"),
        ("blog-example-org.company.net", "this is blog.example.org"),
    ] {
        let (out, err) = curl(&ns, &ca, &[name], &[&format!("https://{name}/")]);
        assert_eq!(out.trim(), body, "https://{name}/: {err}");
        let cert = presented(&ns, name);
        assert!(cert.contains(&format!("DNS:{name}")), "{name}: {cert}");
    }
    // HSTS for the site that sends plain HTTP to HTTPS, not for the one served over both;
    // the security headers for both.
    for (name, hsts) in [("web.example.com", true), ("blog.example.org", false)] {
        let (headers, err) = curl(
            &ns,
            &ca,
            &[name],
            &["-D", "-", "-o", "/dev/null", &format!("https://{name}/")],
        );
        let headers = headers.to_ascii_lowercase();
        assert_eq!(
            headers.contains("strict-transport-security: max-age=31536000"),
            hsts,
            "https://{name}/: {headers}{err}"
        );
        for header in [
            "x-content-type-options: nosniff",
            "referrer-policy: strict-origin-when-cross-origin",
            "x-frame-options: sameorigin",
        ] {
            assert!(
                headers.contains(header),
                "https://{name}/ lacks {header}: {headers}"
            );
        }
    }
    let cert = presented(&ns, "blog.example.org");
    assert!(cert.contains("CN = blog.example.org"), "{cert}");
    assert!(!cert.contains("web.example.com"), "{cert}");
    // Aliases and www. go to the canonical name.
    for (name, url) in [
        ("example.net", "https://example.net/x?y=1"),
        ("example.net", "http://example.net/x?y=1"),
        ("www.web.example.com", "https://www.web.example.com/x?y=1"),
    ] {
        assert_eq!(
            head(&ns, &ca, name, url),
            ("301".into(), "https://web.example.com/x?y=1".into()),
            "{url}"
        );
    }
    // Unknown hosts: the branded 404 page, over both ports (the default certificate).
    for url in [
        "http://unknown.example.com/",
        "https://unknown.example.com/",
    ] {
        let (out, _) = curl(
            &ns,
            &ca,
            &["unknown.example.com"],
            &["-k", "-w", "\n%{http_code}", url],
        );
        assert!(out.ends_with("\n404"), "{url}: {out}");
        assert!(out.contains("Front Test Hosting"), "{url}: {out}");
    }
    assert!(presented(&ns, "unknown.example.com").contains("CN = h1.test"));
    // No Host header at all (HTTP/1.0): the 404 page too.
    let (out, _) = curl(
        &ns,
        &ca,
        &[],
        &[
            "-0",
            "-H",
            "Host:",
            "-w",
            "\n%{http_code}",
            "http://127.0.0.1/",
        ],
    );
    assert!(out.ends_with("\n404"), "{out}");
    // ACME challenges are forwarded on every name, never redirected.
    for name in ["web.example.com", "example.net", "unknown.example.com"] {
        let (out, err) = curl(
            &ns,
            &ca,
            &[name],
            &[&format!(
                "http://{name}/.well-known/acme-challenge/token123"
            )],
        );
        assert_eq!(out, "token123.thumbprint", "{name}: {err}");
    }

    // 2,000 requests, each on a new TLS connection, during 10 reloads: none fails.
    // The haproxy master: `ip netns exec`, `unshare` and `sh` all exec into it.
    let pid = procs.pid("haproxy").expect("haproxy runs");
    let master = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
    let mut load = ns.exec(&[
        CURL,
        "-sS",
        "--cacert",
        &ca.display().to_string(),
        "--resolve",
        "web.example.com:443:127.0.0.1",
        "-H",
        "Connection: close",
        "--rate",
        "400/s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
        "https://web.example.com/?n=[1-2000]",
    ]);
    let started = Instant::now();
    let load = load
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the load");
    let loads = || procs.log("haproxy").matches("Loading success.").count();
    let first = loads();
    for k in 1..=10 {
        std::thread::sleep(Duration::from_millis(300));
        // Each reload is complete (the new worker loaded) before the next: a signal that
        // arrives while the master is still settling can be lost, so it is sent again.
        let sent = Instant::now();
        let mut last = sent;
        nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGUSR2).expect("reload");
        while loads() < first + k {
            assert!(
                sent.elapsed() < Duration::from_secs(20),
                "reload {k} never loaded"
            );
            if last.elapsed() > Duration::from_secs(3) {
                last = Instant::now();
                nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGUSR2).expect("reload");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let reloads_done = started.elapsed();
    let out = load.wait_with_output().expect("load");
    let codes = String::from_utf8_lossy(&out.stdout);
    let total = started.elapsed();
    let failed: Vec<(usize, &str)> = codes
        .lines()
        .enumerate()
        .filter(|(_, c)| *c != "200")
        .collect();
    assert_eq!(
        codes.lines().count(),
        2000,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        failed.is_empty(),
        "{} of 2000 failed during reloads: {:?}\n{}\n{}",
        failed.len(),
        &failed[..failed.len().min(20)],
        String::from_utf8_lossy(&out.stderr),
        procs.log("haproxy")
    );
    assert!(
        total > reloads_done,
        "the load ended ({total:?}) before the 10th reload ({reloads_done:?})"
    );
    assert!(
        loads() > first + 9,
        "{} loads:\n{}",
        loads(),
        procs.log("haproxy")
    );
    eprintln!("2000 requests in {total:?} during 10 reloads: none failed");

    // A stopped backend: the branded 503 page.
    procs.kill("blog");
    let (out, _) = curl(
        &ns,
        &ca,
        &["blog.example.org"],
        &["-w", "\n%{http_code}", "https://blog.example.org/"],
    );
    assert!(out.ends_with("\n503"), "{out}");
    assert!(out.contains("Front Test Hosting"), "{out}");
}

/// The issuer of the certificate haproxy presents for `sni`.
fn presented_issuer(ns: &Netns, sni: &str) -> String {
    let script = format!(
        "{OPENSSL} s_client -connect 127.0.0.1:443 -servername {sni} </dev/null 2>/dev/null \
         | {OPENSSL} x509 -noout -issuer"
    );
    let out = output(&mut ns.exec(&["sh", "-c", &script]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command running `argv` in `ns` with srvctl's hosts file of `root` as `/etc/hosts` (bound
/// in a private mount namespace), as on a host srvctl manages.
fn with_hosts_block(ns: &Netns, root: &Farm, argv: &[&str]) -> Command {
    let hosts = root.join("etc/hosts").display().to_string();
    let mut all = vec![
        "unshare",
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"",
        "sh",
        &hosts,
    ];
    all.extend(argv);
    ns.exec(&all)
}

/// pebble issues a certificate over HTTP-01 through haproxy, on a host laid out as srvctl lays
/// it out: `/etc/hosts` carries srvctl's block (the site at its container address), DNS
/// (pebble-challtestsrv on 127.0.0.1:53, the host's `dns1`) says the site is at the host's
/// address. pebble validates there on port 80, haproxy forwards `/.well-known/acme-challenge/`
/// to the responder of `sc certificates renew` at `acme_listen`; the next regenerate installs the
/// new certificate in the running haproxy (no reload), which serves it, verified against
/// pebble's root.
#[test]
fn pebble_issues_through_haproxy_and_the_proxy_serves_the_certificate() {
    use common::real::pebble::{CHALLTESTSRV, PEBBLE, Pebble};
    if !require_root("haproxy_acme") {
        return;
    }
    for tool in [HAPROXY, CURL, OPENSSL, PEBBLE, CHALLTESTSRV] {
        require_tool(tool);
    }
    const SITE: &str = "blog.example.org";
    const HOST_IP: &str = "172.31.98.1";
    let root = front_root();
    // The host's resolver is the test's DNS server.
    fs::write(
        root.join("etc/srvctl/clusters.json"),
        CLUSTERS.replace(r#""hostnet":1"#, r#""hostnet":1,"dns1":"127.0.0.1""#),
    )
    .unwrap();
    // The responder on a port of its own: haproxy must forward challenges there.
    let mut settings: serde_json::Value = serde_json::from_str(SETTINGS).unwrap();
    settings["acme_listen"] = "127.0.0.1:8499".into();
    fs::write(root.join("etc/srvctl/settings.json"), settings.to_string()).unwrap();
    root.sc_ok(&["regenerate"]);
    let cfg = fs::read_to_string(root.join(srvctl::front::haproxy::CONFIG)).unwrap();
    assert!(cfg.contains("server responder 127.0.0.1:8499"), "{cfg}");
    let ns = Netns::new(&unique("hac"));
    ns.ip(&["addr", "add", &format!("{HOST_IP}/32"), "dev", "lo"]);
    let logs = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    procs.spawn(
        "haproxy",
        haproxy(&ns, &root),
        logs.path().join("haproxy.log"),
    );
    let up = common::real::wait_for(&mut procs, Duration::from_secs(15), || {
        presented_issuer(&ns, SITE).contains("srvctl internal CA")
    });
    assert!(
        up,
        "haproxy did not serve the internal certificate:\n{}",
        procs.logs()
    );

    let pebble = Pebble::start(80, Some(&ns));
    pebble.add_a(SITE, HOST_IP);
    pebble.add_a(&format!("www.{SITE}"), HOST_IP);
    settings["acme_directory"] = pebble.directory.clone().into();
    settings["acme_ca_file"] = pebble.tls_ca().display().to_string().into();
    fs::write(root.join("etc/srvctl/settings.json"), settings.to_string()).unwrap();

    // What the system resolver says on this host: the container's address.
    let looked_up = run_ok(&mut with_hosts_block(
        &ns,
        &root,
        &["getent", "hosts", SITE],
    ));
    assert!(
        looked_up.starts_with("10."),
        "srvctl's hosts block maps {SITE} to its container: {looked_up}"
    );

    let root_dir = root.root().display().to_string();
    let mut renew = with_hosts_block(
        &ns,
        &root,
        &[
            common::SC,
            "--root",
            &root_dir,
            "certificates",
            "renew",
            SITE,
        ],
    );
    renew
        .env("SRVCTL_HOSTNAME", "h1.test")
        .env_remove("SRVCTL_ROOT")
        .env_remove("SUDO_USER");
    let out = output(&mut renew);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && log.contains(&format!("{SITE}: installed")),
        "renew through haproxy failed:\n{log}\n{}\n{}",
        pebble.procs.logs(),
        procs.logs()
    );
    let meta = fs::read_to_string(root.join(&format!("var/lib/srvctl/certs/{SITE}.json"))).unwrap();
    assert!(meta.contains("\"acme\""), "{meta}");

    // The next regenerate lists it and installs it in the running haproxy, without a reload.
    let out = root.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        outcome["updated_live"][0]
            .as_str()
            .is_some_and(|l| l.starts_with("front: ") && l.contains("1 certificates")),
        "{outcome:#}"
    );
    assert_eq!(outcome["reloads"], serde_json::json!([]), "{outcome:#}");
    let served = common::real::wait_for(&mut procs, Duration::from_secs(15), || {
        presented_issuer(&ns, SITE).contains("Pebble")
    });
    assert!(
        served,
        "haproxy still presents {}",
        presented_issuer(&ns, SITE)
    );
    // The chain haproxy sends verifies against pebble's root, for the name (the backend does
    // not run: the 503 page, over a verified connection).
    let pebble_root = logs.path().join("pebble-root.pem");
    fs::write(&pebble_root, pebble.root()).unwrap();
    let (code, err) = curl(
        &ns,
        &pebble_root,
        &[SITE],
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{SITE}/"),
        ],
    );
    assert_eq!(code, "503", "{err}");
}
