//! Hand-edited datastore records with hostile keys and fields: the generator and regenerate
//! skip them (saying so on stderr), still render the valid container, create no file outside
//! their directories and inject no line into any generated file; `sc` keeps working and keeps
//! the bad records byte for byte.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Farm, TWO_HOSTS};
use serde_json::{Value, json};

/// Every hostile value holds this marker, which no valid output ever contains.
const MARKER: &str = "evil";

fn container(user: &str, ip: &str) -> Value {
    json!({
        "user": user,
        "host": "h1.test",
        "ip": ip,
        "created": "2026-01-01T00:00:00Z",
        "created_by": "root"
    })
}

/// The bad container records, by key.
fn bad_containers() -> Vec<(String, Value)> {
    let mut with_memory = container("bob", "10.17.1.10");
    with_memory["memory_max"] = json!("512M\n[Service]\nExecStartPre=/bin/evil");
    let mut with_image = container("bob", "10.17.1.11");
    with_image["image"] = json!("evil\nBind=/");
    vec![
        (
            "evil\nname.example.com".into(),
            container("bob", "10.17.1.3"),
        ),
        (
            "evil\"quote.example.com".into(),
            container("bob", "10.17.1.4"),
        ),
        ("../../etc/evil".into(), container("bob", "10.17.1.5")),
        (
            "evil-ip.example.com".into(),
            container("bob", "10.17.1.9\nBind=/"),
        ),
        (
            "evil-user.example.com".into(),
            container("bob\n[Service]", "10.17.1.6"),
        ),
        (
            "evil-both.example.com".into(),
            container("bob\n[Service]\nevil", "10.17.1.7\nBind=/"),
        ),
        ("evil-memory.example.com".into(), with_memory),
        ("evil-image.example.com".into(), with_image),
    ]
}

/// The bad user records, by key.
fn bad_users() -> Vec<(String, Value)> {
    vec![(
        "evil\nuser".into(),
        json!({
            "reseller_id": 1, "index": 7, "uid": 20263, "gid": 20263,
            "created": "2026-01-01T00:00:00Z", "created_by": "root"
        }),
    )]
}

/// The worked example, then the hostile records added to the datastore by hand.
fn hostile_farm() -> Farm {
    let s = Farm::with_clusters(TWO_HOSTS);
    s.sc_ok(&["add-reseller", "alice"]);
    s.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
    s.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    // Its root filesystem (an empty one: only its presence matters to the generator).
    std::fs::create_dir_all(s.join("var/lib/machines/web.example.com")).unwrap();
    let mut doc = s.datastore_json();
    for (key, record) in bad_containers() {
        doc["containers"][key] = record;
    }
    for (key, record) in bad_users() {
        doc["users"][key] = record;
    }
    s.write_datastore(&doc);
    s
}

fn bad_keys() -> Vec<String> {
    bad_containers()
        .into_iter()
        .chain(bad_users())
        .map(|(k, _)| k)
        .collect()
}

/// Check that each bad record has exactly one line in `lines` naming its key (as Rust's
/// `{:?}` shows it, so the line holds no raw newline).
#[track_caller]
fn one_line_per_record(lines: &[&str], stderr: &str) {
    assert_eq!(lines.len(), bad_keys().len(), "{stderr}");
    for key in bad_keys() {
        let shown = format!("{key:?}");
        let naming = lines.iter().filter(|l| l.contains(&shown)).count();
        assert_eq!(naming, 1, "{shown} is not named once in:\n{stderr}");
    }
}

/// Where files may be, relative to the temporary directory.
const ALLOWED: &[&str] = &[
    "generator/",
    "root/etc/srvctl/clusters.json",
    "root/etc/hosts",
    "root/run/srvctl/haproxy/",
    "root/var/lib/srvctl/",
    "root/run/systemd/nspawn/",
    "root/run/systemd/network/",
    "root/run/srvctl/containers/",
    "root/run/srvctl/openvpn/",
    "root/run/srvctl/nat/",
    "root/run/srvctl/mail/",
    "root/run/srvctl/regenerate.manifest",
    "root/run/userdb/",
    "root/run/sysctl.d/60-srvctl-limits.conf",
];

fn check_the_tree(s: &Farm) {
    let all = common::tree::walk(s.tmp());
    for (rel, meta) in &all {
        let text = rel.to_string_lossy();
        assert!(
            !text.contains(['\n', '\r', '"']),
            "a name holds a newline or a quote: {text:?}"
        );
        assert!(
            !text.contains(MARKER),
            "a hostile name reached the disk: {text:?}"
        );
        if meta.is_dir() {
            continue;
        }
        assert!(
            ALLOWED.iter().any(|a| text.starts_with(a)),
            "{text:?} lies outside the expected directories"
        );
    }
    assert!(!s.root().join("etc/evil.nspawn").exists());
    assert!(!s.root().join("run/etc").exists());

    let generated: BTreeMap<PathBuf, Vec<u8>> = all
        .iter()
        .filter(|(rel, meta)| {
            meta.is_file()
                && (rel.starts_with("generator")
                    || rel.starts_with("root/run")
                    || *rel == Path::new("root/etc/hosts"))
        })
        .map(|(rel, _)| (rel.clone(), std::fs::read(s.tmp().join(rel)).unwrap()))
        .collect();
    assert!(generated.len() > 10, "{:?}", generated.keys());
    for (rel, bytes) in &generated {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(MARKER),
            "{} mentions a hostile record:\n{text}",
            rel.display()
        );
        let is_drop_in =
            rel.extension().is_some_and(|e| e == "conf") && rel.starts_with("generator");
        let sections = text.lines().filter(|l| l.starts_with("[Service]")).count();
        assert_eq!(
            sections,
            usize::from(is_drop_in),
            "{} has an injected [Service] section:\n{text}",
            rel.display()
        );
        for line in text.lines() {
            assert!(
                !line.starts_with("Bind="),
                "{} has an injected line {line:?}",
                rel.display()
            );
        }
    }
}

#[test]
fn generator_and_regenerate_skip_hostile_records() {
    let s = hostile_farm();

    let gen_run = s.generator();
    gen_run.ok();
    let skipping = common::lines_with(&gen_run.stderr, "srvctl-generator: skipping ");
    one_line_per_record(&skipping, &gen_run.stderr);
    assert_eq!(
        gen_run.stderr.lines().count(),
        skipping.len(),
        "{}",
        gen_run.stderr
    );
    let link = s
        .generator_dir()
        .join("machines.target.wants/systemd-nspawn@web.example.com.service");
    assert!(
        std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "the valid container is not started at boot"
    );
    let containers: Vec<_> = std::fs::read_dir(s.generator_dir().join("machines.target.wants"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("systemd-nspawn@"))
        .collect();
    assert_eq!(containers, ["systemd-nspawn@web.example.com.service"]);

    let regen = s.sc(&["regenerate", "--json"]);
    regen.ok();
    let skipped = common::lines_with(&regen.stderr, "skipped invalid record");
    one_line_per_record(&skipped, &regen.stderr);
    let outcome: Value = serde_json::from_str(&regen.stdout).unwrap();
    assert_eq!(
        outcome["skipped"].as_array().map(Vec::len),
        Some(bad_keys().len()),
        "{outcome:#}"
    );
    let nspawn = s.root().join("run/systemd/nspawn");
    let names: Vec<_> = std::fs::read_dir(&nspawn)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["web.example.com.nspawn"]);
    let hosts = std::fs::read_to_string(s.root().join("etc/hosts")).unwrap();
    assert!(hosts.contains("10.17.1.2\tweb.example.com\n"), "{hosts}");

    // srvctl-regenerate itself says the same, and has nothing left to change.
    let again = s.regenerate(&[]);
    again.ok();
    one_line_per_record(
        &common::lines_with(&again.stderr, "skipped invalid record"),
        &again.stderr,
    );
    assert!(again.stdout.contains("nothing to change"), "{again:#?}");

    check_the_tree(&s);
}

#[test]
fn sc_keeps_working_and_keeps_the_bad_records() {
    let s = hostile_farm();
    let record_text = |doc: &Value| -> Vec<String> {
        let containers = bad_containers().into_iter().map(|(k, _)| ("containers", k));
        let users = bad_users().into_iter().map(|(k, _)| ("users", k));
        containers
            .chain(users)
            .map(|(section, key)| {
                let record = doc[section]
                    .get(&key)
                    .unwrap_or_else(|| panic!("{section} {key:?} was dropped"));
                serde_json::to_string_pretty(record).unwrap()
            })
            .collect()
    };
    let before = record_text(&s.datastore_json());

    let status = s.sc_ok(&["status"]);
    assert!(status.contains("web.example.com"), "{status:#?}");
    assert!(!status.contains(MARKER), "{status:#?}");

    s.sc_ok(&["add-user", "carol", "--reseller", "alice"]);
    let added = s.sc_ok(&["add-ve", "two.example.com", "--user", "bob"]);
    s.sc_ok(&["put", "container", "web.example.com", "memory_max", "1G"]);
    s.sc_ok(&["destroy-ve", "two.example.com"]);

    let doc = s.datastore_json();
    assert_eq!(record_text(&doc), before, "a set-aside record changed");
    assert_eq!(doc["containers"]["web.example.com"]["memory_max"], "1G");
    // A set-aside record keeps its address: the new container got a free one.
    let ip = added.split_whitespace().nth(1).expect("NAME IP");
    for (_, record) in bad_containers() {
        assert_ne!(record["ip"].as_str(), Some(ip), "{ip} was handed out twice");
    }
    // The bytes of every bad record are still in the document as srvctl writes it.
    let text = std::fs::read_to_string(s.datastore_path()).unwrap();
    for key in bad_keys() {
        let quoted = serde_json::to_string(&key).unwrap();
        assert!(text.contains(&quoted), "{quoted} is gone");
    }
    // Refusals: the bad names cannot be addressed through sc.
    let refused = s.sc(&["destroy-ve", "../../etc/evil"]);
    assert_ne!(refused.code, Some(0), "{refused:#?}");
}
