//! The cluster's site issuer: one root for every site certificate of the cluster, whose key
//! lives only on the CA host, beside the cluster CA but apart from it (a site certificate is
//! never a host identity). Each host's internal CA ([`crate::mesh::pki`], the issuer of its
//! front's internal site certificates) becomes an intermediate of that root: the host asks
//! for it with a second CSR, made with the internal CA's own key, in the same request as its
//! identity, and the CA host signs both. So a site certificate issued by any host verifies
//! against the one root, and no key moves.
//!
//! ```text
//!  pki/cluster/site-ca.crt   the cluster's site root (on every host: what clients trust)
//!  pki/cluster/site-ca.key   its key (on the CA host only)
//!  pki/ca.crt                this host's site issuer: issued by the site root once accepted
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    Files, PkiError, certificate_pem, check_root, day, is_new_root, read_text, refused,
    root_issuer, valid_now, write,
};
use crate::config::cluster::Host;
use crate::mesh;
use crate::system::System;
use crate::system::paths::Paths;

/// The cluster's site root certificate (on every host that accepted its bundle).
pub const ROOT_CERT: &str = "/var/lib/srvctl/pki/cluster/site-ca.crt";
/// The cluster's site root key: only on the CA host.
pub const ROOT_KEY: &str = "/var/lib/srvctl/pki/cluster/site-ca.key";
/// The common name of every cluster's site root.
pub(super) const ROOT_NAME: &str = "srvctl cluster site root";

/// The common name of `host`'s site issuer.
fn issuer_name(host: &str) -> String {
    format!("srvctl site issuer of {host}")
}

/// The CSR (PEM) of `me`'s site issuer, made with the key of its internal CA (made if absent).
pub(super) fn request(system: &dyn System, paths: &Paths, me: &Host) -> Result<String, PkiError> {
    let (_, key, _) = mesh::pki::ensure_ca(system, paths)?;
    let key = KeyPair::from_pem(&key)?;
    Ok(issuer_params(&me.name)?.serialize_request(&key)?.pem()?)
}

fn issuer_params(host: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, issuer_name(host));
    Ok(params)
}

/// Whether `params` (a parsed CSR) asks for exactly `host`'s site issuer: one common name, no
/// other names.
pub(super) fn check_request(params: &CertificateParams, host: &Host) -> Result<(), PkiError> {
    let want = issuer_name(&host.name);
    let subject: Vec<_> = params.distinguished_name.iter().collect();
    let named = match subject.as_slice() {
        [(DnType::CommonName, DnValue::Utf8String(s))] => *s == want,
        [(DnType::CommonName, DnValue::PrintableString(s))] => s.as_str() == want,
        _ => false,
    };
    if !named || !params.subject_alt_names.is_empty() {
        return Err(refused(format!(
            "the second certificate request must ask for exactly the site issuer of {} \
             (common name {want:?}, no other names)",
            host.name
        )));
    }
    Ok(())
}

/// Issue `host`'s site issuer for `public_key`, valid for `valid_days`, by the cluster's site
/// root (made on first use): the certificate, then the root's (PEM).
pub(super) fn issue(
    system: &dyn System,
    files: &Files,
    host: &Host,
    public_key: &impl PublicKeyData,
    valid_days: i64,
) -> Result<String, PkiError> {
    let (root, root_pem) = root_issuer(
        system,
        files,
        &files.site_cert,
        &files.site_key,
        (ROOT_NAME, 1),
    )?;
    let mut params = issuer_params(&host.name)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ymd = |(y, m, d)| rcgen::date_time_ymd(y, m, d);
    params.not_before = ymd(day(system.now(), -1));
    params.not_after = ymd(day(system.now(), valid_days));
    let cert = params.signed_by(public_key, &root)?;
    Ok(format!("{}{root_pem}", cert.pem()))
}

/// A site issuer of a bundle, checked and ready to install.
pub(super) struct Checked {
    issuer_pem: String,
    root_pem: String,
    root_is_new: bool,
}

/// Check the site issuer `issuer_der` and the root `root_der` of a bundle for host `me`: the
/// root a self-signed site root (the one this host trusts already, if any), the issuer signed
/// by it, for this host's internal CA key and name, and valid now.
pub(super) fn check(
    system: &dyn System,
    paths: &Paths,
    files: &Files,
    me: &Host,
    issuer_der: &[u8],
    root_der: &[u8],
) -> Result<Checked, PkiError> {
    let parse = |der, what| {
        X509Certificate::from_der(der)
            .map(|(_, c)| c)
            .map_err(|e| refused(format!("the {what} certificate does not parse: {e}")))
    };
    let root = parse(root_der, "site root")?;
    let issuer = parse(issuer_der, "site issuer")?;
    check_root(&root, ROOT_NAME, "fourth")?;
    if issuer.verify_signature(Some(root.public_key())).is_err() {
        return Err(refused(
            "the site issuer is not issued by the bundle's site root",
        ));
    }
    let key =
        read_text(system, &paths.host(&format!("/{}", mesh::pki::CA_KEY)))?.ok_or_else(|| {
            refused("this host has no internal CA key: run `sc cluster request` first")
        })?;
    let key = KeyPair::from_pem(&key)?;
    if issuer.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(refused(
            "the site issuer is not for this host's internal CA key: it answers another request",
        ));
    }
    let want = issuer_name(&me.name);
    let named = issuer
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().ok())
        .eq([Some(want.as_str())]);
    let is_ca = issuer
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !named || !is_ca {
        return Err(refused(format!(
            "the bundle's third certificate is not the site issuer of {}",
            me.name
        )));
    }
    valid_now(&issuer, system.now(), "site issuer")?;
    Ok(Checked {
        issuer_pem: certificate_pem(issuer_der),
        root_pem: certificate_pem(root_der),
        root_is_new: is_new_root(system, &files.site_cert, root_der, "site root")?,
    })
}

impl Checked {
    /// Install the root (if new) and make the site issuer this host's internal CA
    /// certificate; srvctl-regenerate then issues every internal site certificate again.
    pub(super) fn install(
        self,
        system: &dyn System,
        paths: &Paths,
        files: &Files,
    ) -> Result<(), PkiError> {
        if self.root_is_new {
            write(system, &files.site_cert, &self.root_pem, 0o644)?;
        }
        let ca = paths.host(&format!("/{}", mesh::pki::CA_CERT));
        write(system, &ca, &self.issuer_pem, 0o644)
    }
}
