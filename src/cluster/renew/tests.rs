use std::path::Path;

use super::*;
use crate::cluster::sync::tests::Scripted;
use crate::system::Recording;
use crate::system::systemd::UnitState;
use crate::system::{Clock, Node};

const CLUSTERS: &str = r#"{"c": {
    "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
    "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2}}}"#;

const DAY: SignedDuration = SignedDuration::from_hours(24);

fn at(days: i64) -> Timestamp {
    Clock::START + DAY * days as i32
}

#[test]
fn a_certificate_is_due_within_thirty_days_of_its_end() {
    let now = at(0);
    assert!(
        !due(None, now),
        "a host without a certificate joins by hand"
    );
    assert!(!due(Some(at(31)), now));
    assert!(due(Some(at(29)), now));
    assert!(due(Some(at(-1)), now));
}

#[test]
fn each_step_follows_from_the_expiry_the_next_key_and_the_keys() {
    let now = at(0);
    let soon = Some(at(10));
    let bundle = Answer::Bundle("PEM".into());
    let refused = Answer::Refused("no".into());
    assert_eq!(
        host_step(Some(at(100)), now, false, false, None),
        HostStep::Wait
    );
    assert_eq!(host_step(soon, now, false, false, None), HostStep::Request);
    assert_eq!(host_step(soon, now, true, true, None), HostStep::Wait);
    // A pending request whose key is lost, or a key whose request is lost: ask again.
    assert_eq!(host_step(soon, now, false, true, None), HostStep::Request);
    assert_eq!(host_step(soon, now, true, false, None), HostStep::Request);
    assert_eq!(
        host_step(soon, now, true, true, Some(bundle)),
        HostStep::Install("PEM".into())
    );
    assert_eq!(
        host_step(soon, now, true, true, Some(refused)),
        HostStep::Refused("no".into())
    );
    assert_eq!(
        Answer::parse(&Answer::Refused("x".into()).to_json()),
        Answer::Refused("x".into())
    );
    assert!(matches!(Answer::parse("garbage"), Answer::Refused(_)));
}

/// Two hosts joined by hand, h2's certificate valid for `days`.
struct Joined {
    clusters: Clusters,
    h1: (Recording, Paths),
    h2: (Recording, Paths),
}

fn joined(days: i64) -> Joined {
    let clusters = Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap();
    let h1 = (Recording::default(), Paths::rooted("/h1"));
    let h2 = (
        Recording {
            units: vec![UnitState {
                name: "srvctl-mesh@client-1.service".into(),
                active: "active".into(),
                sub: "running".into(),
                since_usec: 0,
            }],
            ..Recording::default()
        },
        Paths::rooted("/h2"),
    );
    let ca = clusters.host("h1.test").unwrap();
    let me = clusters.host("h2.test").unwrap();
    pki::request(&h1.0, &h1.1, &clusters, ca).unwrap();
    let csr = pki::request(&h2.0, &h2.1, &clusters, me)
        .unwrap()
        .csr
        .unwrap();
    let signed = pki::sign(&h1.0, &h1.1, &clusters, ca, &csr, days).unwrap();
    pki::accept(&h2.0, &h2.1, me, &signed.bundle).unwrap();
    Joined { clusters, h1, h2 }
}

impl Joined {
    fn round(&self, host: &str, feed: &mut Scripted) -> Renewed {
        let (system, paths) = if host == "h1.test" {
            &self.h1
        } else {
            &self.h2
        };
        let me = self.clusters.host(host).unwrap();
        round(system, paths, &self.clusters, me, feed).unwrap()
    }
}

fn file(host: &(Recording, Paths), path: &str) -> Option<Vec<u8>> {
    host.0.read(&host.1.host(path)).unwrap()
}

#[test]
fn a_host_near_expiry_gets_a_new_certificate_through_the_ca_host() {
    let h = joined(20);
    let mut feed = Scripted::default();
    let old_key = file(&h.h2, pki::HOST_KEY);
    let old_cert = file(&h.h2, pki::HOST_CERT);
    let site_issuer = format!("/{}", crate::mesh::pki::CA_CERT);
    let old_site_issuer = file(&h.h2, &site_issuer);

    let asked = h.round("h2.test", &mut feed);
    assert_eq!(asked.restarts, []);
    assert!(feed.keys["csr/h2.test"].contains("CERTIFICATE REQUEST"));
    let next = h.h2.0.nodes.borrow()[&h.h2.1.host(pki::HOST_KEY_NEXT)].clone();
    assert!(matches!(next, Node::File(_, 0o600)), "{next:?}");
    assert_eq!(file(&h.h2, pki::HOST_KEY), old_key, "the working key stays");
    // Asked once: the next round waits for the CA host.
    h.round("h2.test", &mut feed);
    assert_eq!(feed.keys.len(), 1);

    let signed = h.round("h1.test", &mut feed);
    assert_eq!(signed.log, ["signed the renewal of h2.test"]);
    assert!(matches!(
        Answer::parse(&feed.keys["cert/h2.test"]),
        Answer::Bundle(_)
    ));

    let installed = h.round("h2.test", &mut feed);
    assert_eq!(
        installed.restarts,
        [
            Request::TryRestart("srvctl-etcd.service".into()),
            Request::TryRestart("srvctl-mesh@client-1.service".into()),
            Request::Start("srvctl-regenerate.service".into()),
        ]
    );
    assert!(feed.keys.is_empty(), "{:?}", feed.keys);
    assert_ne!(file(&h.h2, pki::HOST_CERT), old_cert);
    assert_ne!(
        file(&h.h2, &site_issuer),
        old_site_issuer,
        "the site issuer is renewed with the identity"
    );
    let Node::File(next_key, _) = next else {
        unreachable!()
    };
    assert_eq!(file(&h.h2, pki::HOST_KEY), Some(next_key));
    assert!(!pki::has_next_key(&h.h2.0, &h.h2.1));
    let expires = pki::expiry(&h.h2.0, &h.h2.1).unwrap();
    assert!(!due(Some(expires), h.h2.0.now()));
    assert_eq!(file(&h.h2, pki::CA_KEY), None, "the CA key stays on h1");
    assert_eq!(h.round("h2.test", &mut feed), Renewed::default());
}

#[test]
fn the_ca_host_does_not_answer_a_request_the_host_deleted_meanwhile() {
    let h = joined(20);
    let mut feed = Scripted::default();
    h.round("h2.test", &mut feed);
    h.round("h1.test", &mut feed);
    // h2 installs the answer while h1, in its next round, has read the request but not yet
    // the answers: h2 deletes both keys in between.
    feed.keys.remove("cert/h2.test");
    feed.deleted_after_read = vec!["csr/h2.test".into()];
    let again = h.round("h1.test", &mut feed);
    assert_eq!(again.log, Vec::<String>::new());
    assert!(feed.keys.is_empty(), "{:?}", feed.keys);
}

#[test]
fn the_ca_host_renews_its_own_certificate_in_two_rounds() {
    let h = joined(pki::HOST_VALIDITY_DAYS);
    let ca = h.clusters.host("h1.test").unwrap();
    let csr = pki::renewal_request(&h.h1.0, &h.h1.1, ca).unwrap();
    let signed = pki::sign(&h.h1.0, &h.h1.1, &h.clusters, ca, &csr, 20).unwrap();
    pki::accept_renewal(&h.h1.0, &h.h1.1, ca, &signed.bundle).unwrap();
    assert!(due(pki::expiry(&h.h1.0, &h.h1.1), at(0)));
    let mut feed = Scripted::default();
    h.round("h1.test", &mut feed);
    assert!(feed.keys.contains_key("csr/h1.test"));
    let renewed = h.round("h1.test", &mut feed);
    assert_eq!(
        renewed.log,
        [
            "signed the renewal of h1.test",
            "installed the renewed host certificate"
        ]
    );
    assert!(feed.keys.is_empty());
    assert!(!due(pki::expiry(&h.h1.0, &h.h1.1), at(0)));
}

#[test]
fn a_certificate_far_from_expiry_is_left_alone() {
    let h = joined(pki::HOST_VALIDITY_DAYS);
    let mut feed = Scripted::default();
    assert_eq!(h.round("h2.test", &mut feed), Renewed::default());
    assert!(feed.keys.is_empty());
    assert!(!pki::has_next_key(&h.h2.0, &h.h2.1));
}

#[test]
fn a_request_for_another_host_is_answered_with_a_refusal() {
    let h = joined(20);
    let mut feed = Scripted::default();
    h.round("h2.test", &mut feed);
    // h2's request, filed under h1's name: the CA host must not sign it for h1.
    let csr = feed.keys.remove("csr/h2.test").unwrap();
    feed.keys.insert("csr/h1.test".into(), csr);
    let signed = h.round("h1.test", &mut feed);
    assert!(
        signed.log[0].starts_with("refused the renewal of \"h1.test\""),
        "{signed:?}"
    );
    let Answer::Refused(why) = Answer::parse(&feed.keys["cert/h1.test"]) else {
        panic!("signed: {:?}", feed.keys)
    };
    assert!(why.contains("asks for h2.test"), "{why}");
    assert_eq!(
        pki::expiry(&h.h1.0, &h.h1.1).map(|t| due(Some(t), at(0))),
        Some(false)
    );

    // h2 is told of a refusal under its own name and installs nothing.
    feed.keys
        .insert("csr/h2.test".into(), "not a request".into());
    h.round("h1.test", &mut feed);
    let cert = file(&h.h2, pki::HOST_CERT);
    let told = h.round("h2.test", &mut feed);
    assert!(
        told.log[0].contains("refused this host's renewal"),
        "{told:?}"
    );
    assert_eq!(told.restarts, []);
    assert_eq!(file(&h.h2, pki::HOST_CERT), cert);
}

#[test]
fn a_bundle_for_another_key_is_refused_and_the_renewal_starts_again() {
    let h = joined(20);
    let mut feed = Scripted::default();
    h.round("h2.test", &mut feed);
    h.round("h1.test", &mut feed);
    // The next key is replaced behind the bundle's back.
    h.h2.0.remove(&h.h2.1.host(pki::HOST_KEY_NEXT)).unwrap();
    pki::renewal_request(&h.h2.0, &h.h2.1, h.clusters.host("h2.test").unwrap()).unwrap();
    let cert = file(&h.h2, pki::HOST_CERT);
    let key = file(&h.h2, pki::HOST_KEY);
    let refused = h.round("h2.test", &mut feed);
    assert!(
        refused.log[0].contains("not for this host's key"),
        "{refused:?}"
    );
    assert_eq!(refused.restarts, []);
    assert_eq!(file(&h.h2, pki::HOST_CERT), cert);
    assert_eq!(file(&h.h2, pki::HOST_KEY), key);
    assert!(feed.keys.is_empty());
    // The next round asks again, with a new key.
    h.round("h2.test", &mut feed);
    assert!(feed.keys.contains_key("csr/h2.test"));
}
