//! A TLS scan of the HTTPS front, by the real testssl.sh against the real haproxy running the
//! config `sc regenerate` rendered (in a network namespace, as tests/haproxy_front.rs runs it):
//! TLS 1.2 and 1.3 only, forward secrecy with every cipher offered, HTTP/2 by ALPN, and HSTS
//! on a site that redirects plain HTTP to HTTPS (and none on one that does not).

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use common::Farm;
use common::real::{HAPROXY, Netns, Procs, haproxy, output, require_root, require_tool, unique};

const TESTSSL: &str = "/usr/bin/testssl";
const CURL: &str = "/usr/bin/curl";
const BUSYBOX: &str = "/bin/busybox";
const CLUSTERS: &str = r#"{"front":{"h1.test":{"host_ip":"172.31.97.1","hostnet":1}}}"#;

/// The findings of a testssl.sh JSON file, by id (the first of each id).
fn findings(json: &[u8]) -> BTreeMap<String, String> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(json).expect("testssl's JSON");
    let mut out = BTreeMap::new();
    for row in rows {
        if let (Some(id), Some(finding)) = (row["id"].as_str(), row["finding"].as_str()) {
            out.entry(id.to_owned())
                .or_insert_with(|| finding.to_owned());
        }
    }
    out
}

/// Scan `name` on the front at 127.0.0.1 with testssl.sh `checks`, in `ns`.
fn scan(
    ns: &Netns,
    dir: &std::path::Path,
    name: &str,
    checks: &[&str],
) -> BTreeMap<String, String> {
    let json = dir.join(format!("{name}.json"));
    let _ = fs::remove_file(&json);
    let mut argv = vec![
        TESTSSL,
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--ip",
        "127.0.0.1",
    ];
    argv.extend(checks);
    let json_arg = json.to_string_lossy().into_owned();
    let url = format!("https://{name}/");
    argv.extend(["--jsonfile", &json_arg, &url]);
    let out = output(&mut ns.exec(&argv));
    let text = fs::read(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no {json:?} ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    findings(&text)
}

#[test]
fn the_front_offers_tls_1_2_and_1_3_only_with_forward_secrecy_http2_and_hsts() {
    if !require_root("front_tls_scan") {
        return;
    }
    for tool in [HAPROXY, TESTSSL, CURL, BUSYBOX] {
        require_tool(tool);
    }
    let root = Farm::with_clusters(CLUSTERS);
    for args in [
        &["add-ve", "web.example.com"][..],
        &["add-ve", "plain.example.org"],
        &["plain.example.org", "http-redirect", "none"],
        &["regenerate"],
    ] {
        root.sc_ok(args);
    }
    // The host's namespace runs haproxy; busybox httpd stands in for each site at its plan
    // address in the containers' namespace, behind a veth pair standing in for the bridge.
    let ns = Netns::new(&unique("tls"));
    let cns = Netns::new(&unique("tlc"));
    ns.veth("sc-br", &cns, "host0");
    ns.ip(&["addr", "add", "10.16.0.1/24", "dev", "sc-br"]);
    let logs = tempfile::tempdir().unwrap();
    let mut procs = Procs::default();
    for name in ["web.example.com", "plain.example.org"] {
        let ip = root
            .sc_ok(&["get", "container", name, "ip"])
            .trim()
            .to_owned();
        cns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "host0"]);
        let site = logs.path().join(name);
        fs::create_dir_all(&site).unwrap();
        fs::write(site.join("index.html"), format!("{name}\n")).unwrap();
        let mut httpd = cns.exec(&[BUSYBOX, "httpd", "-f", "-p", &format!("{ip}:80"), "-h"]);
        httpd.arg(&site);
        procs.spawn(name, httpd, logs.path().join(format!("{name}.log")));
    }
    procs.spawn(
        "haproxy",
        haproxy(&ns, &root),
        logs.path().join("haproxy.log"),
    );
    let ca = root.join("var/lib/srvctl/pki/ca.crt");
    let ca = ca.to_string_lossy().into_owned();
    let up = common::real::wait_for(&mut procs, Duration::from_secs(15), || {
        let curl = [
            CURL,
            "-sS",
            "--max-time",
            "3",
            "--cacert",
            &ca,
            "--resolve",
            "web.example.com:443:127.0.0.1",
            "https://web.example.com/",
        ];
        output(&mut ns.exec(&curl)).stdout == b"web.example.com\n"
    });
    assert!(up, "haproxy did not serve:\n{}", procs.logs());

    let found = scan(
        &ns,
        logs.path(),
        "web.example.com",
        &["-p", "-s", "-f", "-h"],
    );
    let shown = format!("{found:#?}");
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(
            found.get(old).map(String::as_str),
            Some("not offered"),
            "{old}: {shown}"
        );
    }
    for new in ["TLS1_2", "TLS1_3"] {
        assert!(
            found.get(new).is_some_and(|f| f.starts_with("offered")),
            "{new}: {shown}"
        );
    }
    // Forward secrecy (testssl 3.0 calls it PFS), and no cipher without it: every class of
    // weak or static-key cipher is not offered.
    assert!(
        found.get("PFS").is_some_and(|f| f.starts_with("offered")),
        "forward secrecy: {shown}"
    );
    for weak in ["NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"] {
        let id = format!("cipherlist_{weak}");
        assert_eq!(
            found.get(&id).map(String::as_str),
            Some("not offered"),
            "{id}: {shown}"
        );
    }
    assert!(
        found.get("ALPN_HTTP2").is_some_and(|f| f.contains("h2")),
        "HTTP/2 by ALPN: {shown}"
    );
    assert!(
        found
            .get("HSTS_time")
            .is_some_and(|f| f.contains("31536000")),
        "HSTS on a redirected site: {shown}"
    );

    let plain = scan(&ns, logs.path(), "plain.example.org", &["-h"]);
    assert!(
        plain.get("HSTS").is_some_and(|f| f.contains("not offered")),
        "no HSTS on a site served over plain HTTP too: {plain:#?}"
    );
    drop(procs);
}
