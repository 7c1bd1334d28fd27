//! Where ACME keeps what it knows: the account, the order lock of a name, the challenge
//! tokens, the order history and the certificates. A host alone keeps them in its own files
//! and answers challenges with a [`Responder`] of its own ([`LocalAcme`]); the hosts of a
//! cluster keep them once, in etcd ([`crate::cluster::acme::EtcdAcme`]).

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use super::{
    AcmeError, AcmeSettings, AcmeState, DomainState, NameLock, Responder, acme_dir, io_at,
};
use crate::front::certs::{self, CertMeta};
use crate::system::System;
use crate::system::paths::Paths;

/// A certificate as ACME obtained it: the chain (leaf first), its key and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCert {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
    /// What the front knows of it.
    pub meta: CertMeta,
}

impl StoredCert {
    /// Install it as container `name`'s certificate of this host's front (0600), under the
    /// certificate directory's lock.
    pub fn install(&self, system: &dyn System, paths: &Paths, name: &str) -> Result<(), AcmeError> {
        let _lock = certs::lock(system, paths).map_err(io_at(&certs::dir(paths)))?;
        certs::install(
            system,
            paths,
            name,
            &self.chain_pem,
            &self.key_pem,
            &self.meta,
        )
        .map_err(io_at(&certs::pem_path(paths, name)))
    }
}

/// What an order takes of the lock of its name.
pub enum Locked {
    /// The name is this host's to order (held until dropped; nothing to hold on a host alone).
    Held(Option<NameLock>),
    /// Another host orders it now.
    Busy(String),
}

/// ACME's state, on this host or shared by the cluster.
pub trait AcmeStore {
    /// Whether the store is the cluster's: every host's front serves every site, so the
    /// certificates of every container are this host's concern.
    fn cluster_wide(&self) -> bool;
    /// The addresses of the other hosts that share the store: a name that points at one of
    /// them is as good as one that points here (their responders answer the challenges too).
    fn other_hosts(&self) -> Vec<std::net::IpAddr>;
    /// The stored account for `directory` (JSON), if any.
    fn account(&self, directory: &str) -> Result<Option<Vec<u8>>, AcmeError>;
    /// Store a new account for `directory` unless one is stored already; the account stored
    /// after (the first one wins).
    fn put_account(&self, directory: &str, json: &[u8]) -> Result<Vec<u8>, AcmeError>;
    /// Take the order lock of container `name`.
    fn lock(&self, name: &str) -> Result<Locked, AcmeError>;
    /// Answer the HTTP-01 challenge `token` with `key_authorization` (on every host).
    fn publish(&self, token: &str, key_authorization: &str) -> Result<(), AcmeError>;
    /// Stop answering `token`.
    fn withdraw(&self, token: &str) -> Result<(), AcmeError>;
    /// What happened to every container's orders.
    fn history(&self) -> Result<AcmeState, AcmeError>;
    /// Record what happened to container `name`'s orders (`None`: nothing to remember).
    fn record(&self, name: &str, state: Option<&DomainState>) -> Result<(), AcmeError>;
    /// The certificate of container `name` that the cluster stores (a host alone has none
    /// beyond its installed files).
    fn certificate(&self, name: &str) -> Result<Option<StoredCert>, AcmeError>;
    /// Store `cert` as container `name`'s (once for the cluster) and install it here.
    fn put_certificate(&self, name: &str, cert: &StoredCert) -> Result<(), AcmeError>;
}

/// The store of a host alone: `account.json` and `state.json` under [`acme_dir`], the
/// certificates in the front's directory, challenges answered by a responder on
/// `acme_listen` that starts with the first challenge.
pub struct LocalAcme<'a> {
    system: &'a dyn System,
    paths: &'a Paths,
    listen: std::net::SocketAddr,
    responder: OnceCell<Responder>,
}

impl<'a> LocalAcme<'a> {
    /// The store under `paths`, answering challenges on `settings.listen`.
    pub fn new(system: &'a dyn System, paths: &'a Paths, settings: &AcmeSettings) -> Self {
        Self {
            system,
            paths,
            listen: settings.listen,
            responder: OnceCell::new(),
        }
    }

    fn account_path(&self) -> std::path::PathBuf {
        acme_dir(self.paths).join("account.json")
    }
}

impl AcmeStore for LocalAcme<'_> {
    fn cluster_wide(&self) -> bool {
        false
    }

    fn other_hosts(&self) -> Vec<std::net::IpAddr> {
        Vec::new()
    }

    fn account(&self, _directory: &str) -> Result<Option<Vec<u8>>, AcmeError> {
        let path = self.account_path();
        self.system.read(&path).map_err(io_at(&path))
    }

    fn put_account(&self, _directory: &str, json: &[u8]) -> Result<Vec<u8>, AcmeError> {
        let dir = acme_dir(self.paths);
        self.system.create_dir(&dir, 0o700).map_err(io_at(&dir))?;
        let path = self.account_path();
        self.system
            .write(&path, json, 0o600, true)
            .map_err(io_at(&path))?;
        Ok(json.to_vec())
    }

    fn lock(&self, _name: &str) -> Result<Locked, AcmeError> {
        // One `sc certificates renew` at a time holds the host's renew.lock.
        Ok(Locked::Held(None))
    }

    fn publish(&self, token: &str, key_authorization: &str) -> Result<(), AcmeError> {
        let responder = match self.responder.get() {
            Some(r) => r,
            None => {
                let r = Responder::start(self.listen).map_err(|e| {
                    AcmeError::Io(format!("challenge responder on {}", self.listen), e)
                })?;
                self.responder.get_or_init(|| r)
            }
        };
        responder.add(token, key_authorization);
        Ok(())
    }

    fn withdraw(&self, token: &str) -> Result<(), AcmeError> {
        if let Some(r) = self.responder.get() {
            r.remove(token);
        }
        Ok(())
    }

    fn history(&self) -> Result<AcmeState, AcmeError> {
        AcmeState::load(self.system, self.paths)
    }

    fn record(&self, name: &str, state: Option<&DomainState>) -> Result<(), AcmeError> {
        let mut all = self.history()?;
        match state {
            Some(s) => {
                all.domains.insert(name.to_owned(), s.clone());
            }
            None => {
                all.domains.remove(name);
            }
        }
        all.save(self.system, self.paths)
    }

    fn certificate(&self, _name: &str) -> Result<Option<StoredCert>, AcmeError> {
        Ok(None)
    }

    fn put_certificate(&self, name: &str, cert: &StoredCert) -> Result<(), AcmeError> {
        cert.install(self.system, self.paths, name)
    }
}
