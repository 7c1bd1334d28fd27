//! The operator's hand-written JSON files (clusters.json, settings.json): reading them, and
//! the errors that name the file.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::system::System;

/// A hand-written file could not be read, or is not a JSON object.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON or not of the expected shape.
    #[error("{path}: {msg}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl FileError {
    /// A shape error in `path`.
    pub fn shape(path: &Path, msg: impl Into<String>) -> Self {
        Self::Shape {
            path: path.to_owned(),
            msg: msg.into(),
        }
    }
}

/// The text of `path`, which must exist: a missing file is [`io::ErrorKind::NotFound`], bytes
/// that are not UTF-8 [`io::ErrorKind::InvalidData`].
pub fn read_text(system: &dyn System, path: &Path) -> io::Result<String> {
    let bytes = system
        .read(path)?
        .ok_or_else(|| io::Error::from(nix::errno::Errno::ENOENT))?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Read the text of `path`; `Ok(None)` when it does not exist.
pub fn read(system: &dyn System, path: &Path) -> Result<Option<String>, FileError> {
    match read_text(system, path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parse `text` as a JSON object of `what` (for the message); `path` is only used in messages.
pub fn parse_object(path: &Path, text: &str, what: &str) -> Result<Map<String, Value>, FileError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FileError::shape(
            path,
            format!("the top level must be an object of {what}"),
        )),
        Err(e) => Err(FileError::shape(path, format!("not valid JSON: {e}"))),
    }
}
