//! The generator and `sc regenerate` on the data of the worked example (host h1.test on
//! hostnet 1; reseller alice, her user bob, his container web.example.com): what they create,
//! that a second run touches nothing, that a destroyed container's files go and nothing else
//! does, and what `sc` would ask systemd under `--root`.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Farm, TWO_HOSTS};
use serde_json::Value;

const CLUSTERS: &str = r#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1}}}"#;
const HAND_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";
const HAND_NSPAWN: &str = "# made by hand\n[Exec]\nBoot=yes\n";

fn worked_example(clusters: &str) -> Farm {
    let s = Farm::with_clusters(clusters);
    s.build_image();
    s.sc_ok(&["add-reseller", "alice"]);
    s.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
    s.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    s
}

/// Every file and link under root/run and root/etc.
fn watched(s: &Farm) -> [PathBuf; 2] {
    [s.root().join("run"), s.root().join("etc")]
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_generator_links_the_container_into_machines_target() {
    let s = worked_example(CLUSTERS);
    let run = s.generator();
    run.ok();
    assert_eq!(run.stderr, "");
    let link = s
        .generator_dir()
        .join("machines.target.wants/systemd-nspawn@web.example.com.service");
    let meta = std::fs::symlink_metadata(&link)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", link.display()));
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a link",
        link.display()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/usr/lib/systemd/system/systemd-nspawn@.service")
    );
    // The container starts in the first batch, after regenerate and the bridges.
    let batch = std::fs::read_to_string(s.generator_dir().join("srvctl-start-0.target"))
        .expect("the first start batch");
    for line in [
        "Before=systemd-nspawn@web.example.com.service",
        "After=srvctl-regenerate.service",
        "After=srvctl-bridges.service",
    ] {
        assert!(batch.lines().any(|l| l == line), "{line} missing:\n{batch}");
    }
    assert!(
        s.generator_dir()
            .join("machines.target.wants/srvctl-start-0.target")
            .is_symlink()
    );
    // Without limits set, the container needs no drop-in of its own.
    assert!(
        !s.generator_dir()
            .join("systemd-nspawn@web.example.com.service.d")
            .exists()
    );
    // The generator writes only into its first directory.
    assert!(!s.tmp().join("early").exists() && !s.tmp().join("late").exists());
    // It reads the datastore and nothing else under the root changes.
    assert!(!s.root().join("run").exists());
}

#[test]
fn regenerate_writes_the_container_and_its_bridge() {
    let s = worked_example(CLUSTERS);
    s.sc_ok(&["regenerate"]);
    let nspawn =
        std::fs::read_to_string(s.root().join("run/systemd/nspawn/web.example.com.nspawn"))
            .expect("the .nspawn file");
    assert!(nspawn.lines().any(|l| l == "Bridge=sc-br-17-1"), "{nspawn}");
    let network_dir = s.root().join("run/systemd/network");
    let with_address: Vec<PathBuf> = std::fs::read_dir(&network_dir)
        .expect("run/systemd/network")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "network"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .any(|l| l == "Address=10.17.1.1/24")
        })
        .collect();
    assert_eq!(with_address.len(), 1, "{with_address:?}");
}

#[test]
fn a_second_regenerate_changes_nothing() {
    let s = worked_example(TWO_HOSTS);
    // The CA host's own cluster certificate: its mesh and etcd member are rendered too.
    common::trust::make_ca_host(&s);
    std::fs::write(s.root().join("etc/hosts"), HAND_HOSTS).unwrap();
    let first = json(&s.sc_ok(&["regenerate", "--json"]));
    assert!(!strings(&first["written"]).is_empty());
    let before = common::tree::stamps(&watched(&s));
    assert!(before.len() > 10, "{before:#?}");

    let second = s.sc(&["regenerate", "--json"]);
    second.ok();
    let outcome = json(&second.stdout);
    assert_eq!(outcome["written"], Value::Array(vec![]), "{outcome:#}");
    assert_eq!(outcome["removed"], Value::Array(vec![]), "{outcome:#}");
    assert_eq!(outcome["reloads"], Value::Array(vec![]), "{outcome:#}");
    assert_eq!(
        outcome["unchanged"],
        first["written"].as_array().unwrap().len()
    );
    assert_eq!(second.stderr, "", "a no-op run asked systemd for something");
    assert_eq!(
        common::tree::stamps(&watched(&s)),
        before,
        "a no-op run touched files"
    );

    let third = s.sc_ok(&["regenerate"]);
    assert!(third.contains("nothing to change"), "{third:#?}");
    // srvctl-regenerate itself behaves the same.
    let fourth = s.regenerate(&[]);
    fourth.ok();
    assert!(fourth.stdout.contains("nothing to change"), "{fourth:#?}");
    assert_eq!(
        common::tree::stamps(&watched(&s)),
        before,
        "a no-op run touched files"
    );
}

#[test]
fn destroy_ve_then_regenerate_removes_only_its_files() {
    let s = worked_example(CLUSTERS);
    // A second user keeps a bridge of its own, which must survive.
    s.sc_ok(&["add-user", "carol", "--reseller", "alice"]);
    s.sc_ok(&["add-ve", "blog.example.org", "--user", "carol"]);
    std::fs::write(s.root().join("etc/hosts"), HAND_HOSTS).unwrap();
    s.sc_ok(&["regenerate"]);

    // Things srvctl did not generate: a hand-made .nspawn, and a line after srvctl's block.
    let other = s.root().join("run/systemd/nspawn/other.nspawn");
    std::fs::write(&other, HAND_NSPAWN).unwrap();
    let hosts = s.root().join("etc/hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    text.push_str("192.0.2.99\thandmade.example\n");
    std::fs::write(&hosts, &text).unwrap();
    let noop = json(&s.sc_ok(&["regenerate", "--json"]));
    assert_eq!(noop["written"], Value::Array(vec![]), "{noop:#}");
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), text);

    let before = common::tree::stamps(&watched(&s));
    s.sc_ok(&["destroy-ve", "web.example.com"]);
    let run = s.sc(&["regenerate", "--json"]);
    run.ok();
    let outcome = json(&run.stdout);
    let gone: BTreeSet<String> = [
        "/run/systemd/nspawn/web.example.com.nspawn",
        "/run/systemd/network/50-sc-br-17-1.netdev",
        "/run/systemd/network/50-sc-br-17-1.network",
        "/run/srvctl/containers/web.example.com/10-srvctl-host0.network",
    ]
    .map(String::from)
    .into();
    assert_eq!(strings(&outcome["removed"]), gone, "{outcome:#}");
    // Its certificate goes too; the host's default one stays.
    let certs = s.root().join("var/lib/srvctl/certs");
    assert!(
        !certs.join("web.example.com.pem").exists() && !certs.join("web.example.com.json").exists()
    );
    assert!(certs.join("_default.pem").is_file());
    // /etc/hosts, and the HTTPS front without the container: its maps and crt-list only
    // (haproxy.cfg has no part of its own, so a running haproxy takes it live); the mail
    // tables without its domain.
    let written: BTreeSet<String> = [
        "/etc/hosts",
        "/run/srvctl/haproxy/crt-list",
        "/run/srvctl/haproxy/hosts.map",
        "/run/srvctl/haproxy/http-redirect.map",
        "/run/srvctl/haproxy/hsts.map",
        "/run/srvctl/haproxy/https-redirect.map",
        "/run/srvctl/mail/opendkim/KeyTable",
        "/run/srvctl/mail/opendkim/SigningTable",
        "/run/srvctl/mail/postfix/relay_domains",
        "/run/srvctl/mail/postfix/transport",
    ]
    .map(String::from)
    .into();
    assert_eq!(strings(&outcome["written"]), written, "{outcome:#}");
    assert!(
        run.stderr
            .contains("would ask systemd: reload systemd-networkd"),
        "{run:#?}"
    );

    let after = common::tree::stamps(&watched(&s));
    let removed: BTreeSet<String> = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .map(|p| format!("/{}", p.strip_prefix(s.root()).unwrap().display()))
        .collect();
    assert_eq!(removed, gone);
    let added: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(added.is_empty(), "{added:?}");
    let changed: BTreeSet<PathBuf> = after
        .iter()
        .filter(|(p, stamp)| before[*p] != **stamp)
        .map(|(p, _)| p.strip_prefix(s.root()).unwrap().to_owned())
        .collect();
    let mut expected: BTreeSet<PathBuf> = written
        .iter()
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
        .collect();
    expected.insert(PathBuf::from("run/srvctl/regenerate.manifest"));
    assert_eq!(changed, expected);

    // What srvctl did not generate survives, and carol's container and bridge are kept.
    assert_eq!(std::fs::read_to_string(&other).unwrap(), HAND_NSPAWN);
    let hosts_now = std::fs::read_to_string(&hosts).unwrap();
    assert!(hosts_now.starts_with(HAND_HOSTS), "{hosts_now}");
    assert!(
        hosts_now.ends_with("# END srvctl\n192.0.2.99\thandmade.example\n"),
        "{hosts_now}"
    );
    assert!(!hosts_now.contains("web.example.com"), "{hosts_now}");
    assert!(
        hosts_now.contains("10.17.2.2\tblog.example.org\n"),
        "{hosts_now}"
    );
    for kept in [
        "run/systemd/nspawn/blog.example.org.nspawn",
        "run/systemd/network/50-sc-br-17-2.network",
        "run/userdb/bob.user",
    ] {
        assert!(s.root().join(kept).is_file(), "{kept} was removed");
    }
}

#[test]
fn sc_under_a_root_prints_the_systemd_requests_it_would_make() {
    let s = Farm::with_clusters(CLUSTERS);
    s.sc_ok(&["add-reseller", "alice"]);
    s.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
    let run = s.sc(&["add-ve", "web.example.com", "--user", "bob"]);
    run.ok();
    assert_eq!(run.stdout, "web.example.com 10.17.1.2\n");
    let requests = common::lines_with(&run.stderr, "would ask systemd:");
    assert_eq!(
        requests,
        [
            "would ask systemd: daemon-reload",
            "would ask systemd: start srvctl-regenerate.service",
            "would ask systemd: start --no-block srvctl-certificates.service"
        ],
        "{run:#?}"
    );
    // Once its image is built, sc clones the container's root filesystem and starts it.
    std::fs::create_dir_all(s.root().join("var/lib/machines/.srvctl-images/debian/etc")).unwrap();
    let run = s.sc(&["add-ve", "two.example.com", "--user", "bob"]);
    run.ok();
    assert_eq!(
        common::lines_with(&run.stderr, "would ask systemd:"),
        [
            "would ask systemd: daemon-reload",
            "would ask systemd: start srvctl-regenerate.service",
            "would ask systemd: start systemd-nspawn@two.example.com.service",
            "would ask systemd: start --no-block srvctl-certificates.service"
        ],
        "{run:#?}"
    );
    let run = s.sc(&["destroy-ve", "two.example.com"]);
    run.ok();
    assert_eq!(
        common::lines_with(&run.stderr, "would ask systemd:"),
        [
            "would ask systemd: stop systemd-nspawn@two.example.com.service",
            "would ask systemd: daemon-reload",
            "would ask systemd: start srvctl-regenerate.service"
        ],
        "{run:#?}"
    );
}
