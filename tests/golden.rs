//! Golden trees: a datastore built with real `sc` commands, expanded by the real
//! `srvctl-generator` and `sc regenerate`, compared file by file with the tree kept under
//! `tests/golden/<case>/expected/`.
//!
//! The expected tree has two halves: `generator/` (the generator's output directory) and
//! `root/` (`run/` and `etc/hosts` of the scratch root). Nothing random or time-dependent is
//! compared: the datastore and audit log (timestamps) and the PKI (random keys) under
//! `var/lib/srvctl` are left out. A symbolic link is kept as a plain file `<name>.symlink`
//! holding its target and a newline, so git stores it as text.
//!
//! Re-bless after an intended change with `SRVCTL_BLESS=1 cargo test --test golden`: the
//! expected tree is replaced by the actual one, then the test passes. Review the diff.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::{Farm, ONE_HOST, TWO_HOSTS, tree::Node};

const LINK_SUFFIX: &str = ".symlink";

/// An OpenDKIM KeyTable with each selector (`s<YYYYMMDD>`) written `sDATE`.
fn undated_selectors(table: &str) -> String {
    table
        .lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(':').map(str::to_owned).collect();
            if fields.len() == 3 {
                fields[1] = "sDATE".to_owned();
            }
            format!("{}\n", fields.join(":"))
        })
        .collect()
}

/// The generated tree of a case, by path under `expected/`.
fn actual_tree(s: &Farm) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    for (rel, node) in common::tree::tree(&s.generator_dir()) {
        out.insert(Path::new("generator").join(rel), node);
    }
    for (rel, node) in common::tree::tree(&s.root().join("run")) {
        out.insert(Path::new("root/run").join(rel), node);
    }
    for file in ["etc/hosts"] {
        if let Ok(bytes) = std::fs::read(s.root().join(file)) {
            out.insert(Path::new("root").join(file), Node::File(bytes));
        }
    }
    // The DKIM selectors name the day the keys were made.
    if let Some(Node::File(bytes)) =
        out.get_mut(Path::new("root/run/srvctl/mail/opendkim/KeyTable"))
    {
        *bytes = undated_selectors(&String::from_utf8_lossy(bytes)).into_bytes();
    }
    // The crt-list names each certificate's issue time in a comment (so that a new
    // certificate changes it and haproxy reloads): time-dependent, so left out.
    if let Some(Node::File(bytes)) = out.get_mut(Path::new("root/run/srvctl/haproxy/crt-list")) {
        let text = String::from_utf8_lossy(bytes);
        let kept: String = text
            .lines()
            .map(|l| match l.split_once(", issued ") {
                Some((head, _)) if l.starts_with("# ") => format!("{head}, issued (time)\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        *bytes = kept.into_bytes();
    }
    for (path, node) in &out {
        assert!(
            !(matches!(node, Node::File(_)) && path.to_string_lossy().ends_with(LINK_SUFFIX)),
            "a generated file is named like a link placeholder: {path:?}"
        );
    }
    out
}

/// The expected tree as stored: `*.symlink` files are links.
fn read_expected(dir: &Path) -> BTreeMap<PathBuf, Node> {
    common::tree::tree(dir)
        .into_iter()
        .map(|(rel, node)| {
            let Node::File(bytes) = node else {
                panic!("{}: the expected tree holds a real link", rel.display())
            };
            let name = rel.to_string_lossy();
            match name.strip_suffix(LINK_SUFFIX) {
                Some(link) => {
                    let target = String::from_utf8(bytes).expect("link target is UTF-8");
                    (
                        PathBuf::from(link),
                        Node::Link(PathBuf::from(target.strip_suffix('\n').unwrap_or(&target))),
                    )
                }
                None => (rel, Node::File(bytes)),
            }
        })
        .collect()
}

fn write_expected(dir: &Path, tree: &BTreeMap<PathBuf, Node>) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the old expected tree");
    }
    for (rel, node) in tree {
        let (path, bytes) = match node {
            Node::File(b) => (dir.join(rel), b.clone()),
            Node::Link(t) => {
                let mut name = rel.as_os_str().to_owned();
                name.push(LINK_SUFFIX);
                (
                    dir.join(name),
                    format!("{}\n", t.to_str().expect("UTF-8 link target")).into_bytes(),
                )
            }
        };
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write expected file");
    }
}

fn describe(node: &Node) -> String {
    match node {
        Node::File(b) => String::from_utf8_lossy(b).into_owned(),
        Node::Link(t) => format!("symbolic link to {}\n", t.display()),
    }
}

/// A line diff of `old` and `new` in the unified format, with three lines of context.
fn unified_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        let at = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        return format!(
            "(too large to diff) first difference at line {}:\n-{}\n+{}\n",
            at + 1,
            a.get(at).unwrap_or(&"<end of file>"),
            b.get(at).unwrap_or(&"<end of file>")
        );
    }
    // Longest common subsequence, from the end.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line index, new line index, text)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        let _ = writeln!(
            out,
            "@@ -{},{old_len} +{},{new_len} @@",
            hunk[0].1 + 1,
            hunk[0].2 + 1
        );
        for (tag, _, _, text) in hunk {
            let _ = writeln!(out, "{tag}{text}");
        }
    }
    if out.is_empty() && old != new {
        out.push_str("(the files differ only in line endings or a final newline)\n");
    }
    out
}

/// Compare `actual` with the expected tree of `case`, or replace it when blessing.
fn check(case: &str, actual: &BTreeMap<PathBuf, Node>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join("expected");
    if std::env::var_os("SRVCTL_BLESS").is_some_and(|v| v == "1") {
        write_expected(&dir, actual);
        eprintln!("blessed {}", dir.display());
    }
    if let Some(why) = differences(&read_expected(&dir), actual) {
        panic!(
            "golden case {case:?} differs from {} (re-bless with SRVCTL_BLESS=1 if intended)\n{why}",
            dir.display()
        );
    }
}

/// What differs between two trees: missing and extra paths, and a diff of the first file
/// that differs. `None` when they are equal.
fn differences(
    expected: &BTreeMap<PathBuf, Node>,
    actual: &BTreeMap<PathBuf, Node>,
) -> Option<String> {
    if expected == actual {
        return None;
    }
    let exp_keys: BTreeSet<&PathBuf> = expected.keys().collect();
    let act_keys: BTreeSet<&PathBuf> = actual.keys().collect();
    let mut msg = String::new();
    let missing: Vec<_> = exp_keys.difference(&act_keys).collect();
    let extra: Vec<_> = act_keys.difference(&exp_keys).collect();
    for (what, list) in [
        ("missing (expected, not generated)", &missing),
        ("extra (generated, not expected)", &extra),
    ] {
        if !list.is_empty() {
            let _ = writeln!(msg, "{what}:");
            for p in list {
                let _ = writeln!(msg, "  {}", p.display());
            }
        }
    }
    let differing: Vec<&PathBuf> = exp_keys
        .intersection(&act_keys)
        .filter(|p| expected[**p] != actual[**p])
        .copied()
        .collect();
    if let Some(first) = differing.first() {
        let _ = writeln!(
            msg,
            "{} file(s) differ; first: {}\n--- expected/{}\n+++ actual/{}",
            differing.len(),
            first.display(),
            first.display(),
            first.display()
        );
        msg.push_str(&unified_diff(
            &describe(&expected[*first]),
            &describe(&actual[*first]),
        ));
        for other in &differing[1..] {
            let _ = writeln!(msg, "also differs: {}", other.display());
        }
    }
    Some(msg)
}

/// Expand the datastore: the generator, then `sc regenerate`. Returns regenerate's JSON.
fn expand(s: &Farm) -> serde_json::Value {
    let generator = s.generator();
    generator.ok();
    assert_eq!(generator.stderr, "", "the generator warned");
    let run = s.sc_ok(&["regenerate", "--json"]);
    serde_json::from_str(&run).expect("regenerate --json prints JSON")
}

/// Two hosts; resellers alice and zed; users of both and of the operator; containers of
/// several owners on h1.test, one on h2.test; resource settings and a disabled container.
fn cluster_case() -> Farm {
    let s = Farm::with_clusters(TWO_HOSTS);
    s.build_image();
    for args in [
        &["add-reseller", "alice"][..],
        &["add-reseller", "zed"],
        &["add-user", "bob", "--reseller", "alice"],
        &["add-user", "carol", "--reseller", "alice"],
        &["add-user", "dave", "--reseller", "zed"],
        &["add-user", "olga"],
        &["add-user", "oscar", "--reseller", "root"],
        &["put", "user", "bob", "display_name", "Bob Builder"],
        &["put", "user", "carol", "email", "carol@example.org"],
        &["add-ve", "web.example.com", "--user", "bob"],
        &["add-ve", "shop.example.com", "--user", "bob"],
        &["add-ve", "blog.example.org", "--user", "carol"],
        &["add-ve", "app.zed.test", "--user", "dave"],
        &["add-ve", "tools.ve", "--user", "olga"],
        &["add-ve", "ops.ve"],
        &["add-ve", "own.alice.ve", "--user", "alice"],
        &["add-ve", "mail.example.com", "--user", "bob"],
        &["add-ve", "db.zed.test", "--user", "dave"],
        &["add-ve", "lab.ve", "--user", "oscar"],
        &["put", "container", "web.example.com", "memory_max", "512M"],
        &["put", "container", "shop.example.com", "cpu_weight", "200"],
        &["put", "container", "app.zed.test", "tasks_max", "512"],
        &["put", "container", "blog.example.org", "disabled", "true"],
    ] {
        s.sc_ok(args);
    }
    // add-ve places a container on the host it runs on: this one belongs to h2.test.
    s.sc_as(
        "h2.test",
        &["add-ve", "remote.example.net", "--user", "dave"],
    );
    s
}

#[test]
fn cluster() {
    let s = cluster_case();
    // h1.test is the CA host: its cluster identity is signed directly, so it has a mesh and an
    // etcd member.
    s.sc_ok(&["cluster", "request"]);
    let outcome = expand(&s);
    assert_eq!(outcome["notes"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(outcome["removed"], serde_json::json!([]));
    let pki = s.root().join("var/lib/srvctl/pki/cluster");
    for f in ["ca.crt", "ca.key", "host.crt", "host.key", "host.csr"] {
        assert!(pki.join(f).is_file(), "{f} was not created");
    }
    check("cluster", &actual_tree(&s));
    // Expanding again changes nothing.
    let again = s.sc_ok(&["regenerate"]);
    assert!(again.contains("nothing to change"), "{again:#?}");
}

#[test]
fn single() {
    let s = Farm::with_clusters(ONE_HOST);
    s.build_image();
    for args in [
        &["add-reseller", "alice"][..],
        &["add-user", "bob", "--reseller", "alice"],
        &["add-user", "olga"],
        &["add-ve", "web.example.com", "--user", "bob"],
        &["add-ve", "tools.ve", "--user", "olga"],
        &["add-ve", "ops.ve"],
        &["put", "container", "ops.ve", "memory_max", "2G"],
        // A record only: no root filesystem, so its unit is not wanted at boot.
        &["add-ve", "idle.ve", "--no-start"],
    ] {
        s.sc_ok(args);
    }
    let outcome = expand(&s);
    assert_eq!(
        outcome["reloads"],
        serde_json::json!([
            "reload haproxy.service",
            "start --no-block haproxy.service (if it does not run)",
            "reload srvctl-opendkim.service",
            "start --no-block srvctl-opendkim.service (if it does not run)",
            "reload srvctl-postfix.service",
            "start --no-block srvctl-postfix.service (if it does not run)",
            "reload srvctl-nat.service",
            "reload systemd-networkd"
        ])
    );
    assert!(
        !s.root().join("var/lib/srvctl/pki/cluster").exists(),
        "a lone host needs no cluster certificate"
    );
    assert_eq!(
        outcome["certificates_issued"],
        serde_json::json!([
            "_default",
            "idle.ve",
            "ops.ve",
            "tools.ve",
            "web.example.com"
        ])
    );
    let actual = actual_tree(&s);
    let wants = Path::new("generator/machines.target.wants");
    assert!(actual.contains_key(&wants.join("systemd-nspawn@ops.ve.service")));
    assert!(
        !actual.contains_key(&wants.join("systemd-nspawn@idle.ve.service")),
        "a container without a root filesystem is started at boot"
    );
    for path in actual.keys() {
        let p = path.to_string_lossy();
        assert!(
            !p.contains("openvpn") && !p.contains("srvctl-mesh"),
            "a lone host got mesh configuration: {p}"
        );
    }
    check("single", &actual);
}

/// The HTTPS front: settings.json with a company domain (preview names) and name (error
/// pages), aliases, alternative names, every redirect policy, a backend port override, and a
/// container of the other host, which this host serves too (every host serves every site).
#[test]
fn front() {
    let s = Farm::with_clusters(TWO_HOSTS);
    s.build_image();
    std::fs::write(
        s.root().join("etc/srvctl/settings.json"),
        r#"{"company_domain": "company.net", "company_name": "Example <Hosting> & Co"}"#,
    )
    .expect("write settings.json");
    for args in [
        &["add-user", "bob"][..],
        &["add-ve", "web.example.com", "--user", "bob"],
        &["web.example.com", "alias", "add", "example.net"],
        &["web.example.com", "alias", "add", "Example.ORG"],
        &["web.example.com", "altname", "add", "shop.example.com"],
        &["add-ve", "blog.example.org"],
        &["blog.example.org", "http-redirect", "none"],
        &["add-ve", "old.example.com"],
        &[
            "old.example.com",
            "http-redirect",
            "https://new.example.org/",
        ],
        &[
            "https-redirect",
            "old.example.com",
            "https://new.example.org/",
        ],
        &["add-ve", "api.example.com"],
        &["api.example.com", "http-redirect", "http"],
        &["api.example.com", "https-redirect", "http"],
        &["put", "container", "api.example.com", "http_port", "8080"],
        &["add-ve", "tools.ve"],
    ] {
        s.sc_ok(args);
    }
    s.sc_as("h2.test", &["add-ve", "remote.example.net"]);
    let outcome = expand(&s);
    assert_eq!(
        outcome["haproxy_error"],
        serde_json::Value::Null,
        "{outcome:#}"
    );
    let actual = actual_tree(&s);
    // The container of h2 is served by h1's front too, at its plan address (across the mesh),
    // with a certificate of h1's site issuer.
    let hosts = describe(&actual[Path::new("root/run/srvctl/haproxy/hosts.map")]);
    assert!(
        hosts.contains("\nremote.example.net 10.32.0.2:80\n"),
        "{hosts}"
    );
    let crt_list = describe(&actual[Path::new("root/run/srvctl/haproxy/crt-list")]);
    assert!(
        crt_list.contains("/var/lib/srvctl/certs/remote.example.net.pem"),
        "{crt_list}"
    );
    check("front", &actual);
}

#[test]
fn the_diff_shows_what_changed() {
    let d = unified_diff("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n");
    assert_eq!(d, "@@ -1,4 +1,5 @@\n a\n-b\n+B\n c\n d\n+e\n");
    assert_eq!(unified_diff("same\n", "same\n"), "");
}

#[test]
fn differences_list_missing_extra_and_the_first_diff() {
    let file = |t: &str| Node::File(t.as_bytes().to_vec());
    let expected: BTreeMap<PathBuf, Node> = [
        ("a/same".into(), file("x\n")),
        ("a/gone".into(), file("y\n")),
        ("b/changed".into(), file("one\ntwo\n")),
        ("b/link".into(), Node::Link("/t".into())),
    ]
    .into();
    assert_eq!(differences(&expected, &expected), None);
    let mut actual = expected.clone();
    actual.remove(Path::new("a/gone"));
    actual.insert("a/new".into(), file("z\n"));
    actual.insert("b/changed".into(), file("one\nTWO\n"));
    actual.insert("b/link".into(), Node::Link("/u".into()));
    let msg = differences(&expected, &actual).unwrap();
    assert_eq!(
        msg,
        "missing (expected, not generated):\n  a/gone\n\
         extra (generated, not expected):\n  a/new\n\
         2 file(s) differ; first: b/changed\n--- expected/b/changed\n+++ actual/b/changed\n\
         @@ -1,2 +1,2 @@\n one\n-two\n+TWO\n\
         also differs: b/link\n"
    );
}
