//! `sc import-v3`: a srvctl 3 datastore (tests/fixtures/v3) mapped onto the address plan, with
//! everything that cannot be mapped reported, and `--dry-run` writing nothing.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::PathBuf;

use common::Farm;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3")
}

fn import(farm: &Farm, extra: &[&str]) -> Value {
    let dir = fixtures();
    let mut args = vec!["--json", "import-v3", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = farm.sc_ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("report is not JSON ({e}): {out}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn dry_run_writes_nothing() {
    let farm = Farm::new();
    let dry = import(&farm, &["--dry-run"]);
    assert_eq!(dry["result"], "import", "{dry}");
    assert_eq!(strings(&dry["resellers"]), ["a"]);
    assert!(
        farm.datastore_bytes().is_none(),
        "--dry-run wrote the datastore"
    );
    assert!(farm.json_files().is_empty(), "--dry-run wrote a json file");
    assert!(
        !farm.audit_path().exists(),
        "--dry-run was audited as a change"
    );

    // The real run reports exactly what the dry run announced.
    let real = import(&farm, &[]);
    assert_eq!(real, dry);
}

#[test]
fn maps_users_and_containers_and_reports_the_rest() {
    let farm = Farm::new();
    let report = import(&farm, &[]);

    assert_eq!(strings(&report["resellers"]), ["a"]);
    assert_eq!(strings(&report["users"]), ["alpha1"]);
    assert_eq!(
        report["containers"],
        json!([
            ["alpha1.example.com", "10.17.1.2"],
            ["ops.example.net", "10.16.0.2"]
        ])
    );
    let skipped = strings(&report["skipped"]);
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (name, why) in [
        ("bad name", "invalid"),
        ("bridged.example.com", "bridge"),
        ("far.example.org", "far.test"),
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(name) && s.contains(why)),
            "{name} not reported as skipped for {why:?}: {skipped:?}"
        );
    }
    // srvctl 3's aliases and altnames are imported (and no longer only kept).
    let notes = strings(&report["notes"]);
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("alpha1.example.com") && n.contains("aliases")),
        "{notes:?}"
    );

    let get = |kind: &str, name: &str, field: &str| -> String {
        farm.sc_ok(&["get", kind, name, field])
            .trim_end()
            .to_owned()
    };
    // Accounts keep their srvctl 3 UIDs and their reseller.
    assert_eq!(get("user", "a", "uid"), "1001");
    assert_eq!(get("reseller", "a", "reseller_id"), "1");
    assert_eq!(get("user", "alpha1", "uid"), "1025");
    assert_eq!(get("user", "alpha1", "gid"), "1025");
    assert_eq!(get("user", "alpha1", "reseller"), "a");
    assert_eq!(get("user", "alpha1", "index"), "1");
    assert_eq!(get("user", "a", "display_name"), "Alpha");
    // Containers land on the host whose v3 hostnet matched, on the new plan.
    assert_eq!(get("container", "alpha1.example.com", "ip"), "10.17.1.2");
    assert_eq!(get("container", "alpha1.example.com", "host"), "h1.test");
    assert_eq!(get("container", "alpha1.example.com", "user"), "alpha1");
    assert_eq!(get("container", "alpha1.example.com", "http_port"), "8080");
    assert_eq!(get("container", "alpha1.example.com", "https_port"), "8443");
    assert_eq!(get("container", "alpha1.example.com", "image"), "fedora");
    assert_eq!(
        get("container", "alpha1.example.com", "created"),
        "2019-04-03T09:00:00Z"
    );
    assert_eq!(get("container", "ops.example.net", "ip"), "10.16.0.2");
    assert_eq!(get("container", "ops.example.net", "user"), "root");
    assert_eq!(get("container", "ops.example.net", "image"), "mail");

    let doc = farm.datastore_json();
    let web = &doc["containers"]["alpha1.example.com"];
    assert_eq!(
        web["aliases"],
        json!(["www.alpha1.example.com", "alpha1.example.net"])
    );
    assert_eq!(web["altnames"], json!(["shop.alpha1.example.com"]));
    // What srvctl 3 had and this build does not use is kept under "v3", never live.
    assert_eq!(doc["users"]["alpha1"]["v3"]["codepad"], "all-access");
    assert_eq!(web["v3"]["host"], "elsewhere.test");
    assert_eq!(web["v3"]["memory_max"], "64M");
    assert_eq!(web["host"], "h1.test");
    assert!(web.get("memory_max").is_none() && web.get("http_redirect").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("alpha1.example.com")
                && n.contains("host, memory_max, http_redirect")),
        "{notes:?}"
    );
    let state = farm.state();
    assert_eq!(state.containers.len(), 2);
    assert!(state.set_aside.is_empty(), "{:?}", state.set_aside);

    // The next native container of alpha1 follows on the same bridge.
    assert_eq!(
        farm.sc_ok(&["add-ve", "next.example.com", "--user", "alpha1"]),
        "next.example.com 10.17.1.3\n"
    );
}

#[test]
fn importing_twice_adds_nothing() {
    let farm = Farm::new();
    import(&farm, &[]);
    let first = farm.datastore_bytes().unwrap();
    let again = import(&farm, &[]);
    assert_eq!(again["resellers"], json!([]));
    assert_eq!(again["users"], json!([]));
    assert_eq!(again["containers"], json!([]));
    assert_eq!(strings(&again["skipped"]).len(), 2 + 5, "{again}");
    assert!(farm.datastore_bytes().unwrap() == first);
}

#[test]
fn missing_v3_directory_is_refused() {
    let farm = Farm::new();
    let missing = farm.root().join("no-such-dir");
    farm.sc(&["import-v3", missing.to_str().unwrap()]).refused();
    assert!(farm.datastore_bytes().is_none());
}
