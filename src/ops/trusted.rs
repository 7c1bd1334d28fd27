//! Whether a program the operator (or a user) put on the host may be run by srvctl: hooks and
//! custom commands run only when neither they nor their directory can be changed by anyone
//! but their owner, who must be one srvctl trusts.

use std::path::Path;

use crate::system::{FileKind, Ownership, System};

/// The ownership of `path` when it is a `kind` owned by one of `owners` and not writable by
/// group or others; else why not, in words.
pub fn check(
    system: &dyn System,
    path: &Path,
    kind: FileKind,
    owners: &[u32],
) -> Result<Ownership, String> {
    if system.kind(path) != Some(kind) {
        return Err(match kind {
            FileKind::Dir => "not a directory".into(),
            _ => "not a regular file".into(),
        });
    }
    let ownership = system
        .ownership(path)
        .map_err(|e| e.to_string())?
        .ok_or("it went away")?;
    if !owners.contains(&ownership.uid) {
        let trusted: Vec<String> = owners
            .iter()
            .map(|&uid| match uid {
                0 => "root".to_owned(),
                uid => format!("uid {uid}"),
            })
            .collect();
        return Err(format!(
            "owned by uid {}, not {}",
            ownership.uid,
            trusted.join(" or ")
        ));
    }
    if ownership.mode & 0o022 != 0 {
        return Err(format!(
            "mode {:04o} lets group or others write it",
            ownership.mode
        ));
    }
    Ok(ownership)
}
