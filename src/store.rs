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

mod memory;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::claims::Reserved;
use crate::model::{DocumentError, State};
use crate::paths::Paths;
use crate::system::{Local, System};

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
pub fn read(paths: &Paths) -> Result<State, StoreError> {
    read_bytes(paths).map(|(state, _)| state)
}

fn read_bytes(paths: &Paths) -> Result<(State, Option<Vec<u8>>), StoreError> {
    let path = &paths.datastore();
    match fs::read(path) {
        Ok(bytes) => State::load(&bytes, &Reserved::load(paths))
            .map(|s| (s, Some(bytes)))
            .map_err(|source| StoreError::Document {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((State::default(), None)),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The datastore held for writing: the lock is released when this is dropped.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    original: Option<Vec<u8>>,
    _lock: File,
}

impl Writer {
    /// Take the writer lock (waiting for other writers) and read the current document.
    pub fn lock(paths: &Paths) -> Result<(Self, State), StoreError> {
        let lock = open_lock(paths)?;
        lock.lock().map_err(io_err(&paths.lock()))?;
        remove_stale_temp_files(&paths.state_dir());
        let (state, original) = read_bytes(paths)?;
        Ok((
            Self {
                path: paths.datastore(),
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
        Local::default()
            .write(&self.path, &bytes, 0o644, true)
            .map_err(io_err(&self.path))?;
        self.original = Some(bytes);
        Ok(true)
    }
}

pub use memory::Memory;

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
pub struct Json {
    paths: Paths,
}

impl Json {
    /// The datastore of `paths`.
    pub fn new(paths: &Paths) -> Self {
        Self {
            paths: paths.clone(),
        }
    }
}

impl Store for Json {
    fn load(&self) -> Result<State, StoreError> {
        read(&self.paths)
    }

    fn hold(&self) -> Result<Held, StoreError> {
        let lock = open_lock(&self.paths)?;
        lock.lock_shared().map_err(io_err(&self.paths.lock()))?;
        Ok(Held {
            state: read(&self.paths)?,
            _guard: Box::new(lock),
        })
    }

    fn begin(&self) -> Result<(Box<dyn Transaction + '_>, State), StoreError> {
        let (writer, state) = Writer::lock(&self.paths)?;
        Ok((Box::new(writer), state))
    }
}

impl Transaction for Writer {
    fn commit(&mut self, state: &State) -> Result<bool, StoreError> {
        Writer::commit(self, state)
    }
}

/// Open (creating it and its directory) the lock file of the datastore.
fn open_lock(paths: &Paths) -> Result<File, StoreError> {
    let dir = paths.state_dir();
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let lock_path = paths.lock();
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err(&lock_path))
}

/// Remove temp files left by writers that were killed. Called under the writer lock, when no
/// other writer can be between creating and renaming its temp file.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".datastore.json.tmp.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_writes_only_changes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        let (mut w, state) = Writer::lock(&paths).unwrap();
        assert!(w.commit(&state).unwrap());
        assert!(!w.commit(&state).unwrap());
        drop(w);
        assert_eq!(read(&paths).unwrap(), state);
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
        let (_w, _) = Writer::lock(&paths).unwrap();
        assert!(!stale.exists());
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
        let e = read(&paths).unwrap_err().to_string();
        assert!(e.contains("datastore.json"), "{e}");
    }
}
