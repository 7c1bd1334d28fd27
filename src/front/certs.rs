//! Certificates served by the HTTPS front, one per container, under `/var/lib/srvctl/certs`
//! (directory 0700):
//!
//! - `<container-name>.pem`: the full chain, then the private key (haproxy's format), 0600;
//! - `<container-name>.json`: `{"source": "internal"|"acme", "names": [...],
//!   "not_after": RFC 3339, "issued": RFC 3339}`.
//!
//! Every host's front serves every site of the cluster, so every container of the cluster,
//! wherever it runs, gets a certificate of the site issuer (srvctl's internal CA) at once
//! ([`ensure_internal`], run by srvctl-regenerate before rendering), so HTTPS answers the moment
//! a site exists. For now each host issues these with its own site issuer, for the containers
//! of other hosts too; [`crate::front::acme`] replaces a container's certificate with an
//! ACME one once the names resolve here; in a cluster that one is stored once in etcd and
//! every host installs it ([`crate::cluster::acme`]). A valid ACME certificate is never replaced by an internal one. [`DEFAULT`] is the
//! certificate haproxy presents for a name it does not know: an internal one for the host name.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde::{Deserialize, Serialize};

use crate::config::site::{Settings, SettingsError};
use crate::mesh::pki::{self, PkiError};
use crate::model::State;
use crate::model::names::ContainerName;
use crate::system::paths::Paths;
use crate::system::{FileLock, FileStamp, LockKind, System};

/// The certificate directory on the host.
pub const DIR: &str = "/var/lib/srvctl/certs";
/// The file name (without `.pem`) of the certificate for unknown names: `_` is never part of a
/// container name, so it cannot clash with one.
pub const DEFAULT: &str = "_default";
/// How long an internal certificate is valid.
pub const INTERNAL_VALIDITY: SignedDuration = SignedDuration::from_hours(397 * 24);
/// An internal certificate is re-issued once it has less than this left.
pub const INTERNAL_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Who issued a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    /// srvctl's internal CA.
    Internal,
    /// An ACME CA (Let's Encrypt by default).
    Acme,
}

/// What is known about an installed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertMeta {
    /// Who issued it.
    pub source: CertSource,
    /// The names it covers.
    pub names: Vec<String>,
    /// When it expires (RFC 3339).
    pub not_after: String,
    /// When it was installed (RFC 3339).
    pub issued: String,
    /// For an internal certificate: the SHA-256 fingerprint of the site issuer that signed
    /// it (hex), so that a new site issuer (a host that joined a cluster, or renewed its site
    /// issuer) has every internal certificate issued again, with the new chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl CertMeta {
    /// Whether it is still valid `margin` after `now` (an unreadable date counts as expired).
    pub fn valid_for(&self, now: Timestamp, margin: SignedDuration) -> bool {
        self.not_after
            .parse::<Timestamp>()
            .is_ok_and(|t| t.duration_since(now) > margin)
    }
}

/// Certificates could not be made or installed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The internal CA failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// settings.json is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
}

/// The certificate directory.
pub fn dir(paths: &Paths) -> PathBuf {
    paths.host(DIR)
}

/// Take the certificate directory's lock (waiting for its holder). srvctl-regenerate holds it
/// while it decides which internal certificates to issue and writes them, and an ACME install
/// holds it while it writes: an internal certificate never overwrites an ACME one that arrived
/// in between.
pub fn lock(system: &dyn System, paths: &Paths) -> io::Result<FileLock> {
    let dir = dir(paths);
    system.create_dir(&dir, 0o700)?;
    system.lock(&dir.join(".lock"), LockKind::Exclusive)
}

/// Remove the certificates of containers the front no longer serves (destroyed, or being
/// destroyed). Returns their names.
pub fn prune(system: &dyn System, paths: &Paths, state: &State) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for file in system.list_dir(&dir(paths)).unwrap_or_default() {
        let file = file.to_string_lossy();
        let Some(name) = file
            .strip_suffix(".pem")
            .or_else(|| file.strip_suffix(".json"))
        else {
            continue;
        };
        let wanted = name == DEFAULT
            || ContainerName::new(name)
                .is_ok_and(|n| state.containers.get(&n).is_some_and(|c| !c.destroying));
        if !wanted && is_file_name(name) {
            system.remove(&dir(paths).join(file.as_ref()))?;
            if !removed.iter().any(|r| r == name) {
                removed.push(name.to_owned());
            }
        }
    }
    Ok(removed)
}

/// Whether `name` may name a certificate file: a container name, or [`DEFAULT`].
fn is_file_name(name: &str) -> bool {
    name == DEFAULT || ContainerName::new(name).is_ok_and(|n| n.as_str() == name)
}

/// The certificate of container `name`: chain, then key.
pub fn pem_path(paths: &Paths, name: &str) -> PathBuf {
    dir(paths).join(format!("{name}.pem"))
}

/// The metadata of container `name`'s certificate.
pub fn meta_path(paths: &Paths, name: &str) -> PathBuf {
    dir(paths).join(format!("{name}.json"))
}

/// The metadata of container `name`'s certificate, if it has one. Metadata that cannot be
/// parsed, or whose pem file is missing, counts as none, so a new certificate replaces it.
pub fn read_meta(system: &dyn System, paths: &Paths, name: &str) -> io::Result<Option<CertMeta>> {
    let Some(bytes) = system.read(&meta_path(paths, name))? else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_slice::<CertMeta>(&bytes) else {
        return Ok(None);
    };
    // A pem cut short (a crash before the batch of internal certificates was synced) counts
    // as none, so it is issued again rather than handed to haproxy.
    let whole = |pem: &[u8]| {
        let text = String::from_utf8_lossy(pem);
        text.contains("-----BEGIN CERTIFICATE-----")
            && text.trim_end().ends_with("PRIVATE KEY-----")
    };
    Ok(system
        .read(&pem_path(paths, name))?
        .filter(|pem| whole(pem))
        .map(|_| meta))
}

/// The index of the installed certificates, beside them (not a certificate name: it ends in
/// neither `.pem` nor `.json`): for each, the stamps of its two files and its metadata. A run
/// re-reads only the certificates whose files changed since the index saw them, so a
/// certificate replaced on disk, by srvctl or by hand, is still noticed.
pub const INDEX: &str = ".index";

/// What the index holds of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Indexed {
    pem: FileStamp,
    json: FileStamp,
    meta: CertMeta,
}

/// The index, loaded, with the names looked up through it.
struct Index {
    entries: BTreeMap<String, Indexed>,
    seen: BTreeSet<String>,
    changed: bool,
}

impl Index {
    /// The index of `paths`; a missing or unreadable one is empty (everything is read).
    fn load(system: &dyn System, paths: &Paths) -> Self {
        let entries = system
            .read(&dir(paths).join(INDEX))
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Self {
            changed: entries.is_none(),
            entries: entries.unwrap_or_default(),
            seen: BTreeSet::new(),
        }
    }

    /// The metadata of certificate `name`, as [`read_meta`] would find it: from the index when
    /// neither file changed since, else read again (the stamps are taken first, so a file
    /// replaced while it is read is read again next time).
    fn meta(
        &mut self,
        system: &dyn System,
        paths: &Paths,
        name: &str,
    ) -> io::Result<Option<CertMeta>> {
        self.seen.insert(name.to_owned());
        let stamps = (
            system.stamp(&pem_path(paths, name))?,
            system.stamp(&meta_path(paths, name))?,
        );
        let (Some(pem), Some(json)) = stamps else {
            self.changed |= self.entries.remove(name).is_some();
            return Ok(None);
        };
        if let Some(known) = self.entries.get(name)
            && (known.pem, known.json) == (pem, json)
        {
            return Ok(Some(known.meta.clone()));
        }
        let meta = read_meta(system, paths, name)?;
        self.put(name, Some((pem, json)), meta.as_ref());
        Ok(meta)
    }

    /// Record certificate `name` just written with `meta`.
    fn record(
        &mut self,
        system: &dyn System,
        paths: &Paths,
        name: &str,
        meta: &CertMeta,
    ) -> io::Result<()> {
        self.seen.insert(name.to_owned());
        let pem = system.stamp(&pem_path(paths, name))?;
        let json = system.stamp(&meta_path(paths, name))?;
        self.put(name, pem.zip(json), Some(meta));
        Ok(())
    }

    /// Index certificate `name` with its files' `stamps` and `meta`, or drop it when either
    /// is missing.
    fn put(&mut self, name: &str, stamps: Option<(FileStamp, FileStamp)>, meta: Option<&CertMeta>) {
        self.changed = true;
        match (stamps, meta) {
            (Some((pem, json)), Some(meta)) => {
                let entry = Indexed {
                    pem,
                    json,
                    meta: meta.clone(),
                };
                self.entries.insert(name.to_owned(), entry);
            }
            _ => {
                self.entries.remove(name);
            }
        }
    }

    /// Save the index if it changed, keeping only the names looked up. Losing it (a read-only
    /// directory, a full disk) only costs reading every certificate next time.
    fn save(mut self, system: &dyn System, paths: &Paths) {
        let before = self.entries.len();
        self.entries.retain(|name, _| self.seen.contains(name));
        if !self.changed && self.entries.len() == before {
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(&self.entries) {
            let _ = system.write(&dir(paths).join(INDEX), &bytes, 0o600, false);
        }
    }
}

/// Install a certificate for container `name`: the pem (0600, fsynced, renamed into place)
/// first, then its metadata, so a crash in between leaves a pem whose metadata is older, never
/// metadata for a missing pem.
pub fn install(
    system: &dyn System,
    paths: &Paths,
    name: &str,
    chain_pem: &str,
    key_pem: &str,
    meta: &CertMeta,
) -> io::Result<()> {
    write_cert(system, paths, name, chain_pem, key_pem, meta, true)
}

fn write_cert(
    system: &dyn System,
    paths: &Paths,
    name: &str,
    chain_pem: &str,
    key_pem: &str,
    meta: &CertMeta,
    durable: bool,
) -> io::Result<()> {
    if !is_file_name(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a container name",
                crate::model::names::shown(name)
            ),
        ));
    }
    system.create_dir(&dir(paths), 0o700)?;
    let mut pem = chain_pem.trim_end().to_owned();
    pem.push('\n');
    pem.push_str(key_pem.trim_end());
    pem.push('\n');
    system.write(&pem_path(paths, name), pem.as_bytes(), 0o600, durable)?;
    let mut json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    json.push(b'\n');
    system.write(&meta_path(paths, name), &json, 0o600, durable)
}

/// Every name haproxy serves for container `name` (its own name first): alternative names,
/// aliases, `www.` variants and the preview name. Empty if the container does not exist or is
/// being destroyed.
pub fn names_of(state: &State, name: &ContainerName, settings: &Settings) -> Vec<String> {
    let routes = crate::front::routes::routes(state, settings.company_domain.as_ref());
    crate::front::routes::names_in(&routes, name)
}

/// The installed certificates of the containers the front serves (and [`DEFAULT`]), by name.
pub fn installed(
    system: &dyn System,
    paths: &Paths,
    state: &State,
) -> Result<BTreeMap<String, CertMeta>, CertError> {
    let mut out = BTreeMap::new();
    let names = std::iter::once(DEFAULT)
        .chain(crate::front::routes::served(state).map(|(n, _)| n.as_str()));
    let mut index = Index::load(system, paths);
    for name in names {
        let meta = index
            .meta(system, paths, name)
            .map_err(|e| CertError::Io(meta_path(paths, name), e))?;
        if let Some(meta) = meta {
            out.insert(name.to_owned(), meta);
        }
    }
    index.save(system, paths);
    Ok(out)
}

/// Whether a certificate described by `current` must be replaced by an internal one covering
/// `wanted` at `now`, by the site issuer whose fingerprint is `issuer` (`None` while there is
/// none yet).
fn needs_internal(
    current: Option<&CertMeta>,
    wanted: &[String],
    now: Timestamp,
    issuer: Option<&str>,
) -> bool {
    match current {
        None => true,
        Some(m) if m.source == CertSource::Acme => !m.valid_for(now, SignedDuration::ZERO),
        Some(m) => {
            let have: BTreeSet<&String> = m.names.iter().collect();
            let want: BTreeSet<&String> = wanted.iter().collect();
            have != want
                || !m.valid_for(now, INTERNAL_RENEW_BEFORE)
                || m.issuer.as_deref() != issuer
        }
    }
}

/// What [`ensure_internal`] issued, and every certificate then installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The names of the certificates issued.
    pub issued: Vec<String>,
    /// The installed certificates of the containers the front serves (and [`DEFAULT`]), by
    /// name, as [`installed`] would list them.
    pub installed: BTreeMap<String, CertMeta>,
}

/// Give every container the front serves (of every host of the cluster) that has no
/// certificate (or an internal one that does not cover its names, or is about to expire) a
/// certificate of this host's site issuer, and make the default certificate for `hostname`. A valid ACME certificate is never replaced. Returns
/// the certificates issued and those installed after.
pub fn ensure_internal(
    system: &dyn System,
    paths: &Paths,
    state: &State,
    hostname: &str,
) -> Result<Ensured, CertError> {
    let settings = Settings::load(system, paths)?;
    let now = system.now();
    let routes = crate::front::routes::routes(state, settings.company_domain.as_ref());
    let mut served = crate::front::routes::names_by_container(&routes);
    let wanted = std::iter::once((DEFAULT.to_owned(), vec![hostname.to_owned()])).chain(
        crate::front::routes::served(state)
            .map(|(name, _)| (name.to_string(), served.remove(name).unwrap_or_default())),
    );
    let issuer = pki::issuer_fingerprint(system, paths)?;
    let mut index = Index::load(system, paths);
    let mut todo: Vec<(String, Vec<String>)> = Vec::new();
    let mut out = Ensured::default();
    for (name, names) in wanted {
        let meta = index
            .meta(system, paths, &name)
            .map_err(|e| CertError::Io(meta_path(paths, &name), e))?;
        if needs_internal(meta.as_ref(), &names, now, issuer.as_deref()) {
            todo.push((name, names));
        } else if let Some(meta) = meta {
            out.installed.insert(name, meta);
        }
    }
    if !todo.is_empty() {
        let (issuer, ca_pem, _) = pki::issuer(system, paths)?;
        // The first host regenerate issues thousands at once: written without an fsync each,
        // then made durable by one syncfs (a pem cut short by a crash before it is issued
        // again).
        for (name, names) in todo {
            let (chain, key, meta) = issue_internal(&issuer, &ca_pem, &names, now)?;
            write_cert(system, paths, &name, &chain, &key, &meta, false)
                .map_err(|e| CertError::Io(pem_path(paths, &name), e))?;
            index
                .record(system, paths, &name, &meta)
                .map_err(|e| CertError::Io(pem_path(paths, &name), e))?;
            out.installed.insert(name.clone(), meta);
            out.issued.push(name);
        }
        system
            .sync_fs(&dir(paths))
            .map_err(|e| CertError::Io(dir(paths), e))?;
    }
    index.save(system, paths);
    Ok(out)
}

fn ymd(t: Timestamp) -> (i32, u8, u8) {
    let d = jiff::tz::Offset::UTC.to_datetime(t).date();
    (d.year().into(), d.month() as u8, d.day() as u8)
}

/// A certificate of the internal CA for `names` (the first is the subject): the chain (leaf,
/// then CA), the key, and the metadata.
pub fn issue_internal(
    issuer: &rcgen::Issuer<'static, KeyPair>,
    ca_pem: &str,
    names: &[String],
    now: Timestamp,
) -> Result<(String, String, CertMeta), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params
        .distinguished_name
        .push(DnType::OrganizationName, "srvctl internal CA");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Whole days, from yesterday (clocks differ), so the dates need no sub-day arithmetic.
    let start = now - SignedDuration::from_hours(24);
    let end = now + INTERNAL_VALIDITY;
    let (y, m, d) = ymd(start);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(end);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let not_after = jiff::tz::Offset::UTC
        .to_timestamp(jiff::civil::date(y as i16, m as i8, d as i8).at(0, 0, 0, 0))
        .unwrap_or(end);
    let cert = params.signed_by(&key, issuer)?;
    let chain = format!("{}{}", cert.pem(), ca_pem);
    let meta = CertMeta {
        source: CertSource::Internal,
        names: names.to_vec(),
        not_after: not_after.to_string(),
        issued: now.to_string(),
        issuer: Some(pki::fingerprint(ca_pem)),
    };
    Ok((chain, key.serialize_pem(), meta))
}

#[cfg(test)]
mod tests {
    // Tests may use the real file system and clock directly (see clippy.toml).
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]
    use super::*;
    use crate::system::Recording;

    const CHAIN: &str = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n";

    fn state() -> State {
        State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root", "aliases": ["example.net"],
                "altnames": ["shop.example.com"]},
              "far.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn names_cover_everything_served() {
        let s = state();
        let name = ContainerName::new("web.example.com").unwrap();
        let settings = Settings {
            company_domain: Some(crate::model::web::Domain::new("company.net").unwrap()),
            company_name: None,
            ..Default::default()
        };
        assert_eq!(
            names_of(&s, &name, &settings),
            [
                "web.example.com",
                "example.net",
                "shop.example.com",
                "web-example-com.company.net",
                "www.example.net",
                "www.shop.example.com",
                "www.web.example.com"
            ]
        );
    }

    #[test]
    fn names_by_container_answers_like_names_in() {
        let s = state();
        let company = crate::model::web::Domain::new("company.net").unwrap();
        let routes = crate::front::routes::routes(&s, Some(&company));
        let all = crate::front::routes::names_by_container(&routes);
        let name = ContainerName::new("web.example.com").unwrap();
        assert_eq!(all[&name], crate::front::routes::names_in(&routes, &name));
        assert_eq!(all[&name][0], "web.example.com");
        // The container of h2 is routed too: every host's front serves every site.
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn internal_certificates_are_issued_once_and_acme_is_kept() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let s = state();
        let issued = ensure_internal(&sys, &paths, &s, "h1.test").unwrap().issued;
        // far.example.com runs on h2: h1 serves it too, with a certificate of its own issuer.
        assert_eq!(issued, ["_default", "far.example.com", "web.example.com"]);
        let meta = read_meta(&sys, &paths, "web.example.com").unwrap().unwrap();
        assert_eq!(meta.source, CertSource::Internal);
        assert!(meta.valid_for(sys.now(), INTERNAL_RENEW_BEFORE));
        let pem = sys
            .read(&pem_path(&paths, "web.example.com"))
            .unwrap()
            .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(pem.contains("PRIVATE KEY"));
        assert!(
            ensure_internal(&sys, &paths, &s, "h1.test")
                .unwrap()
                .issued
                .is_empty()
        );
        // An ACME certificate stays while it is valid, even if it lacks a name.
        let acme = CertMeta {
            source: CertSource::Acme,
            names: vec!["web.example.com".into()],
            not_after: (sys.now() + SignedDuration::from_hours(24 * 60)).to_string(),
            issued: sys.now().to_string(),
            issuer: None,
        };
        install(&sys, &paths, "web.example.com", CHAIN, KEY, &acme).unwrap();
        assert!(
            ensure_internal(&sys, &paths, &s, "h1.test")
                .unwrap()
                .issued
                .is_empty()
        );
        // A pem cut short counts as none.
        sys.write(&pem_path(&paths, "web.example.com"), b"", 0o600, false)
            .unwrap();
        assert!(
            read_meta(&sys, &paths, "web.example.com")
                .unwrap()
                .is_none()
        );
        install(&sys, &paths, "web.example.com", CHAIN, KEY, &acme).unwrap();
        // An expired one is replaced.
        let expired = CertMeta {
            not_after: "2020-01-01T00:00:00Z".into(),
            ..acme
        };
        install(&sys, &paths, "web.example.com", CHAIN, KEY, &expired).unwrap();
        assert_eq!(
            ensure_internal(&sys, &paths, &s, "h1.test").unwrap().issued,
            ["web.example.com"]
        );
        assert!(install(&sys, &paths, "../etc", "C", "K", &expired).is_err());
    }

    #[test]
    fn a_new_site_issuer_has_every_internal_certificate_issued_again_but_no_acme_one() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let s = state();
        ensure_internal(&sys, &paths, &s, "h1.test").unwrap();
        let acme = CertMeta {
            source: CertSource::Acme,
            names: vec!["far.example.com".into()],
            not_after: (sys.now() + SignedDuration::from_hours(24 * 60)).to_string(),
            issued: sys.now().to_string(),
            issuer: None,
        };
        install(&sys, &paths, "far.example.com", CHAIN, KEY, &acme).unwrap();
        // The host's site issuer is replaced (as accepting a cluster's bundle does).
        let ca = paths.host(&format!("/{}", pki::CA_CERT));
        let key = KeyPair::from_pem(
            &String::from_utf8(
                sys.read(&paths.host(&format!("/{}", pki::CA_KEY)))
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "another issuer");
        let other = params.self_signed(&key).unwrap().pem();
        sys.write(&ca, other.as_bytes(), 0o644, false).unwrap();
        let ensured = ensure_internal(&sys, &paths, &s, "h1.test").unwrap();
        assert_eq!(ensured.issued, ["_default", "web.example.com"]);
        let pem = sys
            .read(&pem_path(&paths, "web.example.com"))
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(pem).unwrap().contains(other.trim_end()));
        assert_eq!(
            ensured.installed["web.example.com"].issuer,
            Some(pki::fingerprint(&other))
        );
        assert_eq!(ensured.installed["far.example.com"], acme);
        assert!(
            ensure_internal(&sys, &paths, &s, "h1.test")
                .unwrap()
                .issued
                .is_empty()
        );
    }

    #[test]
    fn the_index_answers_until_a_file_changes() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let s = state();
        let ensured = ensure_internal(&sys, &paths, &s, "h1.test").unwrap();
        let first = installed(&sys, &paths, &s).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(ensured.installed, first);
        assert_eq!(
            ensure_internal(&sys, &paths, &s, "h1.test")
                .unwrap()
                .installed,
            first
        );
        // While both files are as the index saw them, the index answers (not the files).
        let index_path = dir(&paths).join(INDEX);
        let mut index: BTreeMap<String, Indexed> =
            serde_json::from_slice(&sys.read(&index_path).unwrap().unwrap()).unwrap();
        index.get_mut("web.example.com").unwrap().meta.issued = "from the index".into();
        sys.write(
            &index_path,
            &serde_json::to_vec(&index).unwrap(),
            0o600,
            false,
        )
        .unwrap();
        let from_index = installed(&sys, &paths, &s).unwrap();
        assert_eq!(from_index["web.example.com"].issued, "from the index");
        // A certificate changed on disk is read again.
        let mut edited = first["web.example.com"].clone();
        edited.issued = "2030-01-01T00:00:00Z".into();
        sys.write(
            &meta_path(&paths, "web.example.com"),
            &serde_json::to_vec(&edited).unwrap(),
            0o600,
            false,
        )
        .unwrap();
        assert_eq!(
            installed(&sys, &paths, &s).unwrap()["web.example.com"],
            edited
        );
        // A removed one is gone, from the answer and from the index.
        sys.remove(&pem_path(&paths, "web.example.com")).unwrap();
        assert!(
            !installed(&sys, &paths, &s)
                .unwrap()
                .contains_key("web.example.com")
        );
        let index: BTreeMap<String, Indexed> =
            serde_json::from_slice(&sys.read(&index_path).unwrap().unwrap()).unwrap();
        assert_eq!(
            index.keys().collect::<Vec<_>>(),
            ["_default", "far.example.com"]
        );
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(tmp.path());
        let sys = crate::system::Local::new(true);
        ensure_internal(&sys, &paths, &state(), "h1.test").unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir(&paths)), 0o700);
        assert_eq!(mode(pem_path(&paths, "web.example.com")), 0o600);
    }
}
