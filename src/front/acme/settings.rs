//! The ACME part of the host settings.

use std::net::{IpAddr, SocketAddr};
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
    /// The DNS resolvers asked whether a name points at this host (address and port), instead
    /// of the host's `dns1`/`dns2` or the system's resolvers.
    #[serde(default, rename = "acme_resolvers")]
    pub resolvers: Vec<SocketAddr>,
    /// The address names must point at, when it is not the host's `host_ip` (a host behind
    /// NAT).
    #[serde(default, rename = "acme_public_ip")]
    pub public_ip: Option<IpAddr>,
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
            resolvers: Vec::new(),
            public_ip: None,
        }
    }
}

/// The host settings file.
pub fn settings_path(paths: &Paths) -> PathBuf {
    paths.host("/etc/srvctl/settings.json")
}

impl AcmeSettings {
    /// Read the settings (defaults when the file does not exist).
    pub fn load(system: &dyn System, paths: &Paths) -> Result<Self, AcmeError> {
        let path = settings_path(paths);
        match system.read(&path).map_err(io_at(&path))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Parse(path.display().to_string(), e)),
            None => Ok(Self::default()),
        }
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
                "acme_listen": "127.0.0.1:5002", "acme_resolvers": ["127.0.0.1:8053"],
                "acme_public_ip": "203.0.113.7"}"#,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 5002);
        assert_eq!(s.resolvers, ["127.0.0.1:8053".parse().unwrap()]);
        assert_eq!(s.public_ip, Some("203.0.113.7".parse().unwrap()));
        // An address without a port is refused rather than guessed.
        assert!(
            serde_json::from_str::<AcmeSettings>(r#"{"acme_resolvers": ["127.0.0.1"]}"#).is_err()
        );
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
    }
}
