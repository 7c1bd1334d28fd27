//! The datastore of a replicated cluster: the document lives in etcd ([`crate::cluster::keys`]),
//! and the local JSON is its cache, which the generator reads at boot and every reader reads.
//!
//! `datastore.revision` (`{"revision": N}`) names the mod_revision of `doc/head` that the cache
//! reflects; it is written after the cache, so it is never newer than the cache. A write takes
//! the local writer lock, reads `doc/head` and uses the cache when it is current (otherwise it
//! reads every `doc/` key at one revision and rewrites the cache), and commits with one etcd
//! transaction: if `doc/head` is still at the revision read, put the records whose bytes
//! changed, delete the removed ones and put `doc/head`. Another host's commit in between makes
//! it a [`StoreError::Conflict`]; an etcd without quorum, [`StoreError::Unavailable`].
//!
//! While the cluster's datastore was never written (no `doc/head`), the local document is the
//! one a first commit puts into etcd: the first host to write seeds the cluster with its data.

use std::cell::OnceCell;
use std::path::PathBuf;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::{
    Held, Json, Store, StoreError, Transaction, io_err, remove_stale_temp_files, take_lock,
};
use crate::cluster::etcd::Connection;
use crate::cluster::keys::{self, Keys};
use crate::config::cluster::Clusters;
use crate::model::State;
use crate::model::claims::Reserved;
use crate::system::paths::Paths;
use crate::system::{FileLock, LockKind, System};

/// The datastore of a replicated cluster, with the local JSON as its cache.
#[derive(Debug)]
pub struct Etcd<'s> {
    cache: Json<'s>,
    system: &'s dyn System,
    paths: Paths,
    clusters: Clusters,
    me: String,
    connection: OnceCell<Connection>,
}

impl<'s> Etcd<'s> {
    /// The cluster datastore of host `me`; etcd is reached on the first write only.
    pub fn new(system: &'s dyn System, paths: &Paths, clusters: &Clusters, me: &str) -> Self {
        Self {
            cache: Json::new(system, paths),
            system,
            paths: paths.clone(),
            clusters: clusters.clone(),
            me: me.to_owned(),
            connection: OnceCell::new(),
        }
    }

    /// The connection to the cluster's members, made on first use.
    pub fn connection(&self) -> Result<&Connection, StoreError> {
        if let Some(c) = self.connection.get() {
            return Ok(c);
        }
        let c = Connection::open(self.system, &self.paths, &self.clusters, &self.me)
            .map_err(unavailable)?;
        Ok(self.connection.get_or_init(|| c))
    }

    fn revision_path(&self) -> PathBuf {
        revision_file(&self.paths)
    }

    /// The revision of `doc/head` the cache reflects (0: none recorded).
    fn cached_revision(&self) -> Result<i64, StoreError> {
        let path = self.revision_path();
        let Some(bytes) = self.system.read(&path).map_err(io_err(&path))? else {
            return Ok(0);
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(value["revision"].as_i64().unwrap_or(0))
    }

    /// Write the cache, then the revision it reflects.
    fn write_cache(&self, document: &[u8], revision: i64) -> Result<(), StoreError> {
        let path = self.paths.datastore();
        self.system
            .write(&path, document, 0o644, true)
            .map_err(io_err(&path))?;
        let path = self.revision_path();
        let record = format!("{{\"revision\": {revision}}}\n");
        self.system
            .write(&path, record.as_bytes(), 0o644, true)
            .map_err(io_err(&path))
    }

    fn parse(&self, document: &[u8], source: &str) -> Result<State, StoreError> {
        State::load(document, &Reserved::load(self.system, &self.paths)).map_err(|source_err| {
            StoreError::Document {
                path: source.into(),
                source: source_err,
            }
        })
    }

    /// The document at the current `doc/head`, from the cache when it is current: its keys,
    /// its state and the head's mod_revision (0: never written).
    fn current(&self, conn: &Connection) -> Result<(Keys, State, i64), StoreError> {
        let (head_revision, _) = self.head(conn)?;
        let path = self.paths.datastore();
        let cache = self.system.read(&path).map_err(io_err(&path))?;
        match cache {
            // A cluster never written has no keys yet: the first commit puts every record.
            None if head_revision == 0 => Ok((Keys::new(), State::default(), 0)),
            Some(bytes) if head_revision == 0 => {
                Ok((Keys::new(), self.parse(&bytes, &path.to_string_lossy())?, 0))
            }
            Some(bytes) if head_revision == self.cached_revision()? => Ok((
                split(&bytes)?,
                self.parse(&bytes, &path.to_string_lossy())?,
                head_revision,
            )),
            _ => self.fetch(conn),
        }
    }

    /// The mod_revision of `doc/head` (0: never written) and the revision etcd read it at.
    fn head(&self, conn: &Connection) -> Result<(i64, i64), StoreError> {
        let head_key = format!("{}{}", conn.prefix(), keys::HEAD);
        let head = conn
            .read("reading doc/head", |mut kv| {
                let key = head_key.clone();
                async move { kv.get(key, None).await }
            })
            .map_err(unavailable)?;
        let read_at = head.header().map_or(0, |h| h.revision());
        Ok((
            head.kvs().first().map_or(0, |kv| kv.mod_revision()),
            read_at,
        ))
    }

    /// Bring the cache up to date with the cluster, under the writer lock (the sync service
    /// does, whenever `doc/head` moves).
    pub fn refresh(&self) -> Result<Refresh, StoreError> {
        let _lock = take_lock(self.system, &self.paths, LockKind::Exclusive)?;
        let conn = self.connection()?;
        let (revision, read_at) = self.head(conn)?;
        let path = self.paths.datastore();
        let before = self.system.read(&path).map_err(io_err(&path))?;
        if revision == 0 || (before.is_some() && revision == self.cached_revision()?) {
            return Ok(Refresh {
                revision,
                read_at,
                changed: false,
            });
        }
        let (_, _, revision) = self.fetch(conn)?;
        let after = self.system.read(&path).map_err(io_err(&path))?;
        Ok(Refresh {
            revision,
            read_at,
            changed: before != after,
        })
    }

    /// Read every `doc/` key at one revision and rewrite the cache from it.
    fn fetch(&self, conn: &Connection) -> Result<(Keys, State, i64), StoreError> {
        let prefix = conn.prefix();
        let doc = format!("{prefix}{}", keys::DOC);
        let all = conn
            .read("reading the datastore", |mut kv| {
                let doc = doc.clone();
                async move { kv.get(doc, Some(GetOptions::new().with_prefix())).await }
            })
            .map_err(unavailable)?;
        let mut original = Keys::new();
        let mut head_revision = 0;
        for entry in all.kvs() {
            let key = String::from_utf8_lossy(entry.key());
            let Some(key) = key.strip_prefix(prefix) else {
                continue;
            };
            if key == keys::HEAD {
                head_revision = entry.mod_revision();
            } else {
                original.insert(key.to_owned(), entry.value().to_vec());
            }
        }
        let document = join(&original)?;
        let state = self.parse(&document, &format!("{prefix}{}", keys::DOC))?;
        self.write_cache(&document, head_revision)?;
        Ok((original, state, head_revision))
    }
}

/// What [`Etcd::refresh`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// The mod_revision of `doc/head` that the cache now reflects.
    pub revision: i64,
    /// The revision etcd read `doc/head` at: nothing of the document changed up to it.
    pub read_at: i64,
    /// Whether the cached document changed.
    pub changed: bool,
}

/// `datastore.revision` under `paths`: the etcd revision the cache reflects.
pub fn revision_file(paths: &Paths) -> PathBuf {
    paths.state_dir().join("datastore.revision")
}

fn unavailable(e: crate::cluster::etcd::ClusterError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn split(document: &[u8]) -> Result<Keys, StoreError> {
    keys::split(document).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn join(keys: &Keys) -> Result<Vec<u8>, StoreError> {
    keys::join(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl Store for Etcd<'_> {
    fn load(&self) -> Result<State, StoreError> {
        self.cache.load()
    }

    fn hold(&self) -> Result<Held, StoreError> {
        self.cache.hold()
    }

    fn begin(&self) -> Result<(Box<dyn Transaction + '_>, State), StoreError> {
        let lock = take_lock(self.system, &self.paths, LockKind::Exclusive)?;
        remove_stale_temp_files(self.system, &self.paths.state_dir());
        let conn = self.connection()?;
        let (original, state, head) = self.current(conn)?;
        Ok((
            Box::new(EtcdTransaction {
                store: self,
                conn,
                original,
                head,
                _lock: lock,
            }),
            state,
        ))
    }
}

/// A write to the cluster datastore: compare `doc/head`, then put what changed.
struct EtcdTransaction<'a> {
    store: &'a Etcd<'a>,
    conn: &'a Connection,
    original: Keys,
    head: i64,
    _lock: FileLock,
}

impl EtcdTransaction<'_> {
    /// The operations that turn the original keys into `new`, and put the head.
    fn operations(&self, new: &Keys) -> Vec<TxnOp> {
        let prefix = self.conn.prefix();
        let mut ops: Vec<TxnOp> = new
            .iter()
            .filter(|(k, v)| self.original.get(*k) != Some(v))
            .map(|(k, v)| TxnOp::put(format!("{prefix}{k}"), v.clone(), None))
            .collect();
        ops.extend(
            self.original
                .keys()
                .filter(|k| !new.contains_key(*k))
                .map(|k| TxnOp::delete(format!("{prefix}{k}"), None)),
        );
        if !ops.is_empty() {
            let head = serde_json::json!({
                "by": self.store.me,
                "at": self.store.system.now().to_string(),
            });
            ops.push(TxnOp::put(
                format!("{prefix}{}", keys::HEAD),
                head.to_string(),
                None,
            ));
        }
        ops
    }
}

impl Transaction for EtcdTransaction<'_> {
    fn commit(&mut self, state: &State) -> Result<bool, StoreError> {
        let new = split(&state.to_json())?;
        let ops = self.operations(&new);
        if ops.is_empty() {
            return Ok(false);
        }
        let head_key = format!("{}{}", self.conn.prefix(), keys::HEAD);
        let unchanged = if self.head == 0 {
            Compare::version(head_key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(head_key, CompareOp::Equal, self.head)
        };
        let txn = Txn::new().when([unchanged]).and_then(ops);
        let mut kv = self.conn.kv();
        let answer = self
            .conn
            .request("the change", kv.txn(txn))
            .map_err(unavailable)?;
        if !answer.succeeded() {
            return Err(StoreError::Conflict("the cluster datastore".into()));
        }
        let revision = answer.header().map_or(0, |h| h.revision());
        self.store.write_cache(&join(&new)?, revision)?;
        self.original = new;
        self.head = revision;
        Ok(true)
    }
}
