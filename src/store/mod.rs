//! The datastore on disk: one writer at a time, every write atomic.
//!
//! Writers take an exclusive `flock` on `datastore.lock`, read the document, change it in
//! memory and replace it with a temp file that was fsynced, renamed over the old one, and
//! followed by an fsync of the directory. A writer killed at any point leaves either the old
//! document or the new one, never a mix; a full disk fails the write and keeps the old one.
//! Readers need no lock.
//!
//! The [`Store`] trait is what the use cases ([`crate::ops`]) see: [`Json`] is this local
//! document, [`Memory`] an in-memory one for tests. A replicated backend fits the same trait:
//! `begin` reads a revision, `commit` writes only if it is still the current one.

mod etcd;
mod memory;

use std::io;
use std::path::{Path, PathBuf};

use crate::config::cluster::Clusters;
use crate::model::claims::Reserved;
use crate::model::{DocumentError, State};
use crate::system::paths::Paths;
use crate::system::{FileLock, LockKind, System};

/// A datastore failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The document changed since the transaction began (another writer committed first).
    #[error("{0}: the datastore changed while this change was being made; run it again")]
    Conflict(String),
    /// The cluster datastore cannot be reached or used (no quorum, no member reachable, a
    /// certificate not accepted): one line naming the cause.
    #[error("{0}")]
    Unavailable(String),
    /// The document is damaged or too new.
    #[error("{path}: {source}")]
    Document {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: DocumentError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Read the datastore without locking; a missing document is an empty datastore. Records
/// that break an invariant are set aside ([`State::load`]), checked against the names that
/// clusters.json and settings.json reserve.
pub fn read(system: &dyn System, paths: &Paths) -> Result<State, StoreError> {
    read_bytes(system, paths).map(|(state, _)| state)
}

/// When the datastore document was last written, in whole seconds since the epoch; 0 when
/// there is none (or its time is before 1970 or after 2106).
pub fn written_at(system: &dyn System, paths: &Paths) -> u32 {
    system
        .stamp(&paths.datastore())
        .ok()
        .flatten()
        .and_then(|s| u32::try_from(s.modified.div_euclid(1_000_000_000)).ok())
        .unwrap_or(0)
}

/// Read only the accounts of the datastore, without locking ([`State::load_accounts`]): what
/// a reader at every SSH login needs, at a fraction of the cost of [`read`].
pub fn read_accounts(system: &dyn System, paths: &Paths) -> Result<State, StoreError> {
    let path = &paths.datastore();
    match system.read(path).map_err(io_err(path))? {
        Some(bytes) => State::load_accounts(&bytes).map_err(|source| StoreError::Document {
            path: path.to_owned(),
            source,
        }),
        None => Ok(State::default()),
    }
}

fn read_bytes(system: &dyn System, paths: &Paths) -> Result<(State, Option<Vec<u8>>), StoreError> {
    let path = &paths.datastore();
    match system.read(path).map_err(io_err(path))? {
        Some(bytes) => State::load(&bytes, &Reserved::load(system, paths))
            .map(|s| (s, Some(bytes)))
            .map_err(|source| StoreError::Document {
                path: path.to_owned(),
                source,
            }),
        None => Ok((State::default(), None)),
    }
}

/// The datastore held for writing: the lock is released when this is dropped.
#[derive(Debug)]
pub struct Writer<'s> {
    system: &'s dyn System,
    path: PathBuf,
    original: Option<Vec<u8>>,
    _lock: FileLock,
}

impl<'s> Writer<'s> {
    /// Take the writer lock (waiting for other writers) and read the current document.
    pub fn lock(system: &'s dyn System, paths: &Paths) -> Result<(Self, State), StoreError> {
        let lock = take_lock(system, paths, LockKind::Exclusive)?;
        remove_stale_temp_files(system, &paths.state_dir());
        let path = paths.datastore();
        let (state, original) = read_bytes(system, paths)?;
        Ok((
            Self {
                system,
                path,
                original,
                _lock: lock,
            },
            state,
        ))
    }

    /// Replace the document with `state`, atomically. Returns whether any byte changed.
    pub fn commit(&mut self, state: &State) -> Result<bool, StoreError> {
        let bytes = state.to_json();
        if self.original.as_deref() == Some(bytes.as_slice()) {
            return Ok(false);
        }
        // Through a temp file beside it: fsync, rename, fsync the directory.
        self.system
            .write(&self.path, &bytes, 0o644, true)
            .map_err(io_err(&self.path))?;
        self.original = Some(bytes);
        Ok(true)
    }
}

pub use etcd::{Etcd, Refresh, revision_file};
pub use memory::Memory;

/// The datastore of host `me`: [`Etcd`] when it is in a replicated cluster (one of more than
/// one host in clusters.json) and has its cluster identity (`pki/cluster/host.crt`; until then
/// it cannot reach etcd and keeps its local document), [`Json`] otherwise.
pub fn open<'s>(
    system: &'s dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &str,
) -> Box<dyn Store + 's> {
    if crate::cluster::uses_datastore(system, paths, clusters, me) {
        Box::new(Etcd::new(system, paths, clusters, me))
    } else {
        Box::new(Json::new(system, paths))
    }
}

/// A datastore: read freely, written in transactions that hold it against other writers.
pub trait Store {
    /// The current document, without locking.
    fn load(&self) -> Result<State, StoreError>;
    /// Hold the document against writers (others may read and hold it too) until the guard
    /// is dropped: for a check and the action that depends on it.
    fn hold(&self) -> Result<Held, StoreError>;
    /// Begin a write: hold the document against every other writer and read it.
    fn begin(&self) -> Result<(Box<dyn Transaction + '_>, State), StoreError>;
}

/// One write in progress; dropping it without a commit changes nothing.
pub trait Transaction {
    /// Replace the document with `state` if it is still the one this transaction read
    /// ([`StoreError::Conflict`] otherwise). Returns whether any byte changed.
    fn commit(&mut self, state: &State) -> Result<bool, StoreError>;
}

/// A document held against writers; they wait until this is dropped.
pub struct Held {
    /// The document as it was read under the hold.
    pub state: State,
    _guard: Box<dyn std::any::Any>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("state", &self.state).finish()
    }
}

/// The local JSON document under a file lock (the default backend).
#[derive(Debug, Clone)]
pub struct Json<'s> {
    system: &'s dyn System,
    paths: Paths,
}

impl<'s> Json<'s> {
    /// The datastore of `paths`, reached through `system`.
    pub fn new(system: &'s dyn System, paths: &Paths) -> Self {
        Self {
            system,
            paths: paths.clone(),
        }
    }
}

impl Store for Json<'_> {
    fn load(&self) -> Result<State, StoreError> {
        read(self.system, &self.paths)
    }

    fn hold(&self) -> Result<Held, StoreError> {
        let lock = take_lock(self.system, &self.paths, LockKind::Shared)?;
        Ok(Held {
            state: read(self.system, &self.paths)?,
            _guard: Box::new(lock),
        })
    }

    fn begin(&self) -> Result<(Box<dyn Transaction + '_>, State), StoreError> {
        let (writer, state) = Writer::lock(self.system, &self.paths)?;
        Ok((Box::new(writer), state))
    }
}

impl Transaction for Writer<'_> {
    fn commit(&mut self, state: &State) -> Result<bool, StoreError> {
        Writer::commit(self, state)
    }
}

/// Lock the datastore's lock file (creating it and its directory).
fn take_lock(system: &dyn System, paths: &Paths, how: LockKind) -> Result<FileLock, StoreError> {
    let lock_path = paths.lock();
    system.lock(&lock_path, how).map_err(io_err(&lock_path))
}

/// Remove temp files left by writers that were killed. Called under the writer lock, when no
/// other writer can be between creating and renaming its temp file.
fn remove_stale_temp_files(system: &dyn System, dir: &Path) {
    for name in system.list_dir(dir).unwrap_or_default() {
        if name.to_string_lossy().starts_with(".datastore.json.tmp.") {
            let _ = system.remove(&dir.join(name));
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests may use the real file system directly (see clippy.toml).
    #![allow(clippy::disallowed_methods)]
    use std::fs;

    use super::*;
    use crate::system::Local;

    #[test]
    fn commit_writes_only_changes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        let system = Local::new(true);
        let (mut w, state) = Writer::lock(&system, &paths).unwrap();
        assert!(w.commit(&state).unwrap());
        assert!(!w.commit(&state).unwrap());
        drop(w);
        assert_eq!(read(&system, &paths).unwrap(), state);
        let leftovers: Vec<_> = fs::read_dir(paths.state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn temp_files_of_killed_writers_are_removed_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        fs::create_dir_all(paths.state_dir()).unwrap();
        let stale = paths.state_dir().join(".datastore.json.tmp.999999");
        fs::write(&stale, b"half a docu").unwrap();
        let (_w, _) = Writer::lock(&Local::new(true), &paths).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn the_lock_and_the_document_go_through_the_system() {
        let system = crate::system::Recording::default();
        let paths = Paths::rooted("/r");
        let store = Json::new(&system, &paths);
        let (mut tx, state) = store.begin().unwrap();
        assert!(tx.commit(&state).unwrap());
        drop(tx);
        assert_eq!(store.hold().unwrap().state, state);
        assert_eq!(
            *system.locks.borrow(),
            [
                (paths.lock(), LockKind::Exclusive),
                (paths.lock(), LockKind::Shared)
            ]
        );
        assert!(system.read(&paths.datastore()).unwrap().is_some());
    }

    #[test]
    fn damaged_document_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        fs::create_dir_all(paths.state_dir()).unwrap();
        fs::write(
            paths.datastore(),
            b"{\"schema_version\": 1, \"containers\": [",
        )
        .unwrap();
        let e = read(&Local::new(true), &paths).unwrap_err().to_string();
        assert!(e.contains("datastore.json"), "{e}");
    }
}
