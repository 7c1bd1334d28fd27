//! Hostile claims: names that belong to another site (its name, `www.` of it, its preview name,
//! its alias and altname and their `www.`), to a cluster host, to the company domain, to
//! `localhost` or to `sc` itself, and accounts named like system accounts, tried through every
//! command that claims a name. Each is refused with one line naming who holds the name, and
//! leaves the datastore byte for byte as it was.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::Farm;
use serde_json::json;

/// The farm: company domain `company.net`; reseller alice with the site `shop.example.com`
/// (alias `shop.example.net`, altname `store.example.com`); her user bob with the site
/// `bob.example.org`.
fn farm() -> Farm {
    let farm = Farm::new().with_alice_and_bob();
    std::fs::write(
        farm.root().join("etc/srvctl/settings.json"),
        r#"{"company_domain": "company.net"}"#,
    )
    .unwrap();
    farm.sc_ok(&["add-ve", "shop.example.com", "--user", "alice"]);
    farm.sc_ok(&["shop.example.com", "alias", "add", "shop.example.net"]);
    farm.sc_ok(&["shop.example.com", "altname", "add", "store.example.com"]);
    farm.sc_ok(&["add-ve", "bob.example.org", "--user", "bob"]);
    farm
}

/// A command that claims a name.
#[derive(Debug, Clone, Copy)]
enum Via {
    AddVe,
    NewContainer,
    Alias,
    Altname,
    AddUser,
    AddReseller,
    NewUser,
    NewReseller,
    /// import-v3 of a container of that name.
    ImportContainer,
    /// import-v3 of a new container with that alias.
    ImportAlias,
    /// import-v3 of a user of that name.
    ImportUser,
}

const SHOP: &str = "container shop.example.com";
const H1: &str = "cluster host h1.test";
const H2: &str = "cluster host h2.test";
const COMPANY: &str = "company domain company.net";
const LOCALHOST: &str = "reserved (localhost)";
const WORD: &str = "reserved (sc command word)";
const SYSTEM: &str = "is a system account on this host";

/// (command, the name claimed, what the refusal must name).
const CLAIMS: &[(Via, &str, &str)] = &[
    (
        Via::AddVe,
        "shop.example.com",
        "shop.example.com already exists",
    ),
    (Via::AddVe, "www.shop.example.com", SHOP),
    (Via::AddVe, "shop-example-com.company.net", SHOP),
    (Via::AddVe, "shop.example.net", SHOP),
    (Via::AddVe, "www.shop.example.net", SHOP),
    (Via::AddVe, "store.example.com", SHOP),
    (Via::AddVe, "www.store.example.com", SHOP),
    (Via::AddVe, "WWW.Shop.Example.com", SHOP),
    (Via::AddVe, "h1.test", H1),
    (Via::AddVe, "h2.test", H2),
    (Via::AddVe, "company.net", COMPANY),
    (Via::AddVe, "www.company.net", COMPANY),
    (Via::AddVe, "localhost", LOCALHOST),
    (Via::AddVe, "status", WORD),
    (Via::AddVe, "version", WORD),
    (Via::AddVe, "ls", WORD),
    (Via::AddVe, "regenerate", WORD),
    (Via::NewContainer, "www.store.example.com", SHOP),
    (Via::NewContainer, "H2.TEST", H2),
    (Via::NewContainer, "certificates", WORD),
    // bob's site reaching for alice's site's names
    (Via::Alias, "shop.example.com", SHOP),
    (Via::Alias, "www.shop.example.com", SHOP),
    (Via::Alias, "shop.example.net", SHOP),
    (Via::Alias, "www.shop.example.net", SHOP),
    (Via::Alias, "WWW.Shop.Example.NET", SHOP),
    (Via::Alias, "store.example.com", SHOP),
    (Via::Alias, "shop-example-com.company.net", SHOP),
    (Via::Alias, "h2.test", H2),
    (Via::Alias, "company.net", COMPANY),
    (Via::Alias, "app.localhost", LOCALHOST),
    (Via::Altname, "www.store.example.com", SHOP),
    (Via::Altname, "shop.example.net", SHOP),
    (Via::Altname, "h1.test", H1),
    (Via::Altname, "www.company.net", COMPANY),
    (Via::AddUser, "www-data", SYSTEM),
    (Via::AddUser, "systemd-network", SYSTEM),
    (Via::AddUser, "root", SYSTEM),
    (Via::AddUser, "nobody", SYSTEM),
    (Via::AddReseller, "www-data", SYSTEM),
    (Via::AddReseller, "root", SYSTEM),
    (Via::NewUser, "systemd-resolve", SYSTEM),
    (Via::NewReseller, "nobody", SYSTEM),
    (Via::ImportContainer, "www.shop.example.com", SHOP),
    (Via::ImportContainer, "h2.test", H2),
    (Via::ImportAlias, "shop.example.net", SHOP),
    (Via::ImportAlias, "www.store.example.com", SHOP),
    (Via::ImportUser, "www-data", SYSTEM),
];

/// A srvctl 3 datastore in a new directory under the farm: `users` and `containers` as given,
/// one host with hostnet 1 (`h1.test`).
fn v3_dir(farm: &Farm, users: serde_json::Value, containers: serde_json::Value) -> String {
    let dir = tempfile::tempdir_in(farm.root()).unwrap().keep();
    for (file, doc) in [
        ("users.json", users),
        ("containers.json", containers),
        (
            "hosts.json",
            json!({"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1}}),
        ),
    ] {
        std::fs::write(dir.join(file), doc.to_string()).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

fn args(farm: &Farm, via: Via, name: &str) -> Vec<String> {
    let v3_container = |n: &str, aliases: &[&str]| json!({ n: {"user": "root", "ip": "10.1.0.9", "aliases": aliases} });
    let words: Vec<String> = match via {
        Via::AddVe => vec!["add-ve".into(), name.into()],
        Via::NewContainer => vec!["new".into(), "container".into(), name.into()],
        Via::Alias | Via::Altname => {
            let list = if matches!(via, Via::Alias) {
                "alias"
            } else {
                "altname"
            };
            ["bob.example.org", list, "add", name]
                .map(String::from)
                .to_vec()
        }
        Via::AddUser => vec!["add-user".into(), name.into()],
        Via::AddReseller => vec!["add-reseller".into(), name.into()],
        Via::NewUser => vec!["new".into(), "user".into(), name.into()],
        Via::NewReseller => vec!["new".into(), "reseller".into(), name.into()],
        Via::ImportContainer => {
            let dir = v3_dir(farm, json!({}), v3_container(name, &[]));
            vec!["import-v3".into(), dir]
        }
        Via::ImportAlias => {
            let dir = v3_dir(farm, json!({}), v3_container("new.example.org", &[name]));
            vec!["import-v3".into(), dir]
        }
        Via::ImportUser => {
            let dir = v3_dir(farm, json!({ name: {"uid": 1500} }), json!({}));
            vec!["import-v3".into(), dir]
        }
    };
    words
}

#[test]
fn hostile_claims_are_refused_naming_the_owner() {
    assert!(CLAIMS.len() >= 30);
    let farm = farm();
    let before = farm.datastore_bytes().unwrap();
    let files = farm.json_files();
    for (via, name, owner) in CLAIMS {
        let args = args(&farm, *via, name);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = farm.sc(&argv).refused().to_owned();
        assert!(line.contains(owner), "{via:?} {name}: {line}");
        assert!(
            line.contains(&name.to_ascii_lowercase()),
            "{via:?} {name}: the line does not name the claim: {line}"
        );
        assert_eq!(
            farm.datastore_bytes().unwrap(),
            before,
            "{via:?} {name} changed the datastore"
        );
        assert_eq!(farm.json_files(), files, "{via:?} {name} changed a file");
    }
}

#[test]
fn free_names_and_a_sites_own_www_are_accepted() {
    let farm = farm();
    farm.sc_ok(&["bob.example.org", "alias", "add", "www.bob.example.org"]);
    farm.sc_ok(&["bob.example.org", "alias", "add", "bob.example.net"]);
    farm.sc_ok(&["add-ve", "sub.company.net"]);
    farm.sc_ok(&["add-user", "carol"]);
    // A removed alias is free again, for another tenant too.
    farm.sc_ok(&["shop.example.com", "alias", "remove", "shop.example.net"]);
    farm.sc_ok(&["bob.example.org", "alias", "add", "shop.example.net"]);
}
