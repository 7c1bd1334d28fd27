//! Home directories of the accounts: `/home/NAME`, owned by the account, mode 0700.
//!
//! A home is only ever created: one that exists (whatever it is: a directory with the
//! tenant's files, a link, a file) is left exactly as it is, and a removed account's home
//! stays. srvctl-regenerate creates the missing ones, and `sc add-user` / `sc add-reseller`
//! create the new account's right away.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::model::State;
use crate::model::names::AccountName;
use crate::system::paths::Paths;
use crate::system::{FileKind, System};

/// The directory that holds the homes, on the host.
pub const HOMES: &str = "/home";

/// The mode of a new home.
pub const HOME_MODE: u32 = 0o700;

/// The home of `name` on the host, as userdb records name it.
pub fn home_path(name: &AccountName) -> String {
    format!("{HOMES}/{name}")
}

/// Where the home of `name` is now (under a scratch root, below it). Account names are
/// validated, but a name that is not exactly one plain path component is refused here too,
/// so a home can never lie outside [`HOMES`].
pub fn home_dir(paths: &Paths, name: &AccountName) -> io::Result<PathBuf> {
    let mut parts = Path::new(name.as_str()).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Ok(paths.host(HOMES).join(name.as_str())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a name a home may have"),
        )),
    }
}

/// Create the home of `name` for `uid`:`gid` unless one is there; returns whether it was
/// created. [`HOMES`] is made (0755) when missing.
pub fn create(
    system: &dyn System,
    paths: &Paths,
    name: &AccountName,
    uid: u32,
    gid: u32,
) -> io::Result<bool> {
    let dir = home_dir(paths, name)?;
    let parent = paths.host(HOMES);
    if system.kind(&parent).is_none() {
        system.create_dir(&parent, 0o755)?;
    }
    system.create_owned_dir(&dir, HOME_MODE, uid, gid)
}

/// What [`ensure`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ensured {
    /// Homes created (host paths).
    pub created: Vec<String>,
    /// Homes that could not be created, with why.
    pub failed: Vec<String>,
}

/// Create every missing home of the datastore's accounts. A failure is reported and the
/// others are still made.
pub fn ensure(system: &dyn System, paths: &Paths, state: &State) -> Ensured {
    let mut out = Ensured::default();
    for (name, user) in &state.users {
        if home_dir(paths, name).is_ok_and(|d| system.kind(&d) == Some(FileKind::Dir)) {
            continue;
        }
        match create(system, paths, name, user.uid, user.gid) {
            Ok(true) => out.created.push(home_path(name)),
            Ok(false) => {}
            Err(e) => out
                .failed
                .push(format!("home {} of {name}: {e}", home_path(name))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    // Tests may use the real file system directly (see clippy.toml).
    #![allow(clippy::disallowed_methods, clippy::disallowed_types)]
    use super::*;
    use crate::system::Recording;

    fn state() -> State {
        State::from_json(
            br#"{"schema_version": 1, "users": {
              "bob": {"reseller_id": 0, "index": 1, "uid": 20001, "gid": 20001, "created": "t", "created_by": "root"},
              "carol": {"reseller_id": 0, "index": 2, "uid": 20002, "gid": 20002, "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn creates_missing_homes_owned_0700_and_leaves_existing_ones() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let carol = Path::new("/r/home/carol");
        system.create_dir(carol, 0o755).unwrap();
        let done = ensure(&system, &paths, &state());
        assert_eq!(done.created, ["/home/bob"]);
        assert!(done.failed.is_empty());
        assert_eq!(
            system.owners.borrow().get(Path::new("/r/home/bob")),
            Some(&(20001, 20001))
        );
        assert_eq!(system.owners.borrow().get(carol), None, "left as it was");
        assert_eq!(ensure(&system, &paths, &state()), Ensured::default());
    }

    #[test]
    fn a_real_home_is_owned_by_the_account_and_an_existing_link_is_not_followed() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::rooted(dir.path());
        let system = crate::system::Local::new(true);
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("home/carol")).unwrap();
        let done = ensure(&system, &paths, &state());
        assert_eq!(done.created, ["/home/bob"]);
        use std::os::unix::fs::MetadataExt;
        let bob = std::fs::metadata(dir.path().join("home/bob")).unwrap();
        assert_eq!(
            (bob.uid(), bob.gid(), bob.mode() & 0o7777),
            (20001, 20001, 0o700)
        );
        let target = std::fs::metadata(&elsewhere).unwrap();
        assert_eq!(
            target.uid(),
            0,
            "a link in place of a home is never followed"
        );
    }
}
