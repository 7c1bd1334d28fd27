//! The cluster's TSIG key of zone transfers ([`crate::dns::transfer`]), kept once in etcd at
//! `dns/transfer-key` below the cluster's prefix (its secret alone, base64). The DNS master's
//! srvctl-sync makes it when the cluster has slaves and etcd has none (a cluster has one
//! master, so no two hosts make one); every DNS host's srvctl-sync writes it to
//! [`KEY_FILE`], in a directory of mode 0750 owned by root and named's group (Debian `bind`,
//! Fedora `named`): named reads it, no one else but root can reach it.

use crate::cluster::sync::Feed;
use crate::config::cluster::{Clusters, DnsRole, Host};
use crate::dns::transfer::{KEY_FILE, KEY_NAME, Transfers};
use crate::system::System;
use crate::system::paths::Paths;

/// The key's secret, below the cluster's prefix.
pub const KEY: &str = "dns/transfer-key";
/// The groups named runs as: Debian's, then Fedora's.
const NAMED_GROUPS: [&str; 2] = ["bind", "named"];
/// The length of the secret, in bytes (HMAC-SHA256's own).
const SECRET_BYTES: usize = 32;

/// One round on host `me`: make the key if it is the master and etcd has none, then write the
/// key file if it differs. Returns whether the key file changed (regenerate then applies the
/// fragment that includes it); nothing happens on a host that needs no key.
pub fn round(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
    feed: &mut dyn Feed,
) -> Result<bool, String> {
    if !Transfers::of(clusters, me).is_some_and(|t| t.needs_key()) {
        return Ok(false);
    }
    let secret = match feed.entries(KEY)?.remove("") {
        Some(secret) => secret,
        None if me.dns == Some(DnsRole::Master) => {
            let secret = new_secret(system)?;
            feed.put(KEY, &secret)?;
            secret
        }
        None => return Ok(false),
    };
    let text = key_file(&secret).ok_or_else(|| format!("etcd's {KEY} is not a key's secret"))?;
    let file = paths.host(KEY_FILE);
    if system.read(&file).ok().flatten().as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    let dir = file.parent().expect("the key file lies in a directory");
    let gid = named_gid(system, paths)?;
    let said = |e: std::io::Error| format!("{}: {e}", dir.display());
    if !system.create_owned_dir(dir, 0o750, 0, gid).map_err(said)? {
        let owner = system.ownership(dir).map_err(said)?;
        if owner.is_none_or(|o| o.uid != 0 || o.gid != gid || o.mode & 0o027 != 0) {
            return Err(format!(
                "{} must be a directory of root and named's group (gid {gid}), mode 0750",
                dir.display()
            ));
        }
    }
    // Readable through the directory only: named's group may enter it, no one else.
    system
        .write(&file, text.as_bytes(), 0o644, true)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(true)
}

/// The key file named reads for `secret`, if it is the base64 of a key of the right length
/// (so nothing of etcd's value can add a statement).
pub fn key_file(secret: &str) -> Option<String> {
    let valid = secret.len() == SECRET_BYTES.div_ceil(3) * 4
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    valid.then(|| {
        format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n")
    })
}

/// A new secret: 32 random bytes, base64.
fn new_secret(system: &dyn System) -> Result<String, String> {
    let mut bytes = [0u8; SECRET_BYTES];
    system
        .random(&mut bytes)
        .map_err(|e| format!("random bytes for the transfer key: {e}"))?;
    Ok(base64(&bytes))
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The gid of named's group, from the host's `/etc/group`.
fn named_gid(system: &dyn System, paths: &Paths) -> Result<u32, String> {
    let path = paths.host("/etc/group");
    let text = system
        .read(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    NAMED_GROUPS
        .iter()
        .find_map(|group| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                (fields.next() == Some(group))
                    .then(|| fields.nth(1)?.parse().ok())
                    .flatten()
            })
        })
        .ok_or_else(|| {
            format!(
                "{} has no group {}: is BIND installed?",
                path.display(),
                NAMED_GROUPS.join(" or ")
            )
        })
}

#[cfg(test)]
mod tests;
