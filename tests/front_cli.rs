//! The web-front commands of `sc`, srvctl 3 style: `sc NAME http-redirect|https-redirect
//! [VALUE]`, `sc NAME alias|altname add|remove DOMAIN`, `sc NAME aliases|altnames`, with
//! --json, refusals that leave the datastore byte for byte as it was, and settings.json
//! validation.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{Farm, ONE_HOST};

fn scratch() -> Farm {
    let s = Farm::with_clusters(ONE_HOST);
    s.sc_ok(&["add-ve", "web.example.com"]);
    s.sc_ok(&["add-ve", "blog.example.org"]);
    s
}

#[test]
fn aliases_and_altnames_are_added_listed_and_removed() {
    let s = scratch();
    let out = s.sc_ok(&["web.example.com", "alias", "add", "Example.NET"]);
    assert_eq!(out, "web.example.com: alias example.net added\n");
    s.sc_ok(&["alias", "web.example.com", "add", "example.org"]);
    let out = s.sc_ok(&[
        "--json",
        "web.example.com",
        "altname",
        "add",
        "shop.example.com",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"], "front");
    assert_eq!(v["key"], "altnames");
    assert_eq!(v["value"], serde_json::json!(["shop.example.com"]));
    assert_eq!(
        s.sc_ok(&["web.example.com", "aliases"]),
        "example.net\nexample.org\n"
    );
    let list: Vec<String> =
        serde_json::from_str(&s.sc_ok(&["--json", "web.example.com", "altnames"])).unwrap();
    assert_eq!(list, ["shop.example.com"]);
    assert_eq!(
        s.sc_ok(&["get", "container", "web.example.com", "aliases"]),
        "example.net example.org\n"
    );
    s.sc_ok(&["web.example.com", "alias", "remove", "example.org"]);
    assert_eq!(s.sc_ok(&["web.example.com", "aliases"]), "example.net\n");
    assert_eq!(s.sc_ok(&["blog.example.org", "aliases"]), "");
}

#[test]
fn redirects_are_set_and_reset() {
    let s = scratch();
    let out = s.sc_ok(&["web.example.com", "http-redirect", "none"]);
    assert_eq!(out, "web.example.com: http-redirect set to none\n");
    s.sc_ok(&["web.example.com", "https-redirect", "http"]);
    s.sc_ok(&[
        "http-redirect",
        "blog.example.org",
        "https://new.example.org/",
    ]);
    let get = |name: &str, key: &str| s.sc(&["get", "container", name, key]);
    assert_eq!(get("web.example.com", "http_redirect").stdout, "none\n");
    assert_eq!(get("web.example.com", "https_redirect").stdout, "http\n");
    assert_eq!(
        get("blog.example.org", "http_redirect").stdout,
        "https://new.example.org\n"
    );
    let out = s.sc_ok(&["--json", "blog.example.org", "http-redirect"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["value"], serde_json::Value::Null);
    assert_eq!(get("blog.example.org", "http_redirect").code, Some(100));
}

#[test]
fn refusals_leave_the_datastore_untouched() {
    let s = scratch();
    s.sc_ok(&["web.example.com", "alias", "add", "example.net"]);
    let before = std::fs::read(s.datastore_path()).unwrap();
    for (args, why) in [
        (
            &["web.example.com", "alias", "add", "bad name.com"][..],
            "invalid",
        ),
        (
            &["web.example.com", "alias", "add", "a.com\nbackend x"],
            "invalid",
        ),
        (
            &["web.example.com", "alias", "add", "blog.example.org"],
            "container",
        ),
        (
            &["blog.example.org", "altname", "add", "example.net"],
            "example.net is already a name of container web.example.com",
        ),
        (
            &["web.example.com", "altname", "add", "example.net"],
            "already in the aliases",
        ),
        (
            &["web.example.com", "alias", "add", "web.example.com"],
            "own name",
        ),
        (
            &["web.example.com", "alias", "remove", "nope.example.com"],
            "not in the aliases",
        ),
        (
            &["web.example.com", "http-redirect", "ftp://x.org"],
            "invalid",
        ),
        (
            &["web.example.com", "http-redirect", "https://x.org/a\"b"],
            "invalid",
        ),
        (&["web.example.com", "https-redirect", "http"], "loop"),
        (
            &["nothere.example.com", "alias", "add", "x.example.com"],
            "no container",
        ),
    ] {
        s.assert_refused(args, why, &before);
    }
    let audit = std::fs::read_to_string(s.root().join("var/lib/srvctl/audit.log")).unwrap();
    assert!(audit.contains("loop"), "{audit}");
}

#[test]
fn settings_json_errors_name_the_file_and_field() {
    let s = scratch();
    std::fs::write(
        s.root().join("etc/srvctl/settings.json"),
        r#"{"company_domain": "not a domain"}"#,
    )
    .unwrap();
    let run = s.sc(&["regenerate"]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("settings.json") && run.stderr.contains("\"company_domain\""),
        "{}",
        run.stderr
    );
    std::fs::write(
        s.root().join("etc/srvctl/settings.json"),
        r#"{"company_domain": "company.net", "company_name": "Hosting & Co"}"#,
    )
    .unwrap();
    s.sc_ok(&["regenerate"]);
    let map = std::fs::read_to_string(s.root().join("run/srvctl/haproxy/hosts.map")).unwrap();
    assert!(
        map.contains("web-example-com.company.net 10.16.0.2:80\n"),
        "{map}"
    );
    let page =
        std::fs::read_to_string(s.root().join("run/srvctl/haproxy/errors/404.http")).unwrap();
    assert!(page.contains("Hosting &amp; Co"), "{page}");
}
