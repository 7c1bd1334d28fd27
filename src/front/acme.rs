//! Certificates from an ACME CA (Let's Encrypt by default) over HTTP-01, with the policy that
//! decides when to order: only for names that resolve to this host, never while a valid ACME
//! certificate has more than [`RENEW_BEFORE`] left, and with an exponential back-off after
//! failures so a broken domain does not hammer the CA.
//!
//! State lives under `/var/lib/srvctl/acme/` (0700): `account.json` (the account's key, 0600)
//! and `state.json` (per container: failures, last error, next attempt). Host settings come
//! from `/etc/srvctl/settings.json`: `acme_directory`, `acme_ca_file`, `acme_listen`,
//! `acme_assume_resolved`.
//!
//! haproxy forwards `/.well-known/acme-challenge/` of every host to [`DEFAULT_LISTEN`], where
//! [`Responder`] answers from memory while an order runs.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::front::certs::{self, CertMeta, CertSource};
use crate::system::System;
use crate::system::paths::Paths;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Where haproxy forwards `/.well-known/acme-challenge/`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8402";
/// A certificate is renewed once it has less than this left.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(30 * 24);
/// The wait after the first failure; it doubles with each further failure…
pub const BACKOFF_FIRST: SignedDuration = SignedDuration::from_hours(1);
/// …up to this.
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_hours(24);
/// The challenge path prefix.
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Anything that went wrong while obtaining certificates.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, io::Error),
    /// A settings or state file is malformed.
    #[error("{0}: {1}")]
    Parse(String, serde_json::Error),
    /// The ACME exchange failed.
    #[error("ACME: {0}")]
    Protocol(String),
    /// Key or CSR generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        Self::Protocol(e.to_string())
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> AcmeError + '_ {
    move |e| AcmeError::Io(path.display().to_string(), e)
}

// ---------------------------------------------------------------------------------------------
// Settings

/// The ACME part of `/etc/srvctl/settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AcmeSettings {
    /// The directory URL of the ACME CA.
    #[serde(default = "default_directory", rename = "acme_directory")]
    pub directory: String,
    /// A CA certificate (PEM) to trust for the directory's TLS, instead of the system's roots
    /// (pebble's in tests).
    #[serde(default, rename = "acme_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// Where the challenge responder listens.
    #[serde(default = "default_listen", rename = "acme_listen")]
    pub listen: SocketAddr,
    /// Treat every name as resolving to this host (tests, or a host behind NAT whose public
    /// address is not its host_ip).
    #[serde(default, rename = "acme_assume_resolved")]
    pub assume_resolved: bool,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_owned()
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("a valid address")
}

impl Default for AcmeSettings {
    fn default() -> Self {
        Self {
            directory: default_directory(),
            ca_file: None,
            listen: default_listen(),
            assume_resolved: false,
        }
    }
}

/// The host settings file.
pub fn settings_path(paths: &Paths) -> PathBuf {
    paths.host("/etc/srvctl/settings.json")
}

impl AcmeSettings {
    /// Read the settings (defaults when the file does not exist). `SRVCTL_ACME_ASSUME_RESOLVED=1`
    /// sets `acme_assume_resolved` for tests.
    pub fn load(system: &dyn System, paths: &Paths) -> Result<Self, AcmeError> {
        let path = settings_path(paths);
        let mut settings: Self = match system.read(&path).map_err(io_at(&path))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Parse(path.display().to_string(), e))?,
            None => Self::default(),
        };
        if system
            .env("SRVCTL_ACME_ASSUME_RESOLVED")
            .is_some_and(|v| v == "1")
        {
            settings.assume_resolved = true;
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------------------------------------
// State

/// ACME's own directory.
pub fn acme_dir(paths: &Paths) -> PathBuf {
    paths.host("/var/lib/srvctl/acme")
}

fn state_path(paths: &Paths) -> PathBuf {
    acme_dir(paths).join("state.json")
}

fn account_path(paths: &Paths) -> PathBuf {
    acme_dir(paths).join("account.json")
}

/// What happened to one container's orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainState {
    /// Failures since the last success.
    #[serde(default)]
    pub failures: u32,
    /// The last error, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last order was attempted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<String>,
    /// No order before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
}

impl DomainState {
    fn next_attempt(&self) -> Option<Timestamp> {
        self.next_attempt.as_deref().and_then(|t| t.parse().ok())
    }

    /// Record a failure at `now`: the wait doubles from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`].
    pub fn failed(&mut self, now: Timestamp, error: &str) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.to_owned());
        self.last_attempt = Some(now.to_string());
        self.next_attempt = Some((now + backoff(self.failures)).to_string());
    }
}

/// The wait after `failures` consecutive failures.
pub fn backoff(failures: u32) -> SignedDuration {
    let doublings = failures.saturating_sub(1).min(16);
    let wait = BACKOFF_FIRST * (1i32 << doublings);
    wait.min(BACKOFF_MAX)
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeState {
    /// Per container name.
    #[serde(default)]
    pub domains: BTreeMap<String, DomainState>,
}

impl AcmeState {
    /// Read the state (empty when there is none).
    pub fn load(system: &dyn System, paths: &Paths) -> Result<Self, AcmeError> {
        let path = state_path(paths);
        match system.read(&path).map_err(io_at(&path))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Parse(path.display().to_string(), e)),
            None => Ok(Self::default()),
        }
    }

    /// Forget the containers not in `keep` (destroyed, or moved to another host).
    pub fn retain(&mut self, keep: &[Row]) {
        self.domains
            .retain(|name, _| keep.iter().any(|r| &r.name == name));
    }

    /// Write the state atomically.
    pub fn save(&self, system: &dyn System, paths: &Paths) -> Result<(), AcmeError> {
        let dir = acme_dir(paths);
        system.create_dir(&dir, 0o700).map_err(io_at(&dir))?;
        let path = state_path(paths);
        let mut json = serde_json::to_vec_pretty(self).expect("state serialises");
        json.push(b'\n');
        system
            .write(&path, &json, 0o600, true)
            .map_err(io_at(&path))
    }
}

// ---------------------------------------------------------------------------------------------
// Policy

/// How a name resolves, as far as the policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Every name resolves to this host.
    Here,
    /// A name does not resolve here: the name and what it resolves to (empty: nothing).
    Elsewhere(String, Vec<IpAddr>),
}

/// Everything the policy looks at for one container.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The names its certificate must cover.
    pub names: &'a [String],
    /// The installed certificate, if any.
    pub current: Option<&'a CertMeta>,
    /// Whether its names resolve here.
    pub resolution: &'a Resolution,
    /// Its order history.
    pub history: Option<&'a DomainState>,
}

/// What to do for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Order a certificate now.
    Order(String),
    /// Nothing until the time given (renewal is due then).
    RenewAt(Timestamp),
    /// Back off after a failure until the time given.
    RetryAt(Timestamp),
    /// Its names do not resolve to this host yet.
    WaitForDns(String),
}

impl Action {
    /// The action as shown in `sc certificates`.
    pub fn describe(&self) -> String {
        match self {
            Self::Order(why) => format!("order now ({why})"),
            Self::RenewAt(t) => format!("renew after {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            Self::RetryAt(t) => format!("retry after {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
            Self::WaitForDns(why) => format!("waiting for DNS: {why}"),
        }
    }
}

fn parse_time(raw: &str) -> Option<Timestamp> {
    raw.parse().ok()
}

/// Decide what to do for `c` at `now`. `force` orders even while a valid certificate exists or
/// during a back-off, but never for a name that does not resolve here.
pub fn plan(c: &Candidate<'_>, now: Timestamp, force: bool) -> Action {
    if let Resolution::Elsewhere(name, ips) = c.resolution {
        return Action::WaitForDns(if ips.is_empty() {
            format!("{name} does not resolve yet")
        } else {
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            format!("{name} resolves to {}, not to this host", ips.join(", "))
        });
    }
    let acme = c.current.filter(|m| m.source == CertSource::Acme);
    let covers = acme.is_some_and(|m| c.names.iter().all(|n| m.names.contains(n)));
    let expires = acme.and_then(|m| parse_time(&m.not_after));
    let reason = match (c.current, covers, expires) {
        (None, _, _) => "no certificate".to_owned(),
        (Some(m), _, _) if m.source == CertSource::Internal => "internal certificate".to_owned(),
        (Some(_), false, _) => "names changed".to_owned(),
        (Some(_), true, None) => "unreadable expiry".to_owned(),
        (Some(_), true, Some(t)) => {
            let renew_at = t - RENEW_BEFORE;
            if now < renew_at && !force {
                return Action::RenewAt(renew_at);
            }
            if now < renew_at {
                "forced".to_owned()
            } else if now < t {
                format!("expires {}", t.strftime("%Y-%m-%d"))
            } else {
                "expired".to_owned()
            }
        }
    };
    if !force
        && let Some(next) = c.history.and_then(DomainState::next_attempt)
        && now < next
    {
        return Action::RetryAt(next);
    }
    Action::Order(reason)
}

/// Looks names up.
pub trait Resolver: Sync {
    /// The addresses `name` resolves to (empty when it does not resolve).
    fn lookup(&self, name: &str) -> Vec<IpAddr>;
}

/// The system resolver (getaddrinfo: /etc/hosts, DNS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, name: &str) -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default()
    }
}

/// Whether `name` resolves to `host_ip` (and to no other address of the same family, which
/// would make validation fail half the time); else what it resolves to.
fn resolves_here(resolver: &dyn Resolver, name: &str, host_ip: IpAddr) -> Result<(), Vec<IpAddr>> {
    let ips = resolver.lookup(name);
    let here = ips.contains(&host_ip)
        && ips
            .iter()
            .all(|ip| *ip == host_ip || ip.is_ipv4() != host_ip.is_ipv4());
    if here { Ok(()) } else { Err(ips) }
}

/// How a container's names resolve: [`Resolution::Here`] once its own name (the first)
/// resolves to `host_ip`, with the names that resolve here (the certificate covers those; a
/// `www.` or alternative name that does not point here yet is added by a later order once it
/// does).
pub fn resolution(
    resolver: &dyn Resolver,
    names: &[String],
    host_ip: IpAddr,
) -> (Resolution, Vec<String>) {
    let Some(primary) = names.first() else {
        return (Resolution::Elsewhere(String::new(), Vec::new()), Vec::new());
    };
    if let Err(ips) = resolves_here(resolver, primary, host_ip) {
        return (Resolution::Elsewhere(primary.clone(), ips), Vec::new());
    }
    let here = names
        .iter()
        .filter(|n| resolves_here(resolver, n, host_ip).is_ok())
        .cloned()
        .collect();
    (Resolution::Here, here)
}

// ---------------------------------------------------------------------------------------------
// The challenge responder

/// A tiny HTTP server answering `GET /.well-known/acme-challenge/TOKEN` from memory.
pub struct Responder {
    tokens: Arc<Mutex<HashMap<String, String>>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    /// Listen on `addr` (port 0: any free port).
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let tokens: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tokens.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let t = t.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, &t);
                    });
                }
            }
        });
        Ok(Self {
            tokens,
            stop,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer `token` with `key_authorization`.
    pub fn add(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .expect("not poisoned")
            .insert(token.to_owned(), key_authorization.to_owned());
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, tokens: &Mutex<HashMap<String, String>>) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let answer = target
        .strip_prefix(CHALLENGE_PREFIX)
        .filter(|_| method == "GET" || method == "HEAD")
        .and_then(|token| tokens.lock().ok()?.get(token).cloned());
    let mut conn = conn;
    match answer {
        Some(body) => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            if method == "HEAD" { "" } else { &body }
        ),
        None => conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

// ---------------------------------------------------------------------------------------------
// Ordering

/// A certificate obtained from the CA.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
    /// The leaf's expiry.
    pub not_after: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: instant_acme::AccountCredentials,
}

fn builder(settings: &AcmeSettings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    Ok(match &settings.ca_file {
        Some(ca) => instant_acme::Account::builder_with_root(ca)?,
        None => instant_acme::Account::builder()?,
    })
}

/// The account for the configured directory: loaded from `account.json`, or created there.
async fn account(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
) -> Result<instant_acme::Account, AcmeError> {
    let path = account_path(paths);
    if let Some(bytes) = system.read(&path).map_err(io_at(&path))? {
        let stored: StoredAccount = serde_json::from_slice(&bytes)
            .map_err(|e| AcmeError::Parse(path.display().to_string(), e))?;
        if stored.directory == settings.directory {
            return Ok(builder(settings)?
                .from_credentials(stored.credentials)
                .await?);
        }
    }
    let (account, credentials) = builder(settings)?
        .create(
            &instant_acme::NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials,
    };
    let dir = acme_dir(paths);
    system.create_dir(&dir, 0o700).map_err(io_at(&dir))?;
    let json = serde_json::to_vec_pretty(&stored).expect("credentials serialise");
    system
        .write(&path, &json, 0o600, true)
        .map_err(io_at(&path))?;
    Ok(account)
}

/// Order a certificate for `names` over HTTP-01, answering challenges with `responder`.
async fn order(
    account: &instant_acme::Account,
    responder: &Responder,
    names: &[String],
) -> Result<Issued, AcmeError> {
    use instant_acme::{
        AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
    };
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Protocol(format!("authorization is {other:?}")));
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Protocol("the CA offers no http-01 challenge".to_owned()))?;
        responder.add(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retry).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Protocol(order_failure(&mut order, status).await));
    }
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let csr = params.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&retry).await?;
    let not_after = leaf_not_after(&chain_pem)?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// Why an order did not become ready: the CA's problem details of its failed challenges.
async fn order_failure(
    order: &mut instant_acme::Order,
    status: instant_acme::OrderStatus,
) -> String {
    let mut why = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for ch in &authz.challenges {
            if let Some(e) = &ch.error {
                why.push(format!(
                    "{}: {}",
                    authz.identifier(),
                    e.detail.as_deref().unwrap_or("validation failed")
                ));
            }
        }
    }
    if why.is_empty() {
        format!("order is {status:?}")
    } else {
        format!("order is {status:?}: {}", why.join("; "))
    }
}

/// The expiry of the first certificate of a PEM chain.
pub fn leaf_not_after(chain_pem: &str) -> Result<Timestamp, AcmeError> {
    let leaf = chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap_or_default();
    let bad = |e: String| AcmeError::Protocol(format!("the issued certificate: {e}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.trim_start().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| bad(e.to_string()))
}

/// Obtain and install a certificate for container `name` covering `names`.
pub fn obtain(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
    name: &str,
    names: &[String],
    now: Timestamp,
) -> Result<CertMeta, AcmeError> {
    let responder = Responder::start(settings.listen)
        .map_err(|e| AcmeError::Io(format!("challenge responder on {}", settings.listen), e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AcmeError::Io("async runtime".into(), e))?;
    let issued = runtime.block_on(async {
        let account = account(system, paths, settings).await?;
        tokio::time::timeout(Duration::from_secs(300), order(&account, &responder, names))
            .await
            .map_err(|_| AcmeError::Protocol("the order took more than 5 minutes".into()))?
    })?;
    let meta = CertMeta {
        source: CertSource::Acme,
        names: names.to_vec(),
        not_after: issued.not_after.to_string(),
        issued: now.to_string(),
    };
    let _lock = certs::lock(system, paths).map_err(io_at(&certs::dir(paths)))?;
    certs::install(
        system,
        paths,
        name,
        &issued.chain_pem,
        &issued.key_pem,
        &meta,
    )
    .map_err(io_at(&certs::pem_path(paths, name)))?;
    Ok(meta)
}

// ---------------------------------------------------------------------------------------------
// Renewal

/// One container's certificate and what happens next.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The container.
    pub name: String,
    /// The names its certificate must cover.
    pub names: Vec<String>,
    /// Who issued the installed certificate (none: there is none).
    pub source: Option<CertSource>,
    /// When the installed certificate expires.
    pub not_after: Option<String>,
    /// What happens next, in words.
    pub next_action: String,
    /// The last error, if the last order failed.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub failures: u32,
    /// The decision.
    #[serde(skip)]
    pub action: Action,
}

/// The certificates of this host's containers (or only `only`) and the policy's decision for
/// each at `now`.
#[allow(clippy::too_many_arguments)]
pub fn survey(
    system: &dyn System,
    paths: &Paths,
    state: &crate::model::State,
    host: &crate::config::cluster::Host,
    settings: &AcmeSettings,
    resolver: &dyn Resolver,
    history: &AcmeState,
    now: Timestamp,
    only: Option<&str>,
    force: bool,
) -> Result<Vec<Row>, AcmeError> {
    // A broken settings.json is reported by srvctl-regenerate; here it only loses the preview
    // names.
    let site = crate::config::site::Settings::load(system, paths).unwrap_or_default();
    let mine: Vec<(&str, Vec<String>)> = state
        .containers
        .iter()
        .filter(|(name, c)| c.host == host.name && only.is_none_or(|o| o == name.as_str()))
        .map(|(name, _)| (name.as_str(), certs::names_of(state, name, &site)))
        .collect();
    let resolved: Vec<(Resolution, Vec<String>)> = if settings.assume_resolved {
        mine.iter()
            .map(|(_, names)| (Resolution::Here, names.clone()))
            .collect()
    } else {
        let here = IpAddr::V4(host.host_ip);
        parallel(&mine, |(_, names)| resolution(resolver, names, here))
    };
    let mut rows = Vec::with_capacity(mine.len());
    for ((name, _), (resolved, names)) in mine.into_iter().zip(resolved) {
        let current =
            certs::read_meta(system, paths, name).map_err(io_at(&certs::pem_path(paths, name)))?;
        let h = history.domains.get(name);
        let action = plan(
            &Candidate {
                names: &names,
                current: current.as_ref(),
                resolution: &resolved,
                history: h,
            },
            now,
            force,
        );
        rows.push(Row {
            name: name.to_owned(),
            names,
            source: current.as_ref().map(|m| m.source),
            not_after: current.map(|m| m.not_after),
            next_action: action.describe(),
            last_error: h.and_then(|h| h.last_error.clone()),
            failures: h.map_or(0, |h| h.failures),
            action,
        });
    }
    Ok(rows)
}

/// `f` over `items` on a few threads, in order: name lookups of thousands of sites take a
/// while one after the other.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const THREADS: usize = 16;
    let chunk = items.len().div_ceil(THREADS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a lookup thread panicked"))
            .collect()
    })
}

/// What a renewal run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewReport {
    /// Containers that got a new certificate.
    pub installed: Vec<String>,
    /// Containers whose order failed, with the error.
    pub failed: Vec<(String, String)>,
}

/// Order a certificate for every row whose action is [`Action::Order`], recording failures in
/// the state and reporting progress through `progress`. Unless the rows are `only` some of the
/// host's containers, the state forgets containers that are not among them.
#[allow(clippy::too_many_arguments)]
pub fn renew(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
    rows: &[Row],
    only: bool,
    history: &mut AcmeState,
    now: &dyn Fn() -> Timestamp,
    progress: &mut dyn FnMut(&str),
) -> Result<RenewReport, AcmeError> {
    let mut report = RenewReport::default();
    if !only {
        let before = history.domains.len();
        history.retain(rows);
        if history.domains.len() != before {
            history.save(system, paths)?;
        }
    }
    for row in rows {
        let Action::Order(why) = &row.action else {
            progress(&format!("{}: {}", row.name, row.next_action));
            continue;
        };
        progress(&format!(
            "{}: ordering a certificate for {} ({why}) from {}",
            row.name,
            row.names.join(", "),
            settings.directory
        ));
        match obtain(system, paths, settings, &row.name, &row.names, now()) {
            Ok(meta) => {
                progress(&format!(
                    "{}: installed, valid until {}",
                    row.name, meta.not_after
                ));
                history.domains.remove(&row.name);
                report.installed.push(row.name.clone());
            }
            Err(e) => {
                let error = e.to_string();
                let entry = history.domains.entry(row.name.clone()).or_default();
                entry.failed(now(), &error);
                progress(&format!(
                    "{}: failed ({error}); next attempt after {}",
                    row.name,
                    entry.next_attempt.as_deref().unwrap_or("?")
                ));
                report.failed.push((row.name.clone(), error));
            }
        }
        history.save(system, paths)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn meta(source: CertSource, names: &[&str], not_after: &str) -> CertMeta {
        CertMeta {
            source,
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after: not_after.to_owned(),
            issued: "2026-01-01T00:00:00Z".to_owned(),
        }
    }

    const NOW: &str = "2026-06-01T00:00:00Z";

    fn decide(
        current: Option<&CertMeta>,
        resolution: &Resolution,
        history: Option<&DomainState>,
        force: bool,
    ) -> Action {
        let names = vec!["a.example.com".to_owned()];
        let c = Candidate {
            names: &names,
            current,
            resolution,
            history,
        };
        plan(&c, t(NOW), force)
    }

    #[test]
    fn orders_only_once_the_name_resolves_here() {
        let elsewhere =
            Resolution::Elsewhere("a.example.com".into(), vec!["192.0.2.9".parse().unwrap()]);
        let a = decide(None, &elsewhere, None, true);
        assert!(
            matches!(&a, Action::WaitForDns(w) if w.contains("192.0.2.9")),
            "{a:?}"
        );
        let nowhere = Resolution::Elsewhere("a.example.com".into(), vec![]);
        assert!(
            decide(None, &nowhere, None, false)
                .describe()
                .contains("does not resolve")
        );
        assert_eq!(
            decide(None, &Resolution::Here, None, false),
            Action::Order("no certificate".into())
        );
    }

    #[test]
    fn internal_certificates_are_replaced_at_once() {
        let internal = meta(
            CertSource::Internal,
            &["a.example.com"],
            "2036-01-01T00:00:00Z",
        );
        assert_eq!(
            decide(Some(&internal), &Resolution::Here, None, false),
            Action::Order("internal certificate".into())
        );
    }

    #[test]
    fn a_valid_acme_certificate_is_kept_until_30_days_before_expiry() {
        let valid = meta(CertSource::Acme, &["a.example.com"], "2026-08-01T00:00:00Z");
        assert_eq!(
            decide(Some(&valid), &Resolution::Here, None, false),
            Action::RenewAt(t("2026-07-02T00:00:00Z"))
        );
        assert_eq!(
            decide(Some(&valid), &Resolution::Here, None, true),
            Action::Order("forced".into())
        );
        let due = meta(CertSource::Acme, &["a.example.com"], "2026-06-20T00:00:00Z");
        assert_eq!(
            decide(Some(&due), &Resolution::Here, None, false),
            Action::Order("expires 2026-06-20".into())
        );
        let expired = meta(CertSource::Acme, &["a.example.com"], "2026-05-20T00:00:00Z");
        assert_eq!(
            decide(Some(&expired), &Resolution::Here, None, false),
            Action::Order("expired".into())
        );
        let fewer = meta(
            CertSource::Acme,
            &["other.example.com"],
            "2026-08-01T00:00:00Z",
        );
        assert_eq!(
            decide(Some(&fewer), &Resolution::Here, None, false),
            Action::Order("names changed".into())
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_day() {
        assert_eq!(backoff(1), SignedDuration::from_hours(1));
        assert_eq!(backoff(2), SignedDuration::from_hours(2));
        assert_eq!(backoff(5), SignedDuration::from_hours(16));
        assert_eq!(backoff(6), SignedDuration::from_hours(24));
        assert_eq!(backoff(1000), SignedDuration::from_hours(24));
        let mut h = DomainState::default();
        h.failed(t(NOW), "connection refused");
        h.failed(t(NOW), "connection refused");
        assert_eq!(h.failures, 2);
        assert_eq!(h.next_attempt.as_deref(), Some("2026-06-01T02:00:00Z"));
        assert_eq!(
            decide(None, &Resolution::Here, Some(&h), false),
            Action::RetryAt(t("2026-06-01T02:00:00Z"))
        );
        assert_eq!(
            decide(None, &Resolution::Here, Some(&h), true),
            Action::Order("no certificate".into())
        );
        let names = vec!["a.example.com".to_owned()];
        let later = Candidate {
            names: &names,
            current: None,
            resolution: &Resolution::Here,
            history: Some(&h),
        };
        assert_eq!(
            plan(&later, t("2026-06-01T02:00:00Z"), false),
            Action::Order("no certificate".into())
        );
    }

    struct Fixed(Vec<(&'static str, &'static str)>);

    impl Resolver for Fixed {
        fn lookup(&self, name: &str) -> Vec<IpAddr> {
            self.0
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, ip)| ip.parse().unwrap())
                .collect()
        }
    }

    #[test]
    fn the_certificate_covers_the_names_that_resolve_here_once_the_main_one_does() {
        let here: IpAddr = "192.0.2.11".parse().unwrap();
        let r = Fixed(vec![
            ("a.example.com", "192.0.2.11"),
            ("a.example.com", "2001:db8::1"),
            ("www.a.example.com", "192.0.2.11"),
            ("b.example.com", "192.0.2.11"),
            ("b.example.com", "192.0.2.12"),
        ]);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolution(
                &r,
                &names(&[
                    "a.example.com",
                    "www.a.example.com",
                    "b.example.com",
                    "c.example.com"
                ]),
                here
            ),
            (
                Resolution::Here,
                names(&["a.example.com", "www.a.example.com"])
            )
        );
        assert!(matches!(
            resolution(&r, &names(&["b.example.com", "a.example.com"]), here),
            (Resolution::Elsewhere(n, ips), _) if n == "b.example.com" && ips.len() == 2
        ));
        assert!(matches!(
            resolution(&r, &names(&["c.example.com"]), here),
            (Resolution::Elsewhere(_, ips), _) if ips.is_empty()
        ));
    }

    #[test]
    fn the_responder_answers_known_tokens_only() {
        let r = Responder::start("127.0.0.1:0".parse().unwrap()).unwrap();
        r.add("tok", "tok.thumb");
        let get = |path: &str| {
            let mut s = TcpStream::connect(r.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: a.example.com\r\n\r\n").unwrap();
            let mut out = String::new();
            io::Read::read_to_string(&mut s, &mut out).unwrap();
            out
        };
        let ok = get("/.well-known/acme-challenge/tok");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntok.thumb"), "{ok}");
        assert!(get("/.well-known/acme-challenge/other").starts_with("HTTP/1.1 404"));
        assert!(get("/tok").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn a_failed_order_is_recorded_with_its_back_off() {
        use crate::system::Recording;
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let settings = AcmeSettings {
            // Nothing listens on port 1: the directory cannot be fetched.
            directory: "https://127.0.0.1:1/directory".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..AcmeSettings::default()
        };
        let names = vec!["a.example.com".to_owned()];
        let action = decide(None, &Resolution::Here, None, false);
        let row = Row {
            name: "a.example.com".into(),
            names: names.clone(),
            source: None,
            not_after: None,
            next_action: action.describe(),
            last_error: None,
            failures: 0,
            action,
        };
        let mut history = AcmeState {
            domains: [("gone.example.com".to_owned(), DomainState::default())].into(),
        };
        let mut lines = Vec::new();
        let report = renew(
            &sys,
            &paths,
            &settings,
            std::slice::from_ref(&row),
            false,
            &mut history,
            &|| t(NOW),
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap();
        assert!(report.installed.is_empty());
        assert_eq!(report.failed.len(), 1, "{lines:?}");
        assert!(lines[0].contains("ordering"), "{lines:?}");
        assert!(lines[1].contains("failed"), "{lines:?}");
        let saved = AcmeState::load(&sys, &paths).unwrap();
        assert_eq!(saved, history);
        assert_eq!(
            saved.domains.len(),
            1,
            "the destroyed container is forgotten"
        );
        let h = &saved.domains["a.example.com"];
        assert_eq!(h.failures, 1);
        assert_eq!(h.next_attempt.as_deref(), Some("2026-06-01T01:00:00Z"));
        assert!(
            h.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("ACME"))
        );
        // Nothing is attempted before the back-off ends, and nothing on disk but the state.
        assert_eq!(
            decide(None, &Resolution::Here, Some(h), false),
            Action::RetryAt(t("2026-06-01T01:00:00Z"))
        );
        assert!(
            certs::read_meta(&sys, &paths, "a.example.com")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn survey_covers_this_hosts_containers_with_the_names_that_resolve_here() {
        use crate::system::Recording;
        let state = crate::model::State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root", "altnames": ["shop.example.com"]},
              "far.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap();
        let clusters = crate::config::cluster::Clusters::parse(
            Path::new("clusters.json"),
            r#"{"c": {"h1.test": {"host_ip": "192.0.2.11", "hostnet": 1, "role": "ca"},
                      "h2.test": {"host_ip": "192.0.2.12", "hostnet": 2}}}"#,
        )
        .unwrap();
        let host = clusters.host("h1.test").unwrap();
        let resolver = Fixed(vec![
            ("web.example.com", "192.0.2.11"),
            ("shop.example.com", "192.0.2.11"),
            ("far.example.com", "192.0.2.11"),
        ]);
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let survey = |settings: &AcmeSettings| {
            survey(
                &sys,
                &paths,
                &state,
                host,
                settings,
                &resolver,
                &AcmeState::default(),
                t(NOW),
                None,
                false,
            )
            .unwrap()
        };
        let rows = survey(&AcmeSettings::default());
        assert_eq!(rows.len(), 1, "only this host's containers: {rows:?}");
        assert_eq!(rows[0].name, "web.example.com");
        assert_eq!(rows[0].names, ["web.example.com", "shop.example.com"]);
        assert_eq!(rows[0].action, Action::Order("no certificate".into()));
        let assumed = survey(&AcmeSettings {
            assume_resolved: true,
            ..AcmeSettings::default()
        });
        assert!(assumed[0].names.contains(&"www.web.example.com".to_owned()));
    }

    #[test]
    fn settings_default_to_lets_encrypt() {
        let s: AcmeSettings = serde_json::from_str(r#"{"company_domain": "x.net"}"#).unwrap();
        assert_eq!(s, AcmeSettings::default());
        assert_eq!(s.directory, LETS_ENCRYPT);
        let s: AcmeSettings = serde_json::from_str(
            r#"{"acme_directory": "https://localhost:14000/dir", "acme_ca_file": "/tmp/ca.pem",
                "acme_listen": "127.0.0.1:5002"}"#,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 5002);
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
    }
}
