//! What follows a committed change, as data ([`Step`]) and as actions ([`perform`]): make an
//! account's home, make or remove the container's root filesystem, re-run the generator (daemon-reload), expand the
//! configuration (srvctl-regenerate), start or stop the container, and release the record of
//! a destroyed container.

use std::path::Path;

use super::Services;
use crate::containers::rootfs::{self, Removal};
use crate::containers::units::container_unit;
use crate::model::State;
use crate::model::names::{AccountName, ContainerLogin, ContainerName};
use crate::system::paths::Paths;
use crate::system::{FileKind, Request, System};

/// The unit that expands the datastore into configuration files.
pub const REGENERATE_UNIT: &str = "srvctl-regenerate.service";

/// One step after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Clone the container's root filesystem from its image, unless it has its own already.
    Provision {
        /// The container.
        name: ContainerName,
        /// Its image.
        image: String,
        /// The record's identity, written into the clone's owner marker.
        identity: String,
    },
    /// Remove the root filesystem srvctl cloned for this record (a foreign one is left).
    RemoveRootfs {
        /// The container.
        name: ContainerName,
        /// The record's identity, which the clone's owner marker must hold.
        identity: String,
    },
    /// Create an account's home directory unless it has one.
    CreateHome {
        /// The account.
        name: AccountName,
        /// Its UID.
        uid: u32,
        /// Its GID.
        gid: u32,
    },
    /// Start the container's unit if it has a root filesystem.
    StartContainer(ContainerName),
    /// Remove the record of a container marked as being destroyed (a second transaction).
    ReleaseRecord(ContainerName),
    /// Create an account inside the running container, with a home and `keys` in its
    /// authorized_keys (`sc NAME add-user LOGIN`); an account that exists is left alone.
    CreateLogin {
        /// The container.
        name: ContainerName,
        /// The account.
        login: ContainerLogin,
        /// The owner's public keys, one authorized_keys line each.
        keys: Vec<String>,
    },
    /// Ask systemd.
    Systemd(Request),
}

/// A follow-up step failed; the steps before it were done.
#[derive(Debug, thiserror::Error)]
pub enum FollowUpError {
    /// The container's root filesystem could not be made.
    #[error("creating the root filesystem of {name}: {message}")]
    Provision {
        /// The container.
        name: ContainerName,
        /// What failed.
        message: String,
    },
    /// The container's root filesystem could not be removed.
    #[error("removing the root filesystem of {name}: {source}")]
    RemoveRootfs {
        /// The container.
        name: ContainerName,
        /// What failed.
        source: std::io::Error,
    },
    /// An account's home directory could not be made; the account is recorded.
    #[error(
        "creating the home of {name}: {source}; srvctl-regenerate (`sc regenerate`) tries again"
    )]
    Home {
        /// The account.
        name: AccountName,
        /// What failed.
        source: std::io::Error,
    },
    /// The container did not boot; its record stays.
    #[error(
        "container {name} is recorded but did not start: {source}\nRetry with `sc {name} start`, or remove it with `sc destroy-ve {name}`."
    )]
    NotStarted {
        /// The container.
        name: ContainerName,
        /// The unit, its state and its journal.
        source: crate::containers::boot::NotBooted,
    },
    /// systemd refused or failed a request.
    #[error(transparent)]
    Systemd(#[from] crate::system::systemd::SystemdError),
    /// The account could not be created inside the container.
    #[error("creating the account {login} inside {name}: {message}")]
    Login {
        /// The container.
        name: ContainerName,
        /// The account.
        login: ContainerLogin,
        /// What failed.
        message: String,
    },
    /// The record of a destroyed container could not be released.
    #[error("releasing the record of {name}: {source}")]
    Release {
        /// The container.
        name: ContainerName,
        /// Why.
        source: Box<super::OpError>,
    },
}

/// Run srvctl-regenerate.
pub fn regenerate() -> Step {
    Step::Systemd(Request::Start(REGENERATE_UNIT.into()))
}

/// Look for ACME certificates now rather than at the next timer run (in the background).
pub fn certificates() -> Step {
    Step::Systemd(Request::Trigger("srvctl-certificates.service".into()))
}

/// Re-run the generator and expand the configuration.
pub fn reload() -> Vec<Step> {
    vec![Step::Systemd(Request::DaemonReload), regenerate()]
}

/// After `sc add-user` / `sc add-reseller`: the account's home, then its userdb record.
pub fn added_account(state: &State, name: &AccountName) -> Vec<Step> {
    let user = &state.users[name];
    vec![
        Step::CreateHome {
            name: name.clone(),
            uid: user.uid,
            gid: user.gid,
        },
        regenerate(),
    ]
}

/// After `sc add-ve`: clone, reload, expand, start (unless `start` is false: then only the
/// configuration follows the record).
pub fn added_container(
    name: &ContainerName,
    image: &str,
    identity: &str,
    start: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if start {
        steps.push(Step::Provision {
            name: name.clone(),
            image: image.to_owned(),
            identity: identity.to_owned(),
        });
    }
    steps.extend(reload());
    if start {
        steps.push(Step::StartContainer(name.clone()));
    }
    steps.push(certificates());
    steps
}

/// After the first half of `sc destroy-ve`: stop, remove the files, reload and expand (the
/// container is no longer rendered), and only then release the record and its address.
pub fn destroyed_container(name: &ContainerName, identity: &str) -> Vec<Step> {
    let mut steps = vec![
        Step::Systemd(Request::Stop(container_unit(name))),
        Step::RemoveRootfs {
            name: name.clone(),
            identity: identity.to_owned(),
        },
    ];
    steps.extend(reload());
    steps.push(Step::ReleaseRecord(name.clone()));
    steps
}

/// Perform `steps` in order, stopping at the first that fails; notes for the operator go to
/// stderr.
pub fn perform(env: &Services<'_>, steps: &[Step]) -> Result<(), FollowUpError> {
    for step in steps {
        perform_one(env, step)?;
    }
    Ok(())
}

fn perform_one(env: &Services<'_>, step: &Step) -> Result<(), FollowUpError> {
    let system = env.system;
    match step {
        Step::Provision {
            name,
            image,
            identity,
        } => provision(system, env.paths, name, image, identity),
        Step::RemoveRootfs { name, identity } => {
            let removal =
                rootfs::remove_container(system, env.paths, name, identity).map_err(|source| {
                    FollowUpError::RemoveRootfs {
                        name: name.clone(),
                        source,
                    }
                })?;
            if let Removal::NotOurs(dir) = removal {
                eprintln!(
                    "sc: note: {} was not created by srvctl for {name}; it is left in place",
                    dir.display()
                );
            }
            Ok(())
        }
        Step::CreateHome { name, uid, gid } => {
            crate::accounts::homes::create(system, env.paths, name, *uid, *gid)
                .map(drop)
                .map_err(|source| FollowUpError::Home {
                    name: name.clone(),
                    source,
                })
        }
        Step::StartContainer(name) => {
            if system.kind(&rootfs::machine_dir(env.paths, name)) == Some(FileKind::Dir) {
                let start = Request::Start(container_unit(name));
                crate::containers::boot::start(system, name, &start, env.live_systemd).map_err(
                    |source| FollowUpError::NotStarted {
                        name: name.clone(),
                        source,
                    },
                )?;
            }
            Ok(())
        }
        Step::ReleaseRecord(name) => super::transaction::release(env.system, env.store, name)
            .map(drop)
            .map_err(|e| FollowUpError::Release {
                name: name.clone(),
                source: Box::new(e),
            }),
        Step::CreateLogin { name, login, keys } => {
            let command = crate::gateway::enter::create_login(name, login, keys);
            if !env.live_systemd {
                eprintln!("would run: {command}");
                return Ok(());
            }
            system.run(&command).map_err(|e| FollowUpError::Login {
                name: name.clone(),
                login: login.clone(),
                message: e.to_string(),
            })
        }
        Step::Systemd(request) => Ok(system.systemd(request)?),
    }
}

/// Make the root filesystem of `name` from `image` for the record with `identity`, unless
/// that record has its clone already. The clone is made in staging, marked, then renamed into
/// place, so a half-made one never stands under the machine's name; a directory there that
/// srvctl did not make for this record is refused, never adopted.
pub fn provision(
    system: &dyn System,
    paths: &Paths,
    name: &ContainerName,
    image: &str,
    identity: &str,
) -> Result<(), FollowUpError> {
    let failed = |message: String| FollowUpError::Provision {
        name: name.clone(),
        message,
    };
    let dest = rootfs::machine_dir(paths, name);
    if system.kind(&dest).is_some() {
        return match rootfs::owner(system, &dest) {
            Ok(Some(owner)) if owner == identity => Ok(()),
            Ok(Some(_)) => Err(failed(foreign_rootfs(&dest))),
            // add-ve refuses a directory that is there before the record, so an unmarked one
            // of an existing record was cloned before srvctl marked its clones.
            Ok(None) => {
                eprintln!(
                    "sc: note: {} has no srvctl owner marker (cloned by an older srvctl); destroy-ve will leave it in place",
                    dest.display()
                );
                Ok(())
            }
            Err(e) => Err(failed(e.to_string())),
        };
    }
    let source = crate::containers::image::image_dir(paths, image);
    if system.kind(&source) != Some(FileKind::Dir) {
        eprintln!(
            "sc: note: image {image} is not built ({}); run `sc regenerate rootfs {image}`, then `sc {name} start`",
            source.display()
        );
        return Ok(());
    }
    let start = system.monotonic();
    let staging = rootfs::staging_dir(paths, name);
    let method = clone_marked(system, &source, &staging, name, identity)
        .and_then(|m| system.rename(&staging, &dest).map(|()| m))
        .and_then(|m| rootfs::remove_staging_parent(system, paths, name).map(|()| m))
        .map_err(|e| {
            let _ = rootfs::remove(system, &staging);
            failed(e.to_string())
        })?;
    eprintln!(
        "sc: {name}: root filesystem from image {image} by {method} in {:.2} s",
        (system.monotonic() - start).as_secs_f64()
    );
    Ok(())
}

/// Clone `image` into `staging` (clearing a half-made clone of an earlier try), give it its
/// own identity and mark it as this record's.
fn clone_marked(
    system: &dyn System,
    image: &Path,
    staging: &Path,
    name: &ContainerName,
    identity: &str,
) -> std::io::Result<rootfs::CloneMethod> {
    rootfs::remove(system, staging)?;
    let method = rootfs::clone(system, image, staging)?;
    rootfs::personalise(system, staging, name)?;
    rootfs::mark(system, staging, identity)?;
    Ok(method)
}

/// Why a directory under the machine's name is not used, and how to clear it.
pub fn foreign_rootfs(dir: &Path) -> String {
    format!(
        "{} exists but was not created by srvctl for this container; remove it (`btrfs subvolume delete` or `rm -rf`) and retry",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    // Tests may use the real file system and clock directly (see clippy.toml).
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]
    use super::*;
    use crate::system::Local;

    fn farm_with_image() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        let image = crate::containers::image::image_dir(&paths, "debian");
        std::fs::create_dir_all(image.join("etc")).unwrap();
        std::fs::write(image.join("etc/os-release"), "ID=debian\n").unwrap();
        (dir, paths)
    }

    #[test]
    fn clones_are_marked_and_only_the_own_clone_is_used_or_removed() {
        let (_dir, paths) = farm_with_image();
        let system = Local::new(true);
        let name = ContainerName::new("web.ve").unwrap();
        let dest = rootfs::machine_dir(&paths, &name);
        // A clone killed half-way is cleared, never used.
        let staging = rootfs::staging_dir(&paths, &name);
        std::fs::create_dir_all(staging.join("half")).unwrap();
        provision(&system, &paths, &name, "debian", "web.ve t1").unwrap();
        assert_eq!(
            rootfs::owner(&system, &dest).unwrap().as_deref(),
            Some("web.ve t1")
        );
        assert!(dest.join("etc/os-release").is_file());
        assert!(!staging.parent().unwrap().exists(), "staging is cleared");
        // The same record again: its own clone, kept as it is.
        std::fs::write(dest.join("tenant-file"), "kept").unwrap();
        provision(&system, &paths, &name, "debian", "web.ve t1").unwrap();
        assert!(dest.join("tenant-file").is_file());
        // Another record of the same name: refused, never adopted.
        let e = provision(&system, &paths, &name, "debian", "web.ve t2").unwrap_err();
        assert!(e.to_string().contains("not created by srvctl"), "{e}");
        assert_eq!(
            rootfs::remove_container(&system, &paths, &name, "web.ve t2").unwrap(),
            Removal::NotOurs(dest.clone())
        );
        assert!(dest.join("tenant-file").is_file());
        assert_eq!(
            rootfs::remove_container(&system, &paths, &name, "web.ve t1").unwrap(),
            Removal::Removed
        );
        assert!(!dest.exists());
        assert!(!staging.parent().unwrap().exists());
    }
}
