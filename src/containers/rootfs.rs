//! Container root filesystems: cloned from an image by the fastest means the storage offers,
//! given their own identity, and removed without leftovers.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::names::ContainerName;
use crate::system::paths::Paths;
use crate::system::{Btrfs, CommandLine, System};

/// How a root filesystem was made from its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloneMethod {
    /// A btrfs snapshot of the image subvolume: instant, shares every block.
    Snapshot,
    /// A reflink copy (btrfs, xfs): new inodes, shared data blocks.
    Reflink,
    /// A plain copy.
    Copy,
}

impl fmt::Display for CloneMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "btrfs snapshot",
            Self::Reflink => "reflink copy",
            Self::Copy => "plain copy",
        })
    }
}

/// Where systemd-nspawn@NAME.service looks for the container's root filesystem.
pub fn machine_dir(paths: &Paths, name: &ContainerName) -> PathBuf {
    paths.host(&format!("/var/lib/machines/{name}"))
}

/// The names of the entries under /var/lib/machines (one directory read, however many
/// containers): a container whose name is not among them has no root filesystem yet.
pub fn machine_names(
    system: &dyn System,
    paths: &Paths,
) -> std::io::Result<std::collections::BTreeSet<std::ffi::OsString>> {
    Ok(system
        .list_dir(&paths.host("/var/lib/machines"))?
        .into_iter()
        .collect())
}

/// The file srvctl writes at the top of every root filesystem it clones, holding the identity
/// of the record it was made for ([`crate::model::Container::rootfs_identity`]).
pub const OWNER_MARKER: &str = ".srvctl-owner";

/// Where a root filesystem is cloned before it is marked and renamed into place: a clone
/// killed half-way never appears under the machine's name.
pub fn staging_dir(paths: &Paths, name: &ContainerName) -> PathBuf {
    paths.host(&format!("/var/lib/machines/.srvctl-staging/{name}"))
}

/// Remove the staging directory itself once nothing is staged in it.
pub fn remove_staging_parent(
    system: &dyn System,
    paths: &Paths,
    name: &ContainerName,
) -> std::io::Result<()> {
    match staging_dir(paths, name).parent() {
        Some(parent) => system.remove_empty_dir(parent),
        None => Ok(()),
    }
}

/// The identity in the owner marker of `dir`, if it has one.
pub fn owner(system: &dyn System, dir: &Path) -> std::io::Result<Option<String>> {
    Ok(system
        .read(&dir.join(OWNER_MARKER))?
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_owned()))
}

/// Write the owner marker of a root filesystem made for the record with `identity`.
pub fn mark(system: &dyn System, dir: &Path, identity: &str) -> std::io::Result<()> {
    system.write(
        &dir.join(OWNER_MARKER),
        format!("{identity}\n").as_bytes(),
        0o600,
        true,
    )
}

/// What [`remove_container`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// srvctl's clone for this record was removed (or there was none).
    Removed,
    /// The directory was not made by srvctl for this record, so it was left in place.
    NotOurs(PathBuf),
}

/// Create an empty directory to build a root filesystem in: a subvolume on btrfs, so that
/// containers can later be snapshots of it.
pub fn make_dir(system: &dyn System, dir: &Path) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    if system.btrfs(parent) != Btrfs::No {
        system.run(&CommandLine::new(
            "btrfs",
            [
                "subvolume".into(),
                "create".into(),
                dir.as_os_str().to_owned(),
            ],
        ))
    } else {
        system.create_dir(dir, 0o755)
    }
}

/// Clone `image` to `dest` (which must not exist), by snapshot, reflink or plain copy.
pub fn clone(system: &dyn System, image: &Path, dest: &Path) -> std::io::Result<CloneMethod> {
    if let Some(parent) = dest.parent() {
        system.create_dir(parent, 0o700)?;
    }
    if system.btrfs(image) == Btrfs::Subvolume
        && dest.parent().is_some_and(|p| system.btrfs(p) != Btrfs::No)
    {
        let snapshot = CommandLine::new(
            "btrfs",
            [
                "subvolume".into(),
                "snapshot".into(),
                image.as_os_str().to_owned(),
                dest.as_os_str().to_owned(),
            ],
        );
        if system.run(&snapshot).is_ok() {
            return Ok(CloneMethod::Snapshot);
        }
    }
    let copy = |reflink: &str| {
        CommandLine::new(
            "cp",
            [
                format!("--reflink={reflink}").into(),
                "-a".into(),
                image.as_os_str().to_owned(),
                dest.as_os_str().to_owned(),
            ],
        )
    };
    if system.run(&copy("always")).is_ok() {
        return Ok(CloneMethod::Reflink);
    }
    remove(system, dest)?;
    system.run(&copy("never"))?;
    Ok(CloneMethod::Copy)
}

/// A fresh random machine id: 32 lower-case hex digits.
fn new_machine_id(system: &dyn System) -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    system.random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Give a fresh clone its own identity: machine id, hostname, no SSH host keys (made at its
/// first boot), and a placeholder page naming the site.
pub fn personalise(system: &dyn System, root: &Path, name: &ContainerName) -> std::io::Result<()> {
    let write =
        |rel: &str, text: String| system.write(&root.join(rel), text.as_bytes(), 0o644, true);
    write("etc/machine-id", format!("{}\n", new_machine_id(system)?))?;
    write("etc/hostname", format!("{name}\n"))?;
    write(
        "var/www/html/index.html",
        format!(
            "<!doctype html>\n<title>{name}</title>\n<h1>{name}</h1>\n<p>This site is hosted by srvctl and has no content yet.</p>\n"
        ),
    )?;
    remove_host_keys(system, root)
}

/// Remove the root filesystem srvctl cloned for the record with `identity` (and a half-made
/// clone left in staging), with the journal link nspawn made for it on the host
/// (`/var/log/journal/<machine-id>`). A directory srvctl did not make for this record is left.
pub fn remove_container(
    system: &dyn System,
    paths: &Paths,
    name: &ContainerName,
    identity: &str,
) -> std::io::Result<Removal> {
    let dir = machine_dir(paths, name);
    remove(system, &staging_dir(paths, name))?;
    if system.kind(&dir).is_none() {
        return Ok(Removal::Removed);
    }
    if owner(system, &dir)?.as_deref() != Some(identity) {
        return Ok(Removal::NotOurs(dir));
    }
    if let Some(id) = system.read(&dir.join("etc/machine-id"))? {
        let id = String::from_utf8_lossy(&id).trim().to_owned();
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let link = paths.host("/var/log/journal").join(&id);
            if system.read_link(&link)?.is_some() {
                system.remove(&link)?;
            }
        }
    }
    // Renamed away first, then removed: a removal killed half-way leaves no unmarked
    // remains under the machine's name, only srvctl's staging directory.
    let staging = staging_dir(paths, name);
    if let Some(parent) = staging.parent() {
        system.create_dir(parent, 0o700)?;
    }
    system.rename(&dir, &staging)?;
    remove(system, &staging)?;
    remove_staging_parent(system, paths, name)?;
    Ok(Removal::Removed)
}

/// Remove a root filesystem (a btrfs subvolume or a directory tree); a missing one is fine.
pub fn remove(system: &dyn System, dir: &Path) -> std::io::Result<()> {
    if system.kind(dir).is_none() {
        return Ok(());
    }
    if system.btrfs(dir) == Btrfs::Subvolume {
        let delete = CommandLine::new(
            "btrfs",
            [
                "subvolume".into(),
                "delete".into(),
                dir.as_os_str().to_owned(),
            ],
        );
        if system.run(&delete).is_ok() {
            return Ok(());
        }
    }
    system.remove_tree(dir)
}

/// Remove SSH host keys so every clone makes its own.
pub fn remove_host_keys(system: &dyn System, root: &Path) -> std::io::Result<()> {
    let dir = root.join("etc/ssh");
    for name in system.list_dir(&dir).unwrap_or_default() {
        if name.to_string_lossy().starts_with("ssh_host_") {
            system.remove(&dir.join(name))?;
        }
    }
    Ok(())
}
