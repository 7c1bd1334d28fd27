//! A hand-edited datastore with one record that breaks an invariant a command enforces (an
//! address on another user's bridge or host, a shared address, a UID out of range or held
//! twice, a duplicate reseller id or user index, a port out of range, a name another site
//! answers for, a key that differs only in case): the record is set aside and reported,
//! nothing of it is rendered, every other file stays as it was, and `sc` keeps it as found.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Farm, HOSTNAME, base_command};
use serde_json::{Value, json};

const REGENERATE: &str = env!("CARGO_BIN_EXE_srvctl-regenerate");
const GENERATOR: &str = env!("CARGO_BIN_EXE_srvctl-generator");

/// Every file and link under `dir` with its bytes or target, skipping `skip` (relative).
fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, target.into_os_string().into_encoded_bytes());
            } else if meta.is_dir() {
                walk(base, &path, skip, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// What the host's configuration looks like: the rendered tree under the root (the datastore,
/// its lock and audit log and the generator's output left out) and the generator's output.
struct Rendered {
    host: BTreeMap<PathBuf, Vec<u8>>,
    generated: BTreeMap<PathBuf, Vec<u8>>,
    /// What srvctl-regenerate --json said.
    outcome: Value,
    /// What the generator logged.
    generator_log: String,
}

fn render(farm: &Farm, run: &str) -> Rendered {
    let regenerate = farm.run_bin(REGENERATE, &["--json"]);
    let outcome: Value = serde_json::from_str(regenerate.ok()).unwrap();
    let out = farm.root().join("tmp").join(run);
    let generator = base_command(GENERATOR)
        .env("SRVCTL_ROOT", farm.root())
        .arg(&out)
        .arg(out.with_extension("early"))
        .arg(out.with_extension("late"))
        .output()
        .unwrap();
    assert!(generator.status.success(), "{generator:?}");
    Rendered {
        host: tree(farm.root(), &["var/lib/srvctl", "tmp"]),
        generated: tree(&out, &[]),
        outcome,
        generator_log: String::from_utf8(generator.stderr).unwrap(),
    }
}

/// alice (reseller 1) and bob (her user) with a site each, and an operator site with an alias.
fn farm() -> Farm {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    farm.sc_ok(&["add-ve", "own.example.com", "--user", "alice"]);
    farm.sc_ok(&["add-ve", "ops.example.net"]);
    farm.sc_ok(&["ops.example.net", "alias", "add", "ops.example.org"]);
    farm
}

fn container(user: &str, ip: &str) -> Value {
    json!({"user": user, "host": HOSTNAME, "ip": ip, "created": "t", "created_by": "root"})
}

fn user(reseller_id: u32, index: u32, uid: u32) -> Value {
    json!({"reseller_id": reseller_id, "index": index, "uid": uid, "gid": uid,
           "created": "t", "created_by": "root"})
}

/// (what, section, key, record, a fragment of the reason).
fn broken() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Value,
    &'static str,
)> {
    let mut port = container("bob", "10.17.1.9");
    port["http_port"] = json!(0);
    let mut loop_ = container("bob", "10.17.1.9");
    loop_["https_redirect"] = json!("http");
    let mut alias = container("bob", "10.17.1.9");
    alias["aliases"] = json!(["www.web.example.com"]);
    let mut altname = container("bob", "10.17.1.9");
    altname["altnames"] = json!(["ops.example.org"]);
    vec![
        (
            "another user's bridge",
            "containers",
            "x.example.com",
            container("alice", "10.17.1.9"),
            "not on one of its owner alice",
        ),
        (
            "another host's network",
            "containers",
            "x.example.com",
            container("bob", "10.33.1.9"),
            "not in the network of its host h1.test",
        ),
        (
            "a shared address",
            "containers",
            "zz.example.com",
            container("bob", "10.17.1.2"),
            "already the address of web.example.com",
        ),
        (
            "a port out of range",
            "containers",
            "x.example.com",
            port,
            "http_port",
        ),
        (
            "redirects that loop",
            "containers",
            "x.example.com",
            loop_,
            "loop",
        ),
        (
            "another site's www. name",
            "containers",
            "x.example.com",
            alias,
            "www.web.example.com is already a name of container web.example.com",
        ),
        (
            "another site's alias",
            "containers",
            "x.example.com",
            altname,
            "ops.example.org is already a name of container ops.example.net",
        ),
        (
            "a site named like a cluster host",
            "containers",
            "h2.test",
            container("bob", "10.17.1.9"),
            "cluster host h2.test",
        ),
        (
            "a site named like an sc word",
            "containers",
            "status",
            container("bob", "10.17.1.9"),
            "sc command word",
        ),
        (
            "a key that differs only in case",
            "containers",
            "Web.Example.com",
            container("bob", "10.17.1.9"),
            "differs only in case",
        ),
        (
            "uid 0",
            "users",
            "carol",
            user(1, 5, 0),
            "outside srvctl's range",
        ),
        (
            "a uid above the range",
            "users",
            "carol",
            user(1, 5, 65534),
            "outside srvctl's range",
        ),
        (
            "a duplicate uid",
            "users",
            "carol",
            user(1, 5, 20257),
            "already held by bob",
        ),
        (
            "a duplicate user index",
            "users",
            "carol",
            user(1, 1, 20300),
            "already held by bob",
        ),
        (
            "a system account",
            "users",
            "www-data",
            user(1, 5, 20300),
            "reserved for the system",
        ),
        (
            "a duplicate reseller id",
            "resellers",
            "zed",
            json!({"id": 1, "created": "t", "created_by": "root"}),
            "already the id of alice",
        ),
    ]
}

#[test]
fn each_broken_record_is_set_aside_reported_and_never_rendered() {
    let farm = farm();
    let clean = render(&farm, "clean");
    assert!(clean.generated.len() > 3 && clean.host.len() > 10);
    assert_eq!(clean.outcome["skipped"], json!([]));
    let good = farm.datastore_json();
    assert_eq!(
        good["users"]["bob"]["uid"], 20257,
        "the cases assume bob's UID"
    );
    for (i, (what, section, key, record, why)) in broken().into_iter().enumerate() {
        let mut doc = good.clone();
        doc[section][key] = record.clone();
        std::fs::write(
            farm.datastore_path(),
            serde_json::to_vec_pretty(&doc).unwrap(),
        )
        .unwrap();

        let bad = render(&farm, &format!("run{i}"));
        let skipped = bad.outcome["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1, "{what}: {skipped:?}");
        let line = skipped[0].as_str().unwrap();
        assert!(
            line.starts_with(&format!("{section} {key:?}: ")),
            "{what}: {line}"
        );
        assert!(line.contains(why), "{what}: {line}");
        assert!(
            bad.generator_log.contains(why),
            "{what}: {}",
            bad.generator_log
        );
        assert_eq!(bad.outcome["written"], json!([]), "{what}");
        assert_eq!(bad.outcome["removed"], json!([]), "{what}");
        assert!(bad.host == clean.host, "{what}: the host's files changed");
        assert!(
            bad.generated == clean.generated,
            "{what}: the generator's output changed"
        );

        // sc keeps working and writes the record back as found.
        farm.sc_ok(&["add-user", "dave"]);
        assert_eq!(farm.datastore_json()[section][key], record, "{what}");
        farm.sc_ok(&["del", "user", "dave"]);
    }
}
