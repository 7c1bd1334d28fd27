//! The ACME part of the host settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{AcmeError, DEFAULT_LISTEN, LETS_ENCRYPT, io_at};
use crate::system::System;
use crate::system::paths::Paths;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
