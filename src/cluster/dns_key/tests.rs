use std::path::Path;

use super::*;
use crate::cluster::sync::tests::Scripted;
use crate::system::Recording;

const CLUSTERS: &str = r#"{"c":{
    "h1.test":{"host_ip":"192.0.2.11","hostnet":1,"role":"ca","dns":"master"},
    "h2.test":{"host_ip":"192.0.2.12","hostnet":2,"dns":"slave"},
    "h3.test":{"host_ip":"192.0.2.13","hostnet":3}},
  "solo":{"h9.test":{"host_ip":"192.0.2.19","hostnet":9,"dns":"master"}}}"#;

fn host(name: &str) -> Recording {
    let sys = Recording {
        hostname: name.into(),
        ..Recording::default()
    };
    sys.write(
        Path::new("/r/etc/group"),
        b"root:x:0:\nbindery:x:7:\nbind:x:104:\n",
        0o644,
        false,
    )
    .unwrap();
    sys
}

#[test]
fn the_master_makes_the_key_once_and_every_dns_host_installs_it() {
    let clusters = Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap();
    let paths = Paths::rooted("/r");
    let file = Path::new("/r/var/lib/srvctl/dns/transfer.key");
    let mut feed = Scripted::default();
    // A slave before the master: nothing to install yet.
    let slave = host("h2.test");
    let me = |name| clusters.host(name).unwrap();
    assert_eq!(
        round(&slave, &paths, &clusters, me("h2.test"), &mut feed),
        Ok(false)
    );
    assert!(feed.keys.is_empty() && slave.read(file).unwrap().is_none());

    let master = host("h1.test");
    assert_eq!(
        round(&master, &paths, &clusters, me("h1.test"), &mut feed),
        Ok(true)
    );
    let secret = feed.keys[KEY].clone();
    assert_eq!(secret.len(), 44, "{secret}");
    let text = String::from_utf8(master.read(file).unwrap().unwrap()).unwrap();
    assert_eq!(text, key_file(&secret).unwrap());
    assert!(text.starts_with("key \"srvctl-transfer\" {\n\talgorithm hmac-sha256;\n"));
    let dir = Path::new("/r/var/lib/srvctl/dns");
    let owner = master.ownership(dir).unwrap().unwrap();
    assert_eq!((owner.uid, owner.gid, owner.mode), (0, 104, 0o750));
    // Again: the same key, nothing written.
    let writes = master.writes.borrow().len();
    assert_eq!(
        round(&master, &paths, &clusters, me("h1.test"), &mut feed),
        Ok(false)
    );
    assert_eq!(master.writes.borrow().len(), writes);
    assert_eq!(feed.keys[KEY], secret);

    // The slave installs the master's key.
    assert_eq!(
        round(&slave, &paths, &clusters, me("h2.test"), &mut feed),
        Ok(true)
    );
    assert_eq!(slave.read(file).unwrap(), master.read(file).unwrap());

    // A host without DNS, and a master without slaves, need no key.
    let other = host("h3.test");
    assert_eq!(
        round(&other, &paths, &clusters, me("h3.test"), &mut feed),
        Ok(false)
    );
    let solo = host("h9.test");
    let mut empty = Scripted::default();
    assert_eq!(
        round(&solo, &paths, &clusters, me("h9.test"), &mut empty),
        Ok(false)
    );
    assert!(empty.keys.is_empty() && solo.read(file).unwrap().is_none());
}

#[test]
fn a_value_in_etcd_that_is_not_a_secret_is_never_written() {
    let clusters = Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap();
    let paths = Paths::rooted("/r");
    let slave = host("h2.test");
    let mut feed = Scripted::default();
    let hostile = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\";};zone \"x\"{";
    feed.keys.insert(KEY.into(), hostile.into());
    let e = round(
        &slave,
        &paths,
        &clusters,
        clusters.host("h2.test").unwrap(),
        &mut feed,
    )
    .unwrap_err();
    assert!(e.contains("not a key's secret"), "{e}");
    assert!(
        slave
            .read(Path::new("/r/var/lib/srvctl/dns/transfer.key"))
            .unwrap()
            .is_none()
    );
    assert_eq!(key_file("short"), None);
}

#[test]
fn without_named_s_group_nothing_is_written() {
    let clusters = Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap();
    let paths = Paths::rooted("/r");
    let master = Recording::default();
    let mut feed = Scripted::default();
    let e = round(
        &master,
        &paths,
        &clusters,
        clusters.host("h1.test").unwrap(),
        &mut feed,
    )
    .unwrap_err();
    assert!(e.contains("no group bind or named"), "{e}");
    assert!(
        master
            .read(Path::new("/r/var/lib/srvctl/dns/transfer.key"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn base64_is_rfc_4648() {
    for (bytes, text) in [
        (&b""[..], ""),
        (b"f", "Zg=="),
        (b"fo", "Zm8="),
        (b"foo", "Zm9v"),
        (b"foobar", "Zm9vYmFy"),
        (&[0xff, 0xfe, 0x00], "//4A"),
    ] {
        assert_eq!(base64(bytes), text);
    }
}
