//! A site's own DNS records through `sc`: `sc NAME dns add|remove [--name LABEL] TYPE VALUE`
//! and `sc NAME dns [list]`, with --json, and refusals (hostile values, a CNAME beside other
//! records, a record where the site's DKIM key is published, a record twice, one that is not
//! there) that leave the datastore byte for byte as
//! it was. tests/dns_named.rs shows the records served by the real named.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{Farm, ONE_HOST};

fn scratch() -> Farm {
    let s = Farm::with_clusters(ONE_HOST);
    s.sc_ok(&["add-ve", "web.example.com"]);
    s
}

#[test]
fn records_are_added_listed_and_removed() {
    let s = scratch();
    let out = s.sc_ok(&[
        "web.example.com",
        "dns",
        "add",
        "MX",
        "20",
        "mx.example.net",
    ]);
    assert_eq!(
        out,
        "web.example.com: DNS record @ MX 20 mx.example.net added\n"
    );
    let out = s.sc_ok(&[
        "--json",
        "web.example.com",
        "dns",
        "add",
        "--name",
        "_acme-challenge",
        "txt",
        "token value",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["key"], "dns");
    assert_eq!(
        v["value"],
        serde_json::json!([
            {"name": "@", "type": "MX", "value": "20 mx.example.net"},
            {"name": "_acme-challenge", "type": "TXT", "value": "token value"}
        ])
    );
    assert_eq!(
        s.sc_ok(&["web.example.com", "dns"]),
        "@ MX 20 mx.example.net\n_acme-challenge TXT token value\n"
    );
    s.sc_ok(&[
        "web.example.com",
        "dns",
        "remove",
        "MX",
        "20",
        "mx.example.net",
    ]);
    let list: Vec<String> =
        serde_json::from_str(&s.sc_ok(&["--json", "web.example.com", "dns", "list"])).unwrap();
    assert_eq!(list, ["_acme-challenge TXT token value"]);
}

#[test]
fn refusals_leave_the_datastore_untouched() {
    let s = scratch();
    // `sc web.example.com dns WORDS…`.
    let dns = |words: &str, why: Option<&str>, before: &[u8]| {
        let args: Vec<&str> = ["web.example.com", "dns"]
            .into_iter()
            .chain(words.split(' '))
            .collect();
        match why {
            None => drop(s.sc_ok(&args)),
            Some(why) => s.assert_refused(&args, why, before),
        }
    };
    dns("add --name shop CNAME a.example.net", None, &[]);
    let before = std::fs::read(s.datastore_path()).unwrap();
    for (words, why) in [
        ("add A 10.0.0.256", "IPv4"),
        ("add NS ns.evil.test", "record type"),
        ("add --name ../../etc TXT x", "labels"),
        ("add --name www CNAME a.example.net", "CNAME"),
        ("add --name shop TXT x", "CNAME"),
        ("add --name shop CNAME a.example.net", "has it already"),
        ("remove TXT never", "no DNS record"),
    ] {
        dns(words, Some(why), &before);
    }
    // Where srvctl publishes the site's DKIM key (made at add-ve), nothing of the site's own.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.datastore_path()).unwrap()).unwrap();
    let selector = record["containers"]["web.example.com"]["dkim"]["selector"]
        .as_str()
        .expect("add-ve made a DKIM key")
        .to_owned();
    for kind in ["TXT x", "CNAME dkim.example.net"] {
        dns(
            &format!("add --name {selector}._domainkey {kind}"),
            Some("DKIM key"),
            &before,
        );
    }
    let hostile = "a\nweb.example.com. IN NS evil.test.";
    let long = "x".repeat(2000);
    for (value, why) in [(hostile, "printable ASCII"), (long.as_str(), "1024")] {
        s.assert_refused(
            &["web.example.com", "dns", "add", "TXT", value],
            why,
            &before,
        );
    }
    s.assert_refused(
        &["nothere.example.com", "dns", "add", "TXT", "x"],
        "no container",
        &before,
    );
    // Not a record at all: usage, nothing written.
    let run = s.sc(&["web.example.com", "dns", "add", "TXT"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(std::fs::read(s.datastore_path()).unwrap(), before);
}
