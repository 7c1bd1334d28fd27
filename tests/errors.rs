//! Errors for scripts: every refusal has a kind with its own exit status, and under `--json`
//! it answers with an error object on stdout (its one human line still goes to stderr). The
//! datastore stays byte-for-byte as it was.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::Farm;
use serde_json::Value;

/// Runs `sc --json ARGS…`, expects a refusal of `kind` with exit status `code`; returns the
/// message. Also runs it without `--json` and expects the same status and one stderr line.
#[track_caller]
fn refused(farm: &Farm, args: &[&str], kind: &str, code: i32) -> String {
    let before = farm.datastore_bytes();
    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(args);
    let run = farm.sc(&json_args);
    assert_eq!(run.code, Some(code), "sc {args:?}: {run:#?}");
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("sc --json {args:?} printed no JSON ({e}): {run:#?}"));
    assert_eq!(v["error"]["kind"], kind, "sc {args:?}: {v}");
    assert_eq!(v["error"]["exit_code"], code, "sc {args:?}: {v}");
    let message = v["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned();
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    assert!(run.stderr.contains(&message), "{run:#?}");
    let plain = farm.sc(args);
    assert_eq!(plain.code, Some(code), "{plain:#?}");
    plain.refused();
    assert_eq!(
        farm.datastore_bytes(),
        before,
        "sc {args:?} changed the datastore"
    );
    message
}

#[test]
fn every_refusal_has_a_kind_and_its_exit_status() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    refused(&farm, &["frobnicate", "now", "please"], "usage", 2);
    refused(&farm, &["add-ve"], "usage", 2);
    refused(&farm, &["status", "--no-such-option"], "usage", 2);
    let m = refused(
        &farm,
        &["get", "container", "web.example.com", "colour"],
        "usage",
        2,
    );
    assert!(m.contains("known fields"), "{m}");
    refused(
        &farm,
        &["get", "container", "web.example.com", "memory_max"],
        "unset",
        100,
    );
    refused(&farm, &["get", "user", "bob", "email"], "unset", 100);
    refused(
        &farm,
        &["destroy-ve", "nothing.example.com"],
        "not-found",
        3,
    );
    refused(
        &farm,
        &["get", "user", "nobody-here", "uid"],
        "not-found",
        3,
    );
    refused(&farm, &["nothing.example.com", "start"], "not-found", 3);
    refused(&farm, &["add-ve", "web.example.com"], "exists", 4);
    refused(&farm, &["add-user", "bob"], "exists", 4);
    refused(&farm, &["add-ve", "bad_name.example.com"], "invalid", 5);
    refused(
        &farm,
        &["put", "container", "web.example.com", "http_port", "0"],
        "invalid",
        5,
    );
    refused(
        &farm,
        &["add-user", "carol", "--reseller", "zed"],
        "not-found",
        3,
    );
    refused(&farm, &["destroy-user", "bob"], "in-use", 8);
    refused(&farm, &["destroy-reseller", "alice"], "in-use", 8);
}

/// A change that is committed, after which a step that follows fails (here the clone of the
/// root filesystem: a file stands where srvctl stages its clones): under `--json` one
/// document, the error, which names the record committed; the exit status is the failure's.
#[test]
fn a_failure_after_the_commit_is_the_one_json_document() {
    let farm = Farm::new();
    farm.build_image();
    std::fs::write(
        farm.join("var/lib/machines/.srvctl-staging"),
        "in the way\n",
    )
    .unwrap();
    let run = farm.sc(&["--json", "add-ve", "web.example.com"]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {run:#?}"));
    assert_eq!(v["error"]["kind"], "system", "{v:#}");
    assert_eq!(v["error"]["exit_code"], run.code.unwrap(), "{v:#}");
    let message = v["error"]["message"].as_str().expect("a message");
    assert!(
        message.starts_with(
            "the datastore is updated, but creating the root filesystem of web.example.com"
        ),
        "{message}"
    );
    let committed = &v["error"]["committed"];
    assert_eq!(committed["result"], "container", "{v:#}");
    assert_eq!(committed["name"], "web.example.com", "{v:#}");
    assert_eq!(committed["ip"], "10.16.0.2", "{v:#}");
    assert!(farm.datastore_json()["containers"]["web.example.com"].is_object());
    assert!(run.stderr.contains(message), "{run:#?}");

    // Without --json the report comes first, as the change is made, and the error after it.
    let run = farm.sc(&["add-ve", "two.example.com"]);
    assert_ne!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "two.example.com 10.16.0.3\n");
}

#[test]
fn a_full_plan_range_is_exhausted() {
    let farm = Farm::new();
    for i in 1..=15 {
        farm.sc_ok(&["add-reseller", &format!("r{i}")]);
    }
    refused(&farm, &["add-reseller", "r16"], "exhausted", 7);
}

#[test]
fn broken_inputs_are_config_or_datastore_failures() {
    let farm = Farm::new();
    farm.sc_ok(&["add-ve", "web.example.com"]);
    std::fs::write(farm.join("etc/srvctl/clusters.json"), "{ not json").unwrap();
    refused(&farm, &["add-ve", "two.example.com"], "config", 9);
    std::fs::write(farm.join("etc/srvctl/clusters.json"), common::CLUSTERS).unwrap();
    std::fs::write(
        farm.datastore_path(),
        "{\"schema_version\": 1, \"users\": [",
    )
    .unwrap();
    refused(&farm, &["status"], "datastore", 10);
}

#[test]
fn the_man_page_lists_every_exit_status() {
    let farm = Farm::new();
    let man = farm.sc_ok(&["man"]);
    let section = man
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .expect("an EXIT STATUS section");
    for kind in srvctl::failure::FailureKind::ALL {
        let entry = format!(
            "\\fB{}\\fR {}",
            kind.exit_code(),
            kind.name().replace('-', "\\-")
        );
        assert!(section.contains(&entry), "{entry} missing:\n{section}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let farm = Farm::new();
    farm.sc_ok(&["add-ve", "web.example.com"]);
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["certificates", "--json"],
    ] {
        let mut child = farm
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sc");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for sc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "sc {args:?}: {stderr}");
        assert!(stderr.is_empty(), "sc {args:?} complained: {stderr}");
    }
}
