//! What happened to each container's orders: `state.json`, with the back-off after failures.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{AcmeError, BACKOFF_FIRST, BACKOFF_MAX, io_at};
use crate::system::System;
use crate::system::paths::Paths;

/// ACME's own directory.
pub fn acme_dir(paths: &Paths) -> PathBuf {
    paths.host("/var/lib/srvctl/acme")
}

fn state_path(paths: &Paths) -> PathBuf {
    acme_dir(paths).join("state.json")
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
    /// When the next order may be attempted.
    pub fn next_attempt(&self) -> Option<Timestamp> {
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
