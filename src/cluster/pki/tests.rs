use super::*;
use crate::system::Recording;

const CLUSTERS: &str = r#"{"c": {
    "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
    "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2}},
  "other": {
    "x1.test": {"host_ip": "192.0.2.9", "hostnet": 1, "role": "ca"},
    "x2.test": {"host_ip": "192.0.2.10", "hostnet": 2}}}"#;

struct Hosts {
    clusters: Clusters,
    ca: (Recording, Paths),
    h2: (Recording, Paths),
}

fn hosts() -> Hosts {
    Hosts {
        clusters: Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap(),
        ca: (Recording::default(), Paths::rooted("/h1")),
        h2: (Recording::default(), Paths::rooted("/h2")),
    }
}

fn host<'c>(h: &'c Hosts, name: &str) -> &'c Host {
    h.clusters.host(name).unwrap()
}

fn file(sys: &Recording, paths: &Paths, rel: &str) -> Option<Vec<u8>> {
    sys.read(&paths.host(rel)).unwrap()
}

/// `csr` signed by the CA host h1, for the host validity.
fn signed_by_ca(h: &Hosts, csr: &str) -> Signed {
    let (ca_sys, ca_paths) = &h.ca;
    sign(
        ca_sys,
        ca_paths,
        &h.clusters,
        host(h, "h1.test"),
        csr,
        HOST_VALIDITY_DAYS,
    )
    .unwrap()
}

/// Each PEM block of `text`, as text.
fn pems(text: &str) -> Vec<String> {
    text.split_inclusive("-----END CERTIFICATE-----\n")
        .map(str::to_owned)
        .collect()
}

/// A CSR for `names` (CN first) by a fresh key.
fn csr_for(cn: &str, sans: Vec<SanType>) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .serialize_request(&KeyPair::generate().unwrap())
        .unwrap()
        .pem()
        .unwrap()
}

#[test]
fn the_ca_host_signs_a_request_and_the_host_accepts_it() {
    let h = hosts();
    let (ca_sys, ca_paths) = &h.ca;
    let (sys2, paths2) = &h.h2;
    let own = request(ca_sys, ca_paths, &h.clusters, host(&h, "h1.test")).unwrap();
    assert!(own.installed && own.csr.is_none());
    assert!(file(ca_sys, ca_paths, HOST_CERT).is_some());
    let asked = request(sys2, paths2, &h.clusters, host(&h, "h2.test")).unwrap();
    assert!(asked.key_created && !asked.installed);
    let signed = signed_by_ca(&h, &asked.csr.unwrap());
    assert_eq!(signed.host, "h2.test");
    let accepted = accept(sys2, paths2, host(&h, "h2.test"), &signed.bundle).unwrap();
    assert!(accepted.ca_installed);
    assert!(has_identity(sys2, paths2));
    assert_eq!(file(sys2, paths2, CA_CERT), file(ca_sys, ca_paths, CA_CERT));
    assert_eq!(
        file(sys2, paths2, CA_KEY),
        None,
        "the CA key left the CA host"
    );
    assert!(file(ca_sys, ca_paths, CA_KEY).is_some());
    // A second request keeps the key.
    let again = request(sys2, paths2, &h.clusters, host(&h, "h2.test")).unwrap();
    assert!(!again.key_created);
}

#[test]
fn a_request_for_other_names_is_refused() {
    let h = hosts();
    let (ca_sys, ca_paths) = &h.ca;
    let ca = host(&h, "h1.test");
    let dns = |n: &str| SanType::DnsName(n.try_into().unwrap());
    let ip = |s: &str| SanType::IpAddress(s.parse().unwrap());
    for (csr, said) in [
        (
            csr_for("h2.test", vec![dns("h2.test")]),
            "must name exactly",
        ),
        (
            csr_for(
                "h2.test",
                vec![dns("h2.test"), ip("192.0.2.2"), dns("www.example.com")],
            ),
            "must name exactly",
        ),
        (
            csr_for("h2.test", vec![dns("h2.test"), ip("192.0.2.1")]),
            "must name exactly",
        ),
        (
            csr_for("x2.test", vec![dns("x2.test"), ip("192.0.2.10")]),
            "not a host of cluster",
        ),
        (
            csr_for("web.example.com", vec![dns("web.example.com")]),
            "not a host of cluster",
        ),
        ("not a csr".to_owned(), "not a valid certificate request"),
    ] {
        let e = sign(ca_sys, ca_paths, &h.clusters, ca, &csr, HOST_VALIDITY_DAYS)
            .unwrap_err()
            .to_string();
        assert!(e.contains(said), "{said}: {e}");
    }
    let good = csr_for("h2.test", vec![dns("h2.test"), ip("192.0.2.2")]);
    assert!(sign(ca_sys, ca_paths, &h.clusters, ca, &good, HOST_VALIDITY_DAYS).is_ok());
    let e = sign(
        &h.h2.0,
        &h.h2.1,
        &h.clusters,
        host(&h, "h2.test"),
        &good,
        HOST_VALIDITY_DAYS,
    )
    .unwrap_err();
    assert!(matches!(e, PkiError::NotCaHost { .. }), "{e}");
    assert!(file(&h.h2.0, &h.h2.1, CA_KEY).is_none());
}

#[test]
fn a_wrong_bundle_is_refused_and_changes_nothing() {
    let h = hosts();
    let (ca_sys, ca_paths) = &h.ca;
    let (sys2, paths2) = &h.h2;
    let me = host(&h, "h2.test");
    let csr = request(sys2, paths2, &h.clusters, me).unwrap().csr.unwrap();
    let signed = signed_by_ca(&h, &csr);
    // A certificate for the same names but another key (a second request's).
    let other = csr_for(
        "h2.test",
        vec![
            SanType::DnsName("h2.test".try_into().unwrap()),
            SanType::IpAddress("192.0.2.2".parse().unwrap()),
        ],
    );
    let foreign = signed_by_ca(&h, &other);
    // The same request signed by another cluster's CA.
    let stranger = (Recording::default(), Paths::rooted("/x1"));
    let x1 = host(&h, "x1.test");
    request(&stranger.0, &stranger.1, &h.clusters, x1).unwrap();
    let (issuer, other_ca) = ca_issuer(&stranger.0, &Files::new(&stranger.1)).unwrap();
    let cert = CertificateSigningRequestParams::from_pem(&csr)
        .unwrap()
        .signed_by(&issuer)
        .unwrap();
    let blocks = pems(&signed.bundle);
    let [host_pem, ca_pem, site_pem, root_pem] = [0, 1, 2, 3].map(|i| blocks[i].as_str());
    let before = sys2.writes.borrow().len();
    for (bundle, said) in [
        (foreign.bundle.clone(), "not for this host's key"),
        (
            format!("{}{ca_pem}", cert.pem()),
            "not issued by the bundle's cluster CA",
        ),
        (host_pem.to_owned(), "two certificates"),
        (format!("{host_pem}{ca_pem}{ca_pem}"), "two certificates"),
        (format!("{ca_pem}{ca_pem}"), "not for this host's key"),
        (format!("{host_pem}{host_pem}"), "not a srvctl cluster CA"),
        (format!("{host_pem}{ca_pem}{site_pem}"), "two certificates"),
        (
            format!("{host_pem}{ca_pem}{site_pem}{site_pem}"),
            "fourth certificate is not a srvctl cluster site root",
        ),
        (
            format!("{host_pem}{ca_pem}{site_pem}{ca_pem}"),
            "fourth certificate is not a srvctl cluster site root",
        ),
        (
            format!("{host_pem}{ca_pem}{host_pem}{root_pem}"),
            "not issued by the bundle's site root",
        ),
    ] {
        let e = accept(sys2, paths2, me, &bundle).unwrap_err().to_string();
        assert!(e.contains(said), "{said}: {e}");
    }
    assert_eq!(
        sys2.writes.borrow().len(),
        before,
        "a refused bundle wrote something"
    );
    accept(sys2, paths2, me, &signed.bundle).unwrap();
    // Now that h2 trusts its CA, another CA's bundle is refused.
    let e = accept(sys2, paths2, me, &format!("{}{other_ca}", cert.pem()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not the cluster CA this host already trusts"),
        "{e}"
    );
    let e = accept(ca_sys, ca_paths, host(&h, "h1.test"), &signed.bundle).unwrap_err();
    assert!(e.to_string().contains("is the CA host"), "{e}");
}

/// The certificate of each PEM block of `text`, parsed.
fn certs_of(text: &str) -> Vec<Vec<u8>> {
    split_pems(text).unwrap()
}

fn verifies(cert: &[u8], by: &[u8]) -> bool {
    let (_, cert) = X509Certificate::from_der(cert).unwrap();
    let (_, by) = X509Certificate::from_der(by).unwrap();
    cert.verify_signature(Some(by.public_key())).is_ok()
}

#[test]
fn every_host_s_site_issuer_chains_to_the_one_site_root_whose_key_stays_on_the_ca_host() {
    let h = hosts();
    let (ca_sys, ca_paths) = &h.ca;
    let (sys2, paths2) = &h.h2;
    request(ca_sys, ca_paths, &h.clusters, host(&h, "h1.test")).unwrap();
    let asked = request(sys2, paths2, &h.clusters, host(&h, "h2.test")).unwrap();
    let csr = asked.csr.unwrap();
    assert_eq!(csr.matches("BEGIN CERTIFICATE REQUEST").count(), 2, "{csr}");
    let signed = signed_by_ca(&h, &csr);
    accept(sys2, paths2, host(&h, "h2.test"), &signed.bundle).unwrap();

    let root = file(ca_sys, ca_paths, site::ROOT_CERT).unwrap();
    assert_eq!(file(sys2, paths2, site::ROOT_CERT), Some(root.clone()));
    assert!(file(ca_sys, ca_paths, site::ROOT_KEY).is_some());
    assert_eq!(
        file(sys2, paths2, site::ROOT_KEY),
        None,
        "the site root's key moved"
    );
    let root = certs_of(&String::from_utf8(root).unwrap()).remove(0);
    let cluster_ca =
        certs_of(&String::from_utf8(file(ca_sys, ca_paths, CA_CERT).unwrap()).unwrap()).remove(0);
    assert_ne!(root, cluster_ca, "the site root is not the cluster CA");

    // Each host's own site issuer, with its own key, issued by the one root, so a site
    // certificate issued on either host verifies against it, and not against the cluster CA.
    let ca_rel = format!("/{}", crate::mesh::pki::CA_KEY);
    let key1 = file(ca_sys, ca_paths, &ca_rel).unwrap();
    let key2 = file(sys2, paths2, &ca_rel).unwrap();
    assert_ne!(key1, key2);
    for (sys, paths) in [&h.ca, &h.h2] {
        let (issuer, issuer_pem, created) = crate::mesh::pki::issuer(sys, paths).unwrap();
        assert!(!created);
        let issuer_der = certs_of(&issuer_pem).remove(0);
        assert!(verifies(&issuer_der, &root));
        assert!(!verifies(&issuer_der, &cluster_ca));
        let names = ["web.example.com".to_owned()];
        let (chain, _, meta) =
            crate::front::certs::issue_internal(&issuer, &issuer_pem, &names, sys.now()).unwrap();
        let chain = certs_of(&chain);
        assert_eq!(chain.len(), 2, "leaf, then the site issuer");
        assert!(verifies(&chain[0], &chain[1]) && chain[1] == issuer_der);
        assert_eq!(
            meta.issuer,
            Some(crate::mesh::pki::fingerprint(&issuer_pem))
        );
    }
}

#[test]
fn a_site_issuer_for_another_host_or_key_is_refused_and_changes_nothing() {
    let h = hosts();
    let (ca_sys, ca_paths) = &h.ca;
    let (sys2, paths2) = &h.h2;
    let ca = host(&h, "h1.test");
    let me = host(&h, "h2.test");
    let csr = request(sys2, paths2, &h.clusters, me).unwrap().csr.unwrap();
    let host_csr = csr
        .split_inclusive("-----END CERTIFICATE REQUEST-----\n")
        .next()
        .unwrap();
    let sign_it = |csr: &str| sign(ca_sys, ca_paths, &h.clusters, ca, csr, HOST_VALIDITY_DAYS);
    for (csr, said) in [
        (
            format!(
                "{host_csr}{}",
                csr_for("srvctl site issuer of h1.test", vec![])
            ),
            "the site issuer of h2.test",
        ),
        (
            format!(
                "{host_csr}{}",
                csr_for(
                    "srvctl site issuer of h2.test",
                    vec![SanType::DnsName("h2.test".try_into().unwrap())]
                )
            ),
            "no other names",
        ),
        (format!("{csr}{host_csr}"), "at most two requests"),
    ] {
        let e = sign_it(&csr).unwrap_err().to_string();
        assert!(e.contains(said), "{said}: {e}");
    }
    assert!(
        file(ca_sys, ca_paths, site::ROOT_KEY).is_none(),
        "a refused request made a root"
    );

    // A site issuer for another key than h2's internal CA.
    let foreign = sign_it(&format!(
        "{host_csr}{}",
        csr_for("srvctl site issuer of h2.test", vec![])
    ))
    .unwrap();
    let before = sys2.writes.borrow().len();
    let e = accept(sys2, paths2, me, &foreign.bundle)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not for this host's internal CA key"), "{e}");
    assert_eq!(
        sys2.writes.borrow().len(),
        before,
        "a refused bundle wrote something"
    );
    let good = sign_it(&csr).unwrap();
    accept(sys2, paths2, me, &good.bundle).unwrap();
}
