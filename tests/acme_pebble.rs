//! `sc certificates renew` against a real ACME CA: Debian's `pebble`, on loopback.
//!
//! `pebble-challtestsrv` is the DNS: srvctl asks it (`acme_resolvers`) whether a name points at
//! this host (host_ip 127.0.0.1), and pebble (`-dnsserver`) looks the name up there and fetches
//! the token from that address on its `httpPort`, which is pointed at srvctl's challenge
//! responder. It answers only the records the test adds. pebble's own TLS certificate (for the
//! directory) is made here with rcgen; srvctl trusts it through `acme_ca_file`.
//!
//! Proves: with srvctl's hosts block mapping every site to its container address, a name
//! whose DNS record points at this host gets a certificate over HTTP-01, installed as chain +
//! key (0600, directory 0700) with its metadata, chaining to pebble's root; a name whose record
//! points elsewhere, or that has none, is never ordered (pebble receives one order in all); a
//! second run orders nothing and shows the renewal 30 days before expiry (this pebble has no
//! ARI); with the CA gone, the error is recorded with a back-off and no
//! order is attempted before it ends.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::Farm;
use common::real::pebble::{CHALLTESTSRV, PEBBLE, Pebble, free_port};
use common::real::{output, run_ok};

const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"127.0.0.1","hostnet":1}}}"#;
const SITE: &str = "site.example.com";
const SITE2: &str = "broken.example.com";
const ELSEWHERE: &str = "elsewhere.example.com";

/// The orders pebble received, as its log counts them.
fn orders(log: &str) -> usize {
    log.matches("POST /order-plz").count()
}

fn pem_blocks(text: &str, kind: &str) -> Vec<String> {
    let begin = format!("-----BEGIN {kind}-----");
    let end = format!("-----END {kind}-----");
    text.split_inclusive(&end)
        .filter_map(|chunk| chunk.find(&begin).map(|i| format!("{}\n", &chunk[i..])))
        .collect()
}

fn renew(root: &Farm, extra: &[&str]) -> (bool, String) {
    let out = output(
        root.program(common::SC)
            .arg("--root")
            .arg(root.root())
            .args(["certificates", "renew"])
            .args(extra),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state(root: &Farm) -> serde_json::Value {
    serde_json::from_slice(&fs::read(root.join("var/lib/srvctl/acme/state.json")).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn pebble_issues_over_http01_then_nothing_is_ordered_and_failures_back_off() {
    common::real::require_tool(PEBBLE);
    common::real::require_tool(CHALLTESTSRV);
    let responder = free_port();
    let mut pebble = Pebble::start(responder, None);

    let root = Farm::with_clusters(CLUSTERS);
    root.sc_ok(&["add-ve", SITE]);
    root.sc_ok(&["add-ve", ELSEWHERE]);
    root.sc_ok(&["add-ve", SITE2]);
    let settings = serde_json::json!({
        "acme_directory": pebble.directory,
        "acme_ca_file": pebble.tls_ca(),
        "acme_listen": format!("127.0.0.1:{responder}"),
        "acme_resolvers": [pebble.dns],
    });
    fs::write(root.join("etc/srvctl/settings.json"), settings.to_string()).unwrap();
    pebble.add_a(SITE, "127.0.0.1");
    pebble.add_a(&format!("www.{SITE}"), "127.0.0.1");
    pebble.add_a(ELSEWHERE, "192.0.2.99");

    // srvctl-regenerate gives every site an internal certificate at once, and its hosts block
    // maps every site to its container.
    root.sc_ok(&["regenerate"]);
    let hosts = fs::read_to_string(root.join("etc/hosts")).unwrap();
    for name in [SITE, ELSEWHERE, SITE2] {
        assert!(
            hosts
                .lines()
                .any(|l| l.starts_with("10.") && l.split_whitespace().any(|w| w == name)),
            "srvctl's hosts block maps {name} to its container:\n{hosts}"
        );
    }
    let listed = |root: &Farm| -> serde_json::Value {
        serde_json::from_str(&root.sc_ok(&["certificates", "--json"])).unwrap()
    };
    let row = |rows: &serde_json::Value, name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {rows}"))
    };
    let first = listed(&root);
    assert_eq!(row(&first, SITE)["source"], "internal", "{first}");
    assert_eq!(
        row(&first, SITE)["next_action"],
        "order now (internal certificate)",
        "{first}"
    );
    assert_eq!(
        row(&first, ELSEWHERE)["next_action"],
        format!("waiting for DNS: {ELSEWHERE} resolves to 192.0.2.99, not to this host"),
        "{first}"
    );
    assert_eq!(
        row(&first, SITE2)["next_action"],
        format!("waiting for DNS: {SITE2} does not resolve yet"),
        "{first}"
    );

    // 1. An order over HTTP-01 for the one name that points here; none for the others.
    let (ok, log) = renew(&root, &[]);
    assert!(ok, "renew failed:\n{log}\n{}", pebble.procs.logs());
    assert!(log.contains(&format!("{SITE}: ordering")), "{log}");
    assert!(log.contains(&format!("{SITE}: installed")), "{log}");
    for name in [ELSEWHERE, SITE2] {
        assert!(!log.contains(&format!("{name}: ordering")), "{log}");
        assert!(log.contains(&format!("{name}: waiting for DNS")), "{log}");
    }
    assert_eq!(orders(&pebble.log()), 1, "{}", pebble.log());
    assert!(
        log.contains("would ask systemd: start srvctl-regenerate.service"),
        "a new certificate must trigger a regenerate:\n{log}"
    );
    let certs = root.join("var/lib/srvctl/certs");
    let pem_path = certs.join(format!("{SITE}.pem"));
    assert_eq!(mode(&certs), 0o700);
    assert_eq!(mode(&pem_path), 0o600);
    assert_eq!(mode(&root.join("var/lib/srvctl/acme")), 0o700);
    assert_eq!(mode(&root.join("var/lib/srvctl/acme/account.json")), 0o600);
    let pem = fs::read_to_string(&pem_path).unwrap();
    let chain = pem_blocks(&pem, "CERTIFICATE");
    assert!(chain.len() >= 2, "leaf and intermediate expected:\n{pem}");
    assert_eq!(pem_blocks(&pem, "PRIVATE KEY").len(), 1, "{pem}");
    assert!(
        pem.find("PRIVATE KEY").unwrap() > pem.rfind("END CERTIFICATE").unwrap(),
        "the key follows the chain"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(certs.join(format!("{SITE}.json"))).unwrap()).unwrap();
    assert_eq!(meta["source"], "acme");
    // The site's own name first, then the names haproxy serves for it (www. at least).
    assert_eq!(meta["names"][0], SITE);
    assert!(
        meta["names"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(format!("www.{SITE}"))),
        "{meta}"
    );
    let not_after: jiff::Timestamp = meta["not_after"].as_str().unwrap().parse().unwrap();
    assert!(not_after > jiff::Timestamp::now());

    // The chain verifies up to pebble's root, for the site's name.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    fs::write(w.join("root.pem"), pebble.root()).unwrap();
    fs::write(w.join("leaf.pem"), &chain[0]).unwrap();
    fs::write(w.join("intermediates.pem"), chain[1..].concat()).unwrap();
    run_ok(
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(w.join("root.pem"))
            .arg("-untrusted")
            .arg(w.join("intermediates.pem"))
            .args(["-verify_hostname", SITE])
            .arg(w.join("leaf.pem")),
    );

    // The next regenerate keeps the ACME certificate (and serves it).
    root.sc_ok(&["regenerate"]);
    assert_eq!(fs::read_to_string(&pem_path).unwrap(), pem);
    assert_eq!(row(&listed(&root), SITE)["source"], "acme");

    // 2. A valid certificate: nothing is ordered, nothing changes.
    let (ok, log) = renew(&root, &[]);
    assert!(ok, "{log}");
    assert!(!log.contains("ordering"), "{log}");
    assert_eq!(orders(&pebble.log()), 1, "{}", pebble.log());
    // Debian's pebble offers no renewal information (ARI): 30 days before expiry.
    let due =
        (not_after - jiff::SignedDuration::from_hours(30 * 24)).strftime("%Y-%m-%dT%H:%M:%SZ");
    assert!(log.contains(&format!("{SITE}: renew after {due}")), "{log}");
    assert!(!log.contains("srvctl-regenerate"), "{log}");
    assert_eq!(fs::read_to_string(&pem_path).unwrap(), pem);

    // 3. The CA is gone (its DNS is not): the failure is recorded and backs off.
    pebble.stop_ca();
    root.sc_ok(&["destroy-ve", ELSEWHERE]);
    pebble.add_a(SITE2, "127.0.0.1");
    let before = jiff::Timestamp::now();
    let (ok, log) = renew(&root, &[]);
    assert!(
        !ok,
        "a failed order must fail the run (and the timer's unit):\n{log}"
    );
    assert!(log.contains(&format!("{SITE2}: ordering")), "{log}");
    assert!(log.contains(&format!("{SITE2}: failed")), "{log}");
    let s = state(&root);
    let entry = &s["domains"][SITE2];
    assert_eq!(entry["failures"], 1, "{s}");
    assert!(
        entry["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{s}"
    );
    let next: jiff::Timestamp = entry["next_attempt"].as_str().unwrap().parse().unwrap();
    assert!(
        next >= before + jiff::SignedDuration::from_mins(59),
        "next attempt {next} should be about an hour away"
    );
    assert!(!s["domains"].as_object().unwrap().contains_key(SITE), "{s}");

    // 4. Before the back-off ends, no order is attempted.
    let (ok, log) = renew(&root, &[]);
    assert!(ok, "{log}");
    assert!(!log.contains("ordering"), "{log}");
    assert!(log.contains(&format!("{SITE2}: retry after")), "{log}");
    assert_eq!(state(&root), s, "nothing was attempted");

    // The listing shows both.
    let rows = listed(&root);
    let listing = rows.to_string();
    assert_eq!(row(&rows, SITE)["source"], "acme");
    assert!(
        row(&rows, SITE)["next_action"]
            .as_str()
            .unwrap()
            .starts_with("renew after")
    );
    assert!(
        row(&rows, SITE2)["last_error"].as_str().is_some(),
        "{listing}"
    );
    assert!(
        row(&rows, SITE2)["next_action"]
            .as_str()
            .unwrap()
            .starts_with("retry after")
    );
    let text = root.sc_ok(&["certificates"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains(SITE2) && text.contains("retry after"),
        "{text}"
    );

    // A destroyed container's history is forgotten by the next full run.
    root.sc_ok(&["destroy-ve", SITE2]);
    let (ok, log) = renew(&root, &[]);
    assert!(ok, "{log}");
    assert_eq!(state(&root)["domains"], serde_json::json!({}));
}
