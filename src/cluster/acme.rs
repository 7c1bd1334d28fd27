//! ACME of a cluster, stored once in etcd below the cluster's prefix (`/srvctl/<cluster>/`):
//!
//! - `acme/account/<directory>`: the one ACME account of the cluster for that directory URL
//!   (percent-encoded), the first host's to create one;
//! - `acme/lock/<name>`: the host that orders container `name`'s certificate now, on an etcd
//!   lease that it keeps alive while it orders ([`crate::front::acme::LEASE_TTL`]);
//! - `acme/challenge/<token>`: the key authorization of an HTTP-01 challenge while its order
//!   runs, which the responder of every host's srvctl-sync answers;
//! - `acme/state/<name>`: the order history of `name` (failures and back-off);
//! - `acme/cert/<name>`: the certificate, its key and metadata (a [`StoredCert`]), which
//!   every host's srvctl-sync installs into its front ([`install`]);
//! - `acme/head`: put with every certificate, so a sync round reads the certificates only
//!   when one changed.

pub mod install;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::etcd::{ClusterError, Connection};
use super::keys::encode;
use crate::config::cluster::Clusters;
use crate::front::acme::{
    AcmeError, AcmeState, AcmeStore, DomainState, KEEP_ALIVE, Leases, Locked, StoredCert, try_lock,
};
use crate::system::System;
use crate::system::paths::Paths;

/// The prefix of ACME's keys, below the cluster's prefix.
pub const ACME: &str = "acme/";
/// The certificates, below the cluster's prefix.
pub const CERTS: &str = "acme/cert/";
/// The challenge tokens, below the cluster's prefix.
pub const CHALLENGES: &str = "acme/challenge/";
/// Put with every certificate, below the cluster's prefix.
pub const HEAD: &str = "acme/head";
const ACCOUNTS: &str = "acme/account/";
const LOCKS: &str = "acme/lock/";
const STATES: &str = "acme/state/";

fn refused(e: ClusterError) -> AcmeError {
    AcmeError::Protocol(format!("the cluster's ACME store: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, AcmeError> {
    serde_json::from_slice(bytes).map_err(|e| AcmeError::Parse(key.to_owned(), e))
}

/// A connection shared by the store and the keep-alive of its order locks.
#[derive(Clone)]
struct Shared(Arc<Mutex<Connection>>);

impl Shared {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value at `key` (below the cluster's prefix), if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let conn = self.conn();
        let full = format!("{}{key}", conn.prefix());
        let found = conn.read("reading ACME's state", |mut kv| {
            let full = full.clone();
            async move { kv.get(full, None).await }
        })?;
        Ok(found.kvs().first().map(|kv| kv.value().to_vec()))
    }

    fn put(&self, key: &str, value: Vec<u8>, also: Option<TxnOp>) -> Result<(), ClusterError> {
        let conn = self.conn();
        let prefix = conn.prefix().to_owned();
        let mut ops = vec![TxnOp::put(format!("{prefix}{key}"), value, None)];
        ops.extend(also);
        let mut kv = conn.kv();
        conn.request("writing ACME's state", kv.txn(Txn::new().and_then(ops)))
            .map(drop)
    }

    fn delete(&self, key: &str) -> Result<(), ClusterError> {
        let conn = self.conn();
        let full = format!("{}{key}", conn.prefix());
        let mut kv = conn.kv();
        conn.request("removing ACME's state", kv.delete(full, None))
            .map(drop)
    }

    /// Put `value` at `key` unless it exists, with `options`; `None` when it was put, else
    /// the value there.
    fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        options: Option<PutOptions>,
    ) -> Result<Option<Vec<u8>>, ClusterError> {
        let conn = self.conn();
        let full = format!("{}{key}", conn.prefix());
        let txn = Txn::new()
            .when([Compare::create_revision(full.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full.as_str(), value, options)])
            .or_else([TxnOp::get(full.as_str(), None)]);
        let mut kv = conn.kv();
        let answer = conn.request("taking an ACME key", kv.txn(txn))?;
        if answer.succeeded() {
            return Ok(None);
        }
        let there = answer.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        Ok(Some(there.unwrap_or_default()))
    }
}

impl Leases for Shared {
    fn grant(&self, ttl: Duration) -> Result<i64, String> {
        let conn = self.conn();
        let mut client = conn.client();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        conn.request("a lease", client.lease_grant(ttl, None))
            .map(|l| l.id())
            .map_err(|e| e.to_string())
    }

    fn claim(&self, key: &str, holder: &str, lease: i64) -> Result<Option<String>, String> {
        let options = PutOptions::new().with_lease(lease);
        self.put_if_absent(key, holder.as_bytes().to_vec(), Some(options))
            .map(|there| there.map(|v| String::from_utf8_lossy(&v).into_owned()))
            .map_err(|e| e.to_string())
    }

    fn keep_alive(&self, lease: i64) -> Result<(), String> {
        let conn = self.conn();
        let mut client = conn.client();
        conn.request("keeping the lease alive", async {
            let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            answers.message().await
        })
        .map_err(|e| e.to_string())
        .and_then(|answer| match answer {
            Some(a) if a.ttl() > 0 => Ok(()),
            _ => Err(format!("lease {lease:x} has expired")),
        })
    }

    fn revoke(&self, lease: i64) -> Result<(), String> {
        let conn = self.conn();
        let mut client = conn.client();
        conn.request("ending a lease", client.lease_revoke(lease))
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The ACME store of a host of a replicated cluster.
pub struct EtcdAcme<'a> {
    system: &'a dyn System,
    paths: &'a Paths,
    me: String,
    others: Vec<std::net::IpAddr>,
    shared: Shared,
}

impl<'a> EtcdAcme<'a> {
    /// The store of host `me`, connected to its cluster's members.
    pub fn open(
        system: &'a dyn System,
        paths: &'a Paths,
        clusters: &Clusters,
        me: &str,
    ) -> Result<Self, AcmeError> {
        let conn = Connection::open(system, paths, clusters, me).map_err(refused)?;
        let others = super::members(clusters, me)
            .iter()
            .skip(1)
            .map(|h| std::net::IpAddr::V4(h.host_ip))
            .collect();
        Ok(Self {
            system,
            paths,
            me: me.to_owned(),
            others,
            shared: Shared(Arc::new(Mutex::new(conn))),
        })
    }
}

impl AcmeStore for EtcdAcme<'_> {
    fn cluster_wide(&self) -> bool {
        true
    }

    fn other_hosts(&self) -> Vec<std::net::IpAddr> {
        self.others.clone()
    }

    fn account(&self, directory: &str) -> Result<Option<Vec<u8>>, AcmeError> {
        self.shared
            .get(&format!("{ACCOUNTS}{}", encode(directory)))
            .map_err(refused)
    }

    fn put_account(&self, directory: &str, json: &[u8]) -> Result<Vec<u8>, AcmeError> {
        let key = format!("{ACCOUNTS}{}", encode(directory));
        let there = self
            .shared
            .put_if_absent(&key, json.to_vec(), None)
            .map_err(refused)?;
        Ok(there.unwrap_or_else(|| json.to_vec()))
    }

    fn lock(&self, name: &str) -> Result<Locked, AcmeError> {
        let leases: Arc<dyn Leases> = Arc::new(self.shared.clone());
        let key = format!("{LOCKS}{}", encode(name));
        match try_lock(leases, &key, &self.me, KEEP_ALIVE) {
            Ok(Ok(lock)) => Ok(Locked::Held(Some(lock))),
            Ok(Err(holder)) => Ok(Locked::Busy(holder)),
            Err(e) => Err(AcmeError::Protocol(format!(
                "the order lock of {name}: {e}"
            ))),
        }
    }

    fn publish(&self, token: &str, key_authorization: &str) -> Result<(), AcmeError> {
        let key = format!("{CHALLENGES}{}", encode(token));
        self.shared
            .put(&key, key_authorization.as_bytes().to_vec(), None)
            .map_err(refused)
    }

    fn withdraw(&self, token: &str) -> Result<(), AcmeError> {
        self.shared
            .delete(&format!("{CHALLENGES}{}", encode(token)))
            .map_err(refused)
    }

    fn history(&self) -> Result<AcmeState, AcmeError> {
        let conn = self.shared.conn();
        let full = format!("{}{STATES}", conn.prefix());
        let found = conn
            .read("reading ACME's history", |mut kv| {
                let full = full.clone();
                async move { kv.get(full, Some(GetOptions::new().with_prefix())).await }
            })
            .map_err(refused)?;
        let mut state = AcmeState::default();
        for kv in found.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(name) = key.strip_prefix(&full) else {
                continue;
            };
            let domain: DomainState = parse(&key, kv.value())?;
            state.domains.insert(name.to_owned(), domain);
        }
        Ok(state)
    }

    fn record(&self, name: &str, state: Option<&DomainState>) -> Result<(), AcmeError> {
        let key = format!("{STATES}{}", encode(name));
        match state {
            Some(s) => {
                let json = serde_json::to_vec(s).expect("serialisable");
                self.shared.put(&key, json, None)
            }
            None => self.shared.delete(&key),
        }
        .map_err(refused)
    }

    fn certificate(&self, name: &str) -> Result<Option<StoredCert>, AcmeError> {
        let key = format!("{CERTS}{}", encode(name));
        match self.shared.get(&key).map_err(refused)? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put_certificate(&self, name: &str, cert: &StoredCert) -> Result<(), AcmeError> {
        let json = serde_json::to_vec(cert).expect("serialisable");
        let head = {
            let conn = self.shared.conn();
            let by = serde_json::json!({"by": self.me, "name": name}).to_string();
            TxnOp::put(format!("{}{HEAD}", conn.prefix()), by, None)
        };
        self.shared
            .put(&format!("{CERTS}{}", encode(name)), json, Some(head))
            .map_err(refused)?;
        cert.install(self.system, self.paths, name)
    }
}

/// The ACME store of host `me`: the cluster's when it uses the cluster datastore
/// ([`crate::cluster::uses_datastore`]), else its own files.
pub fn store<'a>(
    system: &'a dyn System,
    paths: &'a Paths,
    clusters: &Clusters,
    me: &str,
    settings: &crate::front::acme::AcmeSettings,
) -> Result<Box<dyn AcmeStore + 'a>, AcmeError> {
    if super::uses_datastore(system, paths, clusters, me) {
        Ok(Box::new(EtcdAcme::open(system, paths, clusters, me)?))
    } else {
        Ok(Box::new(crate::front::acme::LocalAcme::new(
            system, paths, settings,
        )))
    }
}

/// The tokens of the cluster's challenges, for a responder: read from etcd at each request
/// through a connection that `open` makes (again after a failure).
pub fn challenge_lookup(
    open: impl Fn() -> Result<Connection, ClusterError> + Send + Sync + 'static,
) -> crate::front::acme::Lookup {
    let conn: Mutex<Option<Connection>> = Mutex::new(None);
    Arc::new(move |token: &str| {
        let mut held = conn.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            *held = open()
                .map_err(|e| eprintln!("srvctl-sync: challenge: {e}"))
                .ok();
        }
        let c = held.as_ref()?;
        let full = format!("{}{CHALLENGES}{}", c.prefix(), encode(token));
        match c.read("reading a challenge", |mut kv| {
            let full = full.clone();
            async move { kv.get(full, None).await }
        }) {
            Ok(found) => found
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
            Err(e) => {
                eprintln!("srvctl-sync: challenge: {e}");
                *held = None;
                None
            }
        }
    })
}
