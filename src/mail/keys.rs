//! The sites' DKIM keys: an RSA 2048 key made for each site at `sc add-ve` on the site's host,
//! with OpenSSL's `genpkey` (the vetted generator every Debian and Fedora host has; srvctl
//! carries no RSA code of its own). The private key stays on the host, 0600, in
//! `/var/lib/srvctl/dkim/<site>.private` (`units/srvctl-opendkim.service` hands the directory
//! to the `opendkim` user, the only one who reads it); the public key and its selector go into
//! the site's record ([`crate::model::dkim`]), from where the zones publish it.

use std::path::PathBuf;

use crate::model::dkim::{DkimKey, Selector};
use crate::model::names::ContainerName;
use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// The directory of the private keys (absolute, on the host).
pub const KEYS: &str = "/var/lib/srvctl/dkim";

/// The bits of every key made.
pub const BITS: u32 = 2048;

/// The private key file of site `name`.
pub fn key_file(paths: &Paths, name: &ContainerName) -> PathBuf {
    paths.host(&format!("{KEYS}/{name}.private"))
}

/// A key pair made and not yet installed: the private key (PEM), the public key.
pub struct NewKey {
    private: Vec<u8>,
    public: DkimKey,
}

impl NewKey {
    /// Install the private key as site `name`'s (0600) and return the public key for its
    /// record.
    pub fn install(
        &self,
        system: &dyn System,
        paths: &Paths,
        name: &ContainerName,
    ) -> Result<DkimKey, String> {
        let file = key_file(paths, name);
        system
            .write(&file, &self.private, 0o600, true)
            .map_err(|e| format!("the DKIM key of {name}: {}: {e}", file.display()))?;
        Ok(self.public.clone())
    }
}

/// Make a new key pair at `now` (RFC 3339; its date names the selector), in memory. `None`
/// when OpenSSL is not installed: the site then has no key.
pub fn generate(system: &dyn System, now: &str) -> Option<Result<NewKey, String>> {
    let openssl = crate::system::program(system, "openssl")?;
    let openssl = openssl.to_string_lossy();
    let bits = format!("rsa_keygen_bits:{BITS}");
    // The key takes a while of CPU: at a low priority (nice, of coreutils, on every host), so
    // that many add-ve at once do not starve the datastore's etcd members of their answers.
    let genpkey_args = [
        "genpkey",
        "-quiet",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        bits.as_str(),
    ];
    let genpkey = match crate::system::program(system, "nice") {
        Some(nice) => CommandLine::new(
            &nice.to_string_lossy(),
            ["-n", "15", &*openssl].into_iter().chain(genpkey_args),
        ),
        None => CommandLine::new(&openssl, genpkey_args),
    };
    let made = (|| -> Result<NewKey, String> {
        let private = system.exchange(&genpkey, b"").map_err(|e| e.to_string())?;
        let pkey = CommandLine::new(&openssl, ["pkey", "-pubout"]);
        let public = system
            .exchange(&pkey, &private)
            .map_err(|e| e.to_string())?;
        let public = DkimKey::new(Selector::dated(now), &pem_body(&public))
            .map_err(|e| format!("openssl gave no usable key: {e}"))?;
        Ok(NewKey { private, public })
    })();
    Some(made.map_err(|e| format!("a DKIM key could not be made: {e}")))
}

/// The base64 body of a PEM block, without its lines' breaks.
fn pem_body(pem: &[u8]) -> String {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_of_a_pem_block_is_its_base64() {
        assert_eq!(
            pem_body(b"-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n"),
            "AAAABBBB"
        );
    }
}
