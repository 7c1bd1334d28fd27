//! Authoritative DNS with the real BIND: on a host with `"dns": "master"`, named-checkconf
//! (which loads the zones with `-z`) accepts what srvctl renders, and a real named on loopback in a network
//! namespace, loading the rendered fragment and zones, answers `dig` for a site's A and AAAA
//! (apex, `www`, `mail`, preview name; the host's `host_ip6`), MX, SPF and DMARC records and
//! for an alias domain; after `sc add-ve` and a reload it answers for the new zone with a
//! larger serial. A zone named would not load
//! is never applied: the guard refuses it, and the running zones keep answering.
//!
//! A change of one site's records reloads that zone alone (`rndc reload ZONE`), and the other
//! zones keep their serials and are not loaded again; a new site re-reads the configuration
//! (`rndc reconfig`) and loads its zone, and still no other.
//!
//! The fragment names absolute paths (`/run/srvctl/dns/zones/…`): named runs in a private
//! mount namespace where the scratch root's `/run/srvctl` is bound at that path.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::Farm;
use common::real::{self, Netns, Procs, require_root, require_tool, unique, wait_for};
use srvctl::engine::registry::Verdict;

const DIG: &str = "/usr/bin/dig";

const CLUSTERS: &str = r#"{"dns":{"h1.test":{"host_ip":"192.0.2.11","host_ip6":"2001:db8::11",
    "hostnet":1,"dns":"master"}}}"#;
const SETTINGS: &str = r#"{"company_domain": "company.net"}"#;

/// `dig @127.0.0.1 +short TYPE NAME` inside `ns`: the answers, one a line.
fn dig(ns: &Netns, kind: &str, name: &str) -> String {
    real::dig(ns, "127.0.0.1", &["+short", kind, name])
}

/// The serial in the SOA `name` answers.
fn serial(ns: &Netns, name: &str) -> u64 {
    let soa = dig(ns, "SOA", name);
    soa.split(' ')
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SOA for {name}: {soa:?}"))
}

#[test]
fn named_answers_for_the_rendered_zones_and_a_refused_zone_is_never_applied() {
    if !require_root("dns_named") {
        return;
    }
    require_tool(real::NAMED);
    require_tool(DIG);
    let root = Farm::with_clusters(CLUSTERS);
    fs::write(root.join("etc/srvctl/settings.json"), SETTINGS).unwrap();
    root.sc_ok(&["add-ve", "web.example.com"]);
    root.sc_ok(&["web.example.com", "alias", "add", "example.net"]);
    let out = root.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["haproxy_error"], serde_json::Value::Null, "{out}");
    let notes = outcome["notes"].to_string();
    assert!(
        !notes.contains("named"),
        "the zones were not checked: {notes}"
    );
    let zones = root.join("run/srvctl/dns/zones");
    for zone in ["web.example.com", "example.net", "company.net"] {
        assert!(zones.join(format!("{zone}.zone")).exists(), "{zone}");
    }

    // named in a namespace of its own, serving the rendered fragment.
    let ns = Netns::new(&unique("dns"));
    let mut procs = Procs::default();
    real::spawn_named(
        &ns,
        root.root(),
        &["/run/srvctl"],
        "127.0.0.1",
        &root.tmp().join("named"),
        "named",
        &mut procs,
    );
    let up = wait_for(&mut procs, Duration::from_secs(15), || {
        dig(&ns, "A", "web.example.com") == "192.0.2.11"
    });
    assert!(up, "named did not answer:\n{}", procs.logs());

    assert_eq!(dig(&ns, "A", "www.web.example.com"), "192.0.2.11");
    assert_eq!(
        dig(&ns, "MX", "web.example.com"),
        "10 mail.web.example.com."
    );
    assert_eq!(dig(&ns, "A", "mail.web.example.com"), "192.0.2.11");
    assert_eq!(dig(&ns, "TXT", "web.example.com"), "\"v=spf1 mx -all\"");
    assert_eq!(
        dig(&ns, "TXT", "_dmarc.web.example.com"),
        "\"v=DMARC1; p=quarantine; rua=mailto:postmaster@web.example.com\""
    );
    assert_eq!(dig(&ns, "NS", "web.example.com"), "h1.test.");
    // The alias domain, and the preview name in the company's zone.
    assert_eq!(dig(&ns, "A", "example.net"), "192.0.2.11");
    assert_eq!(dig(&ns, "A", "www.example.net"), "192.0.2.11");
    assert_eq!(dig(&ns, "MX", "example.net"), "10 mail.example.net.");
    assert!(dig(&ns, "TXT", "_dmarc.example.net").contains("v=DMARC1"));
    assert_eq!(dig(&ns, "A", "web-example-com.company.net"), "192.0.2.11");
    // The host's IPv6 address (`host_ip6`), beside each of those A records.
    for name in [
        "web.example.com",
        "www.web.example.com",
        "mail.web.example.com",
        "example.net",
        "web-example-com.company.net",
    ] {
        assert_eq!(dig(&ns, "AAAA", name), "2001:db8::11", "{name}");
    }
    // Not ours: refused, no answer.
    assert_eq!(dig(&ns, "A", "other.example.org"), "");
    let first = serial(&ns, "web.example.com");

    // A new site: its zone after regenerate and a reload of named, with a larger serial.
    std::thread::sleep(Duration::from_millis(1100));
    root.sc_ok(&["add-ve", "new.example.org"]);
    // The site's own records, through `sc NAME dns add`, escaped as named reads them back.
    for record in [
        &["--name", "_acme-challenge", "TXT", "tok \"quoted\" \\ end"][..],
        &["MX", "20", "mx.example.net"],
        &["--name", "shop", "CNAME", "shops.example.net"],
        &["--name", "v6", "AAAA", "2001:db8::7"],
        &["CAA", "0", "issue", "letsencrypt.org"],
    ] {
        let args: Vec<&str> = ["web.example.com", "dns", "add"]
            .into_iter()
            .chain(record.iter().copied())
            .collect();
        root.sc_ok(&args);
    }
    root.sc_ok(&["regenerate"]);
    // named reloads its configuration and zones on SIGHUP (what `rndc reload` asks).
    real::signal_in(&ns, "named", nix::sys::signal::Signal::SIGHUP);
    let reloaded = wait_for(&mut procs, Duration::from_secs(10), || {
        dig(&ns, "A", "new.example.org") == "192.0.2.11"
    });
    assert!(
        reloaded,
        "named did not load the new zone:\n{}",
        procs.logs()
    );
    assert!(
        serial(&ns, "web.example.com") > first,
        "the serial did not grow"
    );
    assert_eq!(
        dig(&ns, "TXT", "_acme-challenge.web.example.com"),
        r#""tok \"quoted\" \\ end""#
    );
    let mx = dig(&ns, "MX", "web.example.com");
    let mut mxs: Vec<&str> = mx.lines().collect();
    mxs.sort();
    assert_eq!(
        mxs,
        ["10 mail.web.example.com.", "20 mx.example.net."],
        "{mx}"
    );
    assert_eq!(
        dig(&ns, "CNAME", "shop.web.example.com"),
        "shops.example.net."
    );
    assert_eq!(dig(&ns, "AAAA", "v6.web.example.com"), "2001:db8::7");
    assert_eq!(
        dig(&ns, "CAA", "web.example.com"),
        "0 issue \"letsencrypt.org\""
    );

    // A render named would not load (as a bug would make it: a zone without SOA, and the
    // other zones gone): through the engine's plan, guard (with the real checkers) and apply,
    // nothing of it replaces, or removes, the live files.
    let system = srvctl::system::Local::new(true);
    let paths = srvctl::system::paths::Paths::rooted(root.root());
    let mut tree = srvctl::engine::tree::Tree::default();
    tree.file(
        srvctl::dns::zones::CONFIG,
        fs::read_to_string(root.join(srvctl::dns::zones::CONFIG)).unwrap(),
    );
    let broken = format!("{}/web.example.com.zone", srvctl::dns::zones::ZONES);
    tree.file(
        &broken,
        "$TTL 300\nweb.example.com. IN NS ns.web.example.com.\n".into(),
    );
    let dns: &'static dyn srvctl::engine::registry::Module = &srvctl::dns::Dns;
    let previous = srvctl::engine::apply::read_manifest(
        &system,
        &root.join(srvctl::engine::regenerate::MANIFEST),
        &[dns],
    )
    .unwrap();
    assert!(previous.iter().any(|p| p.ends_with("example.net.zone")));
    let mut plan =
        srvctl::engine::changeset::plan_modules(vec![(dns, tree)], root.root(), &previous, &system)
            .unwrap();
    let said = srvctl::engine::registry::guard(&mut plan, &system, &paths);
    let [(_, Verdict::Refuse(msg))] = &said[..] else {
        panic!("a zone without SOA was accepted: {said:?}")
    };
    assert!(msg.contains("zone web.example.com"), "{msg}");
    assert!(plan.reloads().is_empty(), "named would be reloaded");
    srvctl::engine::apply::apply(
        &system,
        root.root(),
        &plan,
        Path::new("run/dns-test.manifest"),
    )
    .unwrap();
    assert!(!root.join(srvctl::dns::guard::STAGING).exists());
    assert!(
        zones.join("example.net.zone").exists(),
        "a live zone was removed"
    );
    // The live zone is the one named serves still.
    let live = fs::read_to_string(root.join(&broken)).unwrap();
    assert!(live.contains(" IN SOA "), "{live}");
    assert_eq!(dig(&ns, "A", "web.example.com"), "192.0.2.11");
    procs.kill_all();
}

/// How many times named logged that it loaded `zone`.
fn loads(procs: &Procs, zone: &str) -> usize {
    procs
        .logs()
        .matches(&format!("zone {zone}/IN: loaded serial"))
        .count()
}

/// Ask the named of `ns` what `sc regenerate --json` says it asked of it (`rndc …` if named
/// runs): the same rndc command, with the test named's key and address.
fn send_reloads(ns: &Netns, work: &Path, reloads: &[String]) {
    for reload in reloads {
        let args = reload
            .strip_prefix("rndc ")
            .and_then(|r| r.strip_suffix(" (if named.service runs)"))
            .unwrap_or_else(|| panic!("not an rndc request: {reload}"));
        let args: Vec<&str> = args.split(' ').collect();
        real::rndc(ns, "127.0.0.1", work, &args);
    }
}

/// `sc regenerate --json`: the DNS files written and the requests to named.
fn regenerate(root: &Farm) -> (Vec<String>, Vec<String>) {
    let out = root.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    let strings = |key: &str, of_dns: &dyn Fn(&str) -> bool| -> Vec<String> {
        outcome[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {out}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .filter(|v| of_dns(v))
            .collect()
    };
    (
        strings("written", &|p| p.starts_with("/run/srvctl/dns/")),
        strings("reloads", &|r| r.contains("named")),
    )
}

#[test]
fn a_changed_site_reloads_its_zone_alone_and_the_others_keep_their_serials() {
    if !require_root("dns_named") {
        return;
    }
    require_tool(real::NAMED);
    require_tool(real::RNDC);
    require_tool(DIG);
    let root = Farm::with_clusters(CLUSTERS);
    root.sc_ok(&["add-ve", "web.example.com"]);
    root.sc_ok(&["add-ve", "other.example.org"]);
    root.sc_ok(&["regenerate"]);
    let ns = Netns::new(&unique("dnsrl"));
    let mut procs = Procs::default();
    let work = root.tmp().join("named");
    real::spawn_named(
        &ns,
        root.root(),
        &["/run/srvctl"],
        "127.0.0.1",
        &work,
        "named",
        &mut procs,
    );
    let up = wait_for(&mut procs, Duration::from_secs(15), || {
        dig(&ns, "A", "web.example.com") == "192.0.2.11"
            && dig(&ns, "A", "other.example.org") == "192.0.2.11"
    });
    assert!(up, "named did not answer:\n{}", procs.logs());
    let (web, other) = (
        serial(&ns, "web.example.com"),
        serial(&ns, "other.example.org"),
    );
    assert_eq!(
        (
            loads(&procs, "web.example.com"),
            loads(&procs, "other.example.org")
        ),
        (1, 1)
    );

    // One record of one site, within the same second as the last write: that zone alone is
    // written and reloaded, with a larger serial.
    root.sc_ok(&[
        "web.example.com",
        "dns",
        "add",
        "--name",
        "api",
        "A",
        "192.0.2.7",
    ]);
    let (written, reloads) = regenerate(&root);
    assert_eq!(written, ["/run/srvctl/dns/zones/web.example.com.zone"]);
    assert_eq!(
        reloads,
        ["rndc reload web.example.com (if named.service runs)"]
    );
    send_reloads(&ns, &work, &reloads);
    let reloaded = wait_for(&mut procs, Duration::from_secs(10), || {
        dig(&ns, "A", "api.web.example.com") == "192.0.2.7"
    });
    assert!(reloaded, "named did not reload the zone:\n{}", procs.logs());
    assert!(
        serial(&ns, "web.example.com") > web,
        "the serial did not grow"
    );
    assert_eq!(serial(&ns, "other.example.org"), other);
    assert_eq!(
        (
            loads(&procs, "web.example.com"),
            loads(&procs, "other.example.org")
        ),
        (2, 1),
        "{}",
        procs.logs()
    );

    // A new site: the fragment changed, named re-reads it and loads the new zone, no other.
    root.sc_ok(&["add-ve", "new.example.net"]);
    let (written, reloads) = regenerate(&root);
    assert_eq!(
        written,
        [
            "/run/srvctl/dns/named.conf",
            "/run/srvctl/dns/zones/new.example.net.zone"
        ]
    );
    assert_eq!(
        reloads,
        [
            "rndc reconfig (if named.service runs)",
            "rndc reload new.example.net (if named.service runs)"
        ]
    );
    send_reloads(&ns, &work, &reloads);
    let added = wait_for(&mut procs, Duration::from_secs(10), || {
        dig(&ns, "A", "new.example.net") == "192.0.2.11"
    });
    assert!(added, "named did not load the new zone:\n{}", procs.logs());
    assert_eq!(serial(&ns, "other.example.org"), other);
    assert_eq!(
        (
            loads(&procs, "web.example.com"),
            loads(&procs, "other.example.org")
        ),
        (2, 1),
        "{}",
        procs.logs()
    );

    // Nothing changed: nothing written, nothing asked.
    assert_eq!(regenerate(&root), (Vec::new(), Vec::new()));
    procs.kill_all();
}
