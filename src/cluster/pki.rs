//! The cluster's trust root: one cluster CA whose key lives only on the CA host of the cluster
//! (`"role": "ca"` in clusters.json), and one identity per host (its mesh and etcd
//! certificate), issued by that CA for a CSR the host made itself. Keys never move: a host's
//! key is made on the host and stays there; only CSRs and certificates travel.
//!
//! ```text
//!  h2: sc cluster request > h2.csr     host.key (made if absent), host.csr; prints the CSR
//!  h1: sc cluster sign h2.csr > h2.pem the CA host checks the names against clusters.json
//!  h2: sc cluster accept h2.pem        checks the bundle against host.key and installs it
//! ```
//!
//! On the CA host `sc cluster request` makes the CA (on first use) and signs the host's own
//! certificate directly. The same request asks for the host's site issuer ([`site`]): the
//! internal CA of `/var/lib/srvctl/pki`, the issuer of the HTTPS front's internal certificates,
//! becomes an intermediate of the cluster's site root, a second root apart from the cluster
//! CA, so a site certificate is never a host identity.

pub mod site;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::cluster::{Clusters, Host};
use crate::system::System;
use crate::system::paths::Paths;

/// The cluster trust root of this host (0700).
pub const DIR: &str = "/var/lib/srvctl/pki/cluster";
/// The cluster CA's certificate (on every host).
pub const CA_CERT: &str = "/var/lib/srvctl/pki/cluster/ca.crt";
/// The cluster CA's key: only on the CA host.
pub const CA_KEY: &str = "/var/lib/srvctl/pki/cluster/ca.key";
/// This host's identity key: made here, never leaves the host.
pub const HOST_KEY: &str = "/var/lib/srvctl/pki/cluster/host.key";
/// The key of this host's next identity, while its renewal is pending: it replaces
/// [`HOST_KEY`] only once the certificate for it is installed.
pub const HOST_KEY_NEXT: &str = "/var/lib/srvctl/pki/cluster/host.key.next";
/// This host's certificate request.
pub const HOST_CSR: &str = "/var/lib/srvctl/pki/cluster/host.csr";
/// This host's identity, issued by the cluster CA.
pub const HOST_CERT: &str = "/var/lib/srvctl/pki/cluster/host.crt";

/// The common name of every cluster CA.
const CA_NAME: &str = "srvctl cluster CA";
/// How long a host identity is valid, in days.
pub const HOST_VALIDITY_DAYS: i64 = 365;

/// A step of the cluster trust root failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Making a key, a request or a certificate failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// This host is not in clusters.json.
    #[error("this host ({0}) is not defined in clusters.json")]
    UnknownHost(String),
    /// Only the CA host signs.
    #[error(
        "only the CA host of cluster {cluster:?} ({ca}) signs certificate requests; this is {host}"
    )]
    NotCaHost {
        /// The cluster.
        cluster: String,
        /// Its CA host.
        ca: String,
        /// This host.
        host: String,
    },
    /// A CSR or a bundle was refused; nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl From<crate::mesh::pki::PkiError> for PkiError {
    fn from(e: crate::mesh::pki::PkiError) -> Self {
        match e {
            crate::mesh::pki::PkiError::Io(path, e) => Self::Io(path, e),
            crate::mesh::pki::PkiError::Cert(e) => Self::Cert(e),
        }
    }
}

impl crate::failure::Classify for PkiError {
    fn kind(&self) -> crate::failure::FailureKind {
        use crate::failure::FailureKind;
        match self {
            Self::Io(..) => FailureKind::System,
            Self::UnknownHost(_) => FailureKind::Config,
            Self::NotCaHost { .. } => FailureKind::Permission,
            Self::Cert(_) | Self::Refused(_) => FailureKind::Invalid,
        }
    }
}

fn refused(msg: impl Into<String>) -> PkiError {
    PkiError::Refused(msg.into())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |e| PkiError::Io(path.display().to_string(), e)
}

fn read_text(system: &dyn System, path: &Path) -> Result<Option<String>, PkiError> {
    Ok(system
        .read(path)
        .map_err(io(path))?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn write(system: &dyn System, path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    system
        .write(path, text.as_bytes(), mode, true)
        .map_err(io(path))
}

/// The files of the trust root under `paths`.
struct Files {
    dir: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    host_key: PathBuf,
    host_key_next: PathBuf,
    host_csr: PathBuf,
    host_cert: PathBuf,
    site_cert: PathBuf,
    site_key: PathBuf,
}

impl Files {
    fn new(paths: &Paths) -> Self {
        Self {
            dir: paths.host(DIR),
            ca_cert: paths.host(CA_CERT),
            ca_key: paths.host(CA_KEY),
            host_key: paths.host(HOST_KEY),
            host_key_next: paths.host(HOST_KEY_NEXT),
            host_csr: paths.host(HOST_CSR),
            host_cert: paths.host(HOST_CERT),
            site_cert: paths.host(site::ROOT_CERT),
            site_key: paths.host(site::ROOT_KEY),
        }
    }
}

/// Whether this host holds its cluster identity (`cluster/host.crt`): the mesh and the etcd
/// member need it.
pub fn has_identity(system: &dyn System, paths: &Paths) -> bool {
    matches!(system.read(&paths.host(HOST_CERT)), Ok(Some(_)))
}

/// What `sc cluster request` did.
#[derive(Debug, Clone, Serialize)]
pub struct Requested {
    /// This host.
    pub host: String,
    /// Whether the host key was made just now.
    pub key_created: bool,
    /// The CSRs (PEM: the host's identity, then its site issuer) to take to the CA host;
    /// `None` on the CA host, whose certificates were signed directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Whether the host's certificate was installed (on the CA host).
    pub installed: bool,
}

/// `sc cluster request` on host `me`: make the host key if absent and the CSR for `me`
/// (CN = fqdn, SAN = fqdn and host_ip), followed by the CSR of its site issuer. On the CA
/// host, also make the cluster CA and the site root if absent and install the host's own
/// certificates, signed directly.
pub fn request(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
) -> Result<Requested, PkiError> {
    let files = Files::new(paths);
    system
        .create_dir(&files.dir, 0o700)
        .map_err(io(&files.dir))?;
    let (key, key_created) = key_at(system, &files.host_key)?;
    let csr = host_params(me)?.serialize_request(&key)?.pem()?;
    let csr = format!("{csr}{}", site::request(system, paths, me)?);
    write(system, &files.host_csr, &csr, 0o644)?;
    if !me.ca {
        return Ok(Requested {
            host: me.name.clone(),
            key_created,
            csr: Some(csr),
            installed: false,
        });
    }
    let signed = sign(system, paths, clusters, me, &csr, HOST_VALIDITY_DAYS)?;
    accept_bundle(system, paths, &files, &files.host_key, me, &signed.bundle)?;
    Ok(Requested {
        host: me.name.clone(),
        key_created,
        csr: None,
        installed: true,
    })
}

/// The key at `path`, made (0600) if absent; whether it was made just now.
fn key_at(system: &dyn System, path: &Path) -> Result<(KeyPair, bool), PkiError> {
    match read_text(system, path)? {
        Some(pem) => Ok((KeyPair::from_pem(&pem)?, false)),
        None => {
            let key = KeyPair::generate()?;
            write(system, path, &key.serialize_pem(), 0o600)?;
            Ok((key, true))
        }
    }
}

/// The renewal of host `me`'s identity: the CSR (PEM) for its names and its next key
/// ([`HOST_KEY_NEXT`], made if absent), followed by the CSR of its site issuer (whose key
/// stays). The working key stays in place until [`accept_renewal`] installs the certificate
/// for the next one.
pub fn renewal_request(system: &dyn System, paths: &Paths, me: &Host) -> Result<String, PkiError> {
    let files = Files::new(paths);
    system
        .create_dir(&files.dir, 0o700)
        .map_err(io(&files.dir))?;
    let (key, _) = key_at(system, &files.host_key_next)?;
    let csr = host_params(me)?.serialize_request(&key)?.pem()?;
    Ok(format!("{csr}{}", site::request(system, paths, me)?))
}

/// Whether a renewal of this host's identity is pending (its next key exists).
pub fn has_next_key(system: &dyn System, paths: &Paths) -> bool {
    matches!(system.read(&paths.host(HOST_KEY_NEXT)), Ok(Some(_)))
}

/// When this host's certificate ([`HOST_CERT`]) expires; `None` when there is none (or it
/// does not parse).
pub fn expiry(system: &dyn System, paths: &Paths) -> Option<jiff::Timestamp> {
    let pem = read_text(system, &paths.host(HOST_CERT)).ok()??;
    let der = split_pems(&pem).ok()?.into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

/// The names of a host identity: CN = fqdn, SAN = fqdn and host_ip.
fn host_params(host: &Host) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(vec![host.name.clone()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(host.host_ip)));
    params
        .distinguished_name
        .push(DnType::CommonName, host.name.as_str());
    Ok(params)
}

/// The cluster CA, made on first use: on the CA host only.
fn ca_issuer(
    system: &dyn System,
    files: &Files,
) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    root_issuer(system, files, &files.ca_cert, &files.ca_key, (CA_NAME, 0))
}

/// The self-signed root named `name` at `cert_path` and `key_path`, made on first use (on
/// the CA host only), with `levels` CAs allowed below it: the cluster CA (0) signs host
/// identities only, the site root (1) signs site issuers, which sign site certificates.
fn root_issuer(
    system: &dyn System,
    files: &Files,
    cert_path: &Path,
    key_path: &Path,
    (name, levels): (&str, u8),
) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    system
        .create_dir(&files.dir, 0o700)
        .map_err(io(&files.dir))?;
    let (cert, key) = match (read_text(system, cert_path)?, read_text(system, key_path)?) {
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(refused(format!(
                "{} exists without its key: this host holds another CA host's certificate; \
                 only the CA host signs",
                cert_path.display()
            )));
        }
        _ => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(levels));
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_after = rcgen::date_time_ymd(2050, 1, 1);
            let cert = params.self_signed(&key)?.pem();
            write(system, key_path, &key.serialize_pem(), 0o600)?;
            write(system, cert_path, &cert, 0o644)?;
            (cert, key.serialize_pem())
        }
    };
    Ok((
        Issuer::from_ca_cert_pem(&cert, KeyPair::from_pem(&key)?)?,
        cert,
    ))
}

/// What `sc cluster sign` made.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The host the certificate is for.
    pub host: String,
    /// The host's certificate and then the cluster CA's, then (when asked for) the host's
    /// site issuer and the cluster's site root (PEM), for `sc cluster accept`.
    pub bundle: String,
}

/// `sc cluster sign` on the CA host `me`: check that `csr_pem` asks for exactly the names of
/// a host of `me`'s cluster (CN = fqdn, SAN = fqdn and its host_ip) and for nothing else, and
/// issue its identity (serverAuth and clientAuth, valid for `valid_days` from now, normally
/// [`HOST_VALIDITY_DAYS`]) by the cluster CA.
pub fn sign(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
    csr_pem: &str,
    valid_days: i64,
) -> Result<Signed, PkiError> {
    if !me.ca {
        return Err(PkiError::NotCaHost {
            cluster: me.cluster.clone(),
            ca: clusters.ca_host(me).name.clone(),
            host: me.name.clone(),
        });
    }
    let (csr, site_csr) = parse_requests(csr_pem)?;
    let host = requested_host(clusters, me, &csr.params)?;
    if let Some(site_csr) = &site_csr {
        site::check_request(&site_csr.params, host)?;
    }
    let files = Files::new(paths);
    let (issuer, ca_pem) = ca_issuer(system, &files)?;
    let mut params = host_params(host)?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    // From yesterday (clocks differ a little) to `valid_days` from now.
    let ymd = |(y, m, d)| rcgen::date_time_ymd(y, m, d);
    params.not_before = ymd(day(system.now(), -1));
    params.not_after = ymd(day(system.now(), valid_days));
    let cert = params.signed_by(&csr.public_key, &issuer)?;
    let site = match &site_csr {
        Some(site_csr) => site::issue(system, &files, host, &site_csr.public_key, valid_days)?,
        None => String::new(),
    };
    Ok(Signed {
        host: host.name.clone(),
        bundle: format!("{}{ca_pem}{site}", cert.pem()),
    })
}

/// The certificate requests of `text`: the host's identity, then (optionally) its site
/// issuer's; anything else is refused.
fn parse_requests(
    text: &str,
) -> Result<
    (
        CertificateSigningRequestParams,
        Option<CertificateSigningRequestParams>,
    ),
    PkiError,
> {
    let invalid = |e: String| {
        refused(format!(
            "not a valid certificate request (PEM, signed by its key, names only): {e}"
        ))
    };
    let blocks = pem::parse_many(text).map_err(|e| invalid(e.to_string()))?;
    let mut requests = blocks.iter().map(|block| {
        if block.tag() != "CERTIFICATE REQUEST" {
            return Err(invalid(format!(
                "a {} block",
                crate::model::names::shown(block.tag())
            )));
        }
        CertificateSigningRequestParams::from_der(&block.contents().into())
            .map_err(|e| invalid(e.to_string()))
    });
    let host = requests
        .next()
        .ok_or_else(|| invalid("no PEM block".to_owned()))??;
    let site = requests.next().transpose()?;
    if requests.next().is_some() {
        return Err(refused(
            "a certificate request holds at most two requests: the host's identity, then its \
             site issuer",
        ));
    }
    Ok((host, site))
}

/// The day `days` from `now` (UTC), as rcgen takes it.
fn day(now: jiff::Timestamp, days: i64) -> (i32, u8, u8) {
    let t = now
        .saturating_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(now);
    let d = jiff::tz::Offset::UTC.to_datetime(t).date();
    (i32::from(d.year()), d.month() as u8, d.day() as u8)
}

/// The host of `me`'s cluster whose names `params` (a parsed CSR) asks for, exactly.
fn requested_host<'c>(
    clusters: &'c Clusters,
    me: &Host,
    params: &CertificateParams,
) -> Result<&'c Host, PkiError> {
    let mut cn = None;
    for (kind, value) in params.distinguished_name.iter() {
        match (kind, value) {
            (DnType::CommonName, DnValue::Utf8String(s)) if cn.is_none() => cn = Some(s.clone()),
            (DnType::CommonName, DnValue::PrintableString(s)) if cn.is_none() => {
                cn = Some(s.as_str().to_owned())
            }
            _ => {
                return Err(refused(
                    "the certificate request's subject must be exactly one common name (the host's name)",
                ));
            }
        }
    }
    let cn = cn.ok_or_else(|| refused("the certificate request names no host (no common name)"))?;
    let host = clusters.members(me).find(|h| h.name == cn).ok_or_else(|| {
        refused(format!(
            "{} is not a host of cluster {:?} in clusters.json",
            crate::model::names::shown(&cn),
            me.cluster
        ))
    })?;
    let asked: BTreeSet<String> = params.subject_alt_names.iter().map(san_text).collect();
    let expected: BTreeSet<String> = host_params(host)?
        .subject_alt_names
        .iter()
        .map(san_text)
        .collect();
    if asked != expected {
        return Err(refused(format!(
            "the certificate request for {} must name exactly {}; it names {}",
            host.name,
            expected.into_iter().collect::<Vec<_>>().join(", "),
            if asked.is_empty() {
                "nothing else".to_owned()
            } else {
                asked.into_iter().collect::<Vec<_>>().join(", ")
            }
        )));
    }
    if params.is_ca != IsCa::NoCa {
        return Err(refused(format!(
            "the certificate request for {} asks for a CA certificate",
            host.name
        )));
    }
    Ok(host)
}

fn san_text(san: &SanType) -> String {
    match san {
        SanType::DnsName(name) => format!("DNS:{}", name.as_str()),
        SanType::IpAddress(ip) => format!("IP:{ip}"),
        other => format!("{other:?}"),
    }
}

/// What `sc cluster accept` installed.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// This host.
    pub host: String,
    /// Whether the cluster CA's certificate was new on this host.
    pub ca_installed: bool,
    /// Whether the bundle made this host's site issuer one of the cluster's site root.
    pub site_issuer_installed: bool,
}

/// `sc cluster accept` on host `me` (not the CA host): install the bundle `sc cluster sign`
/// printed, once it is checked: the host's certificate, then the CA's, the host's issued by
/// that CA for this host's names and this host's key, the CA the one this host already trusts
/// if it trusts one; then, when the request asked for it, this host's site issuer and the
/// cluster's site root ([`site::check`]). Anything else is refused and nothing changes.
pub fn accept(
    system: &dyn System,
    paths: &Paths,
    me: &Host,
    bundle: &str,
) -> Result<Accepted, PkiError> {
    if me.ca {
        return Err(refused(format!(
            "{} is the CA host: its certificate is signed directly by `sc cluster request`",
            me.name
        )));
    }
    let files = Files::new(paths);
    accept_bundle(system, paths, &files, &files.host_key, me, bundle)
}

/// The end of a renewal on host `me`: install `bundle` as [`accept`] does, but checked
/// against the next key ([`HOST_KEY_NEXT`]), which then replaces the host key. A bundle for
/// any other key is refused and nothing changes.
pub fn accept_renewal(
    system: &dyn System,
    paths: &Paths,
    me: &Host,
    bundle: &str,
) -> Result<Accepted, PkiError> {
    let files = Files::new(paths);
    let accepted = accept_bundle(system, paths, &files, &files.host_key_next, me, bundle)?;
    system
        .rename(&files.host_key_next, &files.host_key)
        .map_err(io(&files.host_key))?;
    Ok(accepted)
}

/// Check `bundle` against the key at `key_path` and install it.
fn accept_bundle(
    system: &dyn System,
    paths: &Paths,
    files: &Files,
    key_path: &Path,
    me: &Host,
    bundle: &str,
) -> Result<Accepted, PkiError> {
    let key = read_text(system, key_path)?.ok_or_else(|| {
        refused(format!(
            "{} does not exist: run `sc cluster request` on this host first",
            key_path.display()
        ))
    })?;
    let key = KeyPair::from_pem(&key)?;
    let (host_der, ca_der, site_ders) = split_bundle(bundle)?;
    let (_, host_cert) = X509Certificate::from_der(&host_der)
        .map_err(|e| refused(format!("the host certificate does not parse: {e}")))?;
    let (_, ca_cert) = X509Certificate::from_der(&ca_der)
        .map_err(|e| refused(format!("the CA certificate does not parse: {e}")))?;
    check_root(&ca_cert, CA_NAME, "second")?;
    check_host_cert(&host_cert, &ca_cert, &key, me, system.now())?;
    let site = site_ders
        .map(|(issuer, root)| site::check(system, paths, files, me, &issuer, &root))
        .transpose()?;
    let ca_is_new = is_new_root(system, &files.ca_cert, &ca_der, "cluster CA")?;
    if ca_is_new {
        write(system, &files.ca_cert, &certificate_pem(&ca_der), 0o644)?;
    }
    write(system, &files.host_cert, &certificate_pem(&host_der), 0o644)?;
    let site_issuer_installed = site.is_some();
    if let Some(site) = site {
        site.install(system, paths, files)?;
    }
    Ok(Accepted {
        host: me.name.clone(),
        ca_installed: ca_is_new,
        site_issuer_installed,
    })
}

/// Whether the root `der` of a bundle (the `what`: "cluster CA" or "site root") is new to
/// this host: `path` holds none yet. One that differs from the root there is refused.
fn is_new_root(system: &dyn System, path: &Path, der: &[u8], what: &str) -> Result<bool, PkiError> {
    let Some(existing) = read_text(system, path)? else {
        return Ok(true);
    };
    if split_pems(&existing)?.first().map(Vec::as_slice) != Some(der) {
        return Err(refused(format!(
            "the bundle's {what} is not the {what} this host already trusts ({}); remove that \
             file first if the cluster's {what} was really replaced",
            path.display()
        )));
    }
    Ok(false)
}

/// Refused unless `cert` (the `what`) is valid at `now`.
fn valid_now(cert: &X509Certificate<'_>, now: jiff::Timestamp, what: &str) -> Result<(), PkiError> {
    let validity = cert.validity();
    let now = now.as_second();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err(refused(format!("the {what} is not valid now")));
    }
    Ok(())
}

/// The DER of every PEM block of `text`; anything but certificates is refused.
fn split_pems(text: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let pems = pem::parse_many(text).map_err(|e| refused(format!("the bundle is not PEM: {e}")))?;
    pems.into_iter()
        .map(|pem| match pem.tag() {
            "CERTIFICATE" => Ok(pem.into_contents()),
            tag => Err(refused(format!(
                "the bundle holds a {} block; it must hold certificates only",
                crate::model::names::shown(tag)
            ))),
        })
        .collect()
}

/// A bundle's certificates that are not the host's and the cluster CA's: the site issuer and
/// the site root.
type SiteDers = Option<(Vec<u8>, Vec<u8>)>;

/// The host's and the CA's certificate of a bundle, and the site issuer's and site root's
/// when it holds them.
fn split_bundle(bundle: &str) -> Result<(Vec<u8>, Vec<u8>, SiteDers), PkiError> {
    let mut ders = split_pems(bundle)?;
    let site = match ders.len() {
        2 => None,
        4 => {
            let root = ders.pop().unwrap_or_default();
            let issuer = ders.pop().unwrap_or_default();
            Some((issuer, root))
        }
        n => {
            return Err(refused(format!(
                "the bundle must hold two certificates (the host's, then the cluster CA's), \
                 or four (then the host's site issuer and the cluster's site root); it holds {n}"
            )));
        }
    };
    let ca = ders.pop().unwrap_or_default();
    let host = ders.pop().unwrap_or_default();
    Ok((host, ca, site))
}

fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A root certificate of a bundle (its `position`: "second" for the cluster CA) must be a
/// self-signed CA named `name`.
fn check_root(ca: &X509Certificate<'_>, name: &str, position: &str) -> Result<(), PkiError> {
    let is_ca = ca
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    let named = ca
        .subject()
        .iter_common_name()
        .any(|cn| cn.as_str() == Ok(name));
    if !is_ca || !named || ca.verify_signature(None).is_err() {
        return Err(refused(format!(
            "the bundle's {position} certificate is not a {name} (a self-signed CA certificate)"
        )));
    }
    Ok(())
}

/// The host certificate must be issued by `ca`, for this host's key and names, and valid now.
fn check_host_cert(
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
    key: &KeyPair,
    me: &Host,
    now: jiff::Timestamp,
) -> Result<(), PkiError> {
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(refused(
            "the host certificate is not issued by the bundle's cluster CA",
        ));
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(refused(
            "the host certificate is not for this host's key (host.key): it answers another request",
        ));
    }
    let names: BTreeSet<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::DNSName(d) => format!("DNS:{d}"),
                    GeneralName::IPAddress(ip) if ip.len() == 4 => {
                        format!("IP:{}", std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
                    }
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let expected: BTreeSet<String> =
        [format!("DNS:{}", me.name), format!("IP:{}", me.host_ip)].into();
    let cn_ok = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().ok())
        .eq([Some(me.name.as_str())]);
    if names != expected || !cn_ok {
        return Err(refused(format!(
            "the host certificate is not for {} ({})",
            me.name, me.host_ip
        )));
    }
    valid_now(cert, now, "host certificate")
}

#[cfg(test)]
mod tests;
