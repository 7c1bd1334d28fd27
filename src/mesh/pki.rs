//! srvctl's internal certificate authority: the *site issuer* of the HTTPS front only (the
//! certificates of sites that have no ACME certificate). On a host alone it is its own root;
//! on a host of a cluster it becomes an intermediate of the cluster's site root
//! ([`crate::cluster::pki::site`]), with the same key. It is never a host identity: the mesh
//! and etcd trust only the cluster CA ([`crate::cluster::pki`]), so a site certificate cannot
//! join them.
//!
//! The CA is created on first use under `/var/lib/srvctl/pki` (keys 0600, directory 0700).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::system::System;
use crate::system::paths::Paths;

/// The CA certificate, relative to the host root.
pub const CA_CERT: &str = "var/lib/srvctl/pki/ca.crt";
/// The CA key.
pub const CA_KEY: &str = "var/lib/srvctl/pki/ca.key";

/// Creating the CA or a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |e| PkiError::Io(path.display().to_string(), e)
}

/// The internal CA, made on first use: its certificate (PEM), its key (PEM), and whether it
/// was just created.
pub fn ensure_ca(system: &dyn System, paths: &Paths) -> Result<(String, String, bool), PkiError> {
    let p = |rel: &str| paths.host(&format!("/{rel}"));
    let dir = p("var/lib/srvctl/pki");
    system.create_dir(&dir, 0o700).map_err(io(&dir))?;
    let mut created = false;
    let (ca_cert, ca_key) = match (
        system.read(&p(CA_CERT)).map_err(io(&p(CA_CERT)))?,
        system.read(&p(CA_KEY)).map_err(io(&p(CA_KEY)))?,
    ) {
        (Some(c), Some(k)) => (
            String::from_utf8_lossy(&c).into_owned(),
            String::from_utf8_lossy(&k).into_owned(),
        ),
        _ => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(DnType::CommonName, "srvctl internal CA");
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_after = rcgen::date_time_ymd(2050, 1, 1);
            let cert = params.self_signed(&key)?;
            write(system, &p(CA_KEY), &key.serialize_pem(), 0o600)?;
            write(system, &p(CA_CERT), &cert.pem(), 0o644)?;
            created = true;
            (cert.pem(), key.serialize_pem())
        }
    };
    Ok((ca_cert, ca_key, created))
}

/// The internal CA as an issuer of certificates (made on first use), with its certificate
/// (PEM) and whether it was just created.
pub fn issuer(
    system: &dyn System,
    paths: &Paths,
) -> Result<(Issuer<'static, KeyPair>, String, bool), PkiError> {
    let (ca_cert, ca_key, created) = ensure_ca(system, paths)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, KeyPair::from_pem(&ca_key)?)?;
    Ok((issuer, ca_cert, created))
}

/// The SHA-256 fingerprint (hex) of the first certificate of `pem_text` (of the text itself
/// if it holds no PEM block): what names a site issuer in a certificate's metadata.
pub fn fingerprint(pem_text: &str) -> String {
    use sha2::Digest;
    let der = pem::parse(pem_text)
        .map(|p| p.into_contents())
        .unwrap_or_else(|_| pem_text.as_bytes().to_vec());
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The [`fingerprint`] of the internal CA's certificate, `None` while there is none.
pub fn issuer_fingerprint(system: &dyn System, paths: &Paths) -> Result<Option<String>, PkiError> {
    let path = paths.host(&format!("/{CA_CERT}"));
    Ok(system
        .read(&path)
        .map_err(io(&path))?
        .map(|pem| fingerprint(&String::from_utf8_lossy(&pem))))
}

fn write(system: &dyn System, path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    system
        .write(path, text.as_bytes(), mode, true)
        .map_err(io(path))
}
