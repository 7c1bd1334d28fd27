//! Custom commands: bash scripts `NAME.sh` in `/root/srvctl-includes/` (root's) or
//! `~/srvctl-includes/` (a user's own), run as `sc NAME ARGS…` and listed in `sc --help` with
//! the text of their `# description: …` line. `sc customize NAME` makes one from a template.
//!
//! A custom command runs as the user who runs `sc` (never through the privileged service),
//! and only when it and its directory are owned by that user (or root) and writable by no one
//! else ([`super::trusted`]). Its name is lower-case letters, digits, `-` and `_`, at most
//! [`MAX_NAME`] characters, and no word of `sc` itself.

use std::path::{Path, PathBuf};

use crate::system::paths::Paths;
use crate::system::{FileKind, System};

/// The longest name of a custom command.
pub const MAX_NAME: usize = 40;

/// The file name ending of custom commands.
const SUFFIX: &str = ".sh";

/// The marker of the line that describes a custom command.
const DESCRIPTION: &str = "# description:";

/// How many lines from the top the description is looked for in.
const DESCRIPTION_LINES: usize = 20;

/// A custom command name that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomError {
    /// Not a valid name.
    #[error(
        "invalid custom command name {0}: use 1 to {MAX_NAME} lower-case letters, digits, '-' \
         and '_', starting with a letter or digit (no '/', no '.')"
    )]
    Invalid(String),
    /// A word of sc.
    #[error("{0} is a command of sc itself; choose another name for a custom command")]
    Builtin(String),
    /// The file is not safe to run.
    #[error(
        "custom command {path} is not run: {why} (it and its directory must be owned by you or root and not writable by group or others)"
    )]
    Untrusted {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// A valid custom command name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CustomName(String);

impl CustomName {
    /// `raw`, when it may name a custom command.
    pub fn new(raw: &str) -> Result<Self, CustomError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_NAME
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && raw.as_bytes()[0].is_ascii_alphanumeric();
        if !valid {
            return Err(CustomError::Invalid(crate::model::names::shown(raw)));
        }
        if crate::model::claims::COMMAND_WORDS.contains(&raw) {
            return Err(CustomError::Builtin(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the custom commands of the user `uid` (whose home is `home`) live: root's in
/// `/root/srvctl-includes` (under the scratch root, when there is one), a user's in
/// `HOME/srvctl-includes`.
pub fn dir(paths: &Paths, uid: u32, home: Option<&Path>) -> Option<PathBuf> {
    match uid {
        0 => Some(paths.host("/root/srvctl-includes")),
        _ => home.map(|h| h.join("srvctl-includes")),
    }
}

/// The file of custom command `name` in `dir`.
pub fn file(dir: &Path, name: &CustomName) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", name.0))
}

/// One custom command, as `sc --help` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custom {
    /// Its name.
    pub name: CustomName,
    /// Its description line (empty when it has none).
    pub description: String,
}

/// The custom commands in `dir`, by name: files `NAME.sh` with a valid name.
pub fn list(system: &dyn System, dir: &Path) -> Vec<Custom> {
    let names = system.list_dir(dir).unwrap_or_default();
    names
        .iter()
        .filter_map(|n| n.to_str()?.strip_suffix(SUFFIX))
        .filter_map(|n| CustomName::new(n).ok())
        .filter(|n| system.kind(&file(dir, n)) == Some(FileKind::File))
        .map(|name| Custom {
            description: description(system, &file(dir, &name)),
            name,
        })
        .collect()
}

/// The text after `# description:` in the first lines of `path` (one line, trimmed).
fn description(system: &dyn System, path: &Path) -> String {
    let Ok(Some(bytes)) = system.read(path) else {
        return String::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .take(DESCRIPTION_LINES)
        .find_map(|l| l.trim_start().strip_prefix(DESCRIPTION))
        .map(|d| d.trim().chars().filter(|c| !c.is_control()).collect())
        .unwrap_or_default()
}

/// The custom command `word` of `dir`, when `word` names one there (`None`: not a custom
/// command, so `sc` reads it as a container's name). One that exists but is not safe to run
/// is an error.
pub fn find(
    system: &dyn System,
    dir: &Path,
    word: &str,
    owners: &[u32],
) -> Result<Option<PathBuf>, CustomError> {
    let Ok(name) = CustomName::new(word) else {
        return Ok(None);
    };
    let path = file(dir, &name);
    if system.kind(&path).is_none() && system.read_link(&path).ok().flatten().is_none() {
        return Ok(None);
    }
    let untrusted = |why: String, at: &Path| CustomError::Untrusted {
        path: at.display().to_string(),
        why,
    };
    super::trusted::check(system, dir, FileKind::Dir, owners).map_err(|w| untrusted(w, dir))?;
    super::trusted::check(system, &path, FileKind::File, owners)
        .map_err(|w| untrusted(w, &path))?;
    Ok(Some(path))
}

/// The template of a new custom command `name`.
pub fn template(name: &CustomName) -> String {
    format!(
        "#!/bin/bash\n\
         {DESCRIPTION} {name}: say here what it does (sc --help shows this line)\n\
         #\n\
         # A custom command of srvctl: `sc {name} ARGS...` runs this file with bash, ARGS as \"$@\",\n\
         # as the user who runs sc, with srvctl's context in the environment: SRVCTL_HOST,\n\
         # SRVCTL_CLUSTER, SRVCTL_ROOT, SRVCTL_DATASTORE, SRVCTL_SETTING_<KEY>, ... (the same as\n\
         # `sc exec-function env` shows). Its exit status is sc's.\n\
         set -euo pipefail\n\
         \n\
         echo \"custom command {name} on $SRVCTL_HOST: edit $0\"\n",
        name = name.0
    )
}

/// Make custom command `name` in `dir` from the template, unless it exists; whether it was
/// made.
pub fn create(system: &dyn System, dir: &Path, name: &CustomName) -> std::io::Result<bool> {
    let path = file(dir, name);
    if system.kind(&path).is_some() || system.read_link(&path)?.is_some() {
        return Ok(false);
    }
    if system.kind(dir).is_none() {
        system.create_dir(dir, 0o755)?;
    }
    system.write(&path, template(name).as_bytes(), 0o755, true)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn names_are_plain_words_and_no_word_of_sc() {
        for good in ["backup", "db-dump", "x1_2"] {
            CustomName::new(good).unwrap();
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "..",
            ".hidden",
            "Up",
            "a.b",
            "-x",
            &"x".repeat(41),
        ] {
            assert!(
                matches!(CustomName::new(bad), Err(CustomError::Invalid(_))),
                "{bad}"
            );
        }
        for word in [
            "status",
            "ls",
            "add-ve",
            "customize",
            "diagnose",
            "exec-function",
        ] {
            assert_eq!(
                CustomName::new(word),
                Err(CustomError::Builtin(word.into()))
            );
        }
    }

    #[test]
    fn a_created_command_is_listed_with_its_description_and_found() {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let dir = dir(&paths, 0, None).unwrap();
        assert_eq!(dir, Path::new("/r/root/srvctl-includes"));
        let name = CustomName::new("backup").unwrap();
        assert!(create(&system, &dir, &name).unwrap());
        assert!(!create(&system, &dir, &name).unwrap(), "made once");
        let listed = list(&system, &dir);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].description,
            "backup: say here what it does (sc --help shows this line)"
        );
        assert_eq!(
            find(&system, &dir, "backup", &[0]).unwrap(),
            Some(dir.join("backup.sh"))
        );
        assert_eq!(find(&system, &dir, "web.example.com", &[0]).unwrap(), None);
        assert_eq!(find(&system, &dir, "other", &[0]).unwrap(), None);
        system
            .owners
            .borrow_mut()
            .insert(dir.join("backup.sh"), (1000, 1000));
        assert!(matches!(
            find(&system, &dir, "backup", &[0]),
            Err(CustomError::Untrusted { .. })
        ));
    }
}
