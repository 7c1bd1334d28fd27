//! The accounts' SSH keys: the edits behind `sc add-publickey` and `sc remove-publickey`, the
//! listing of `sc publickeys`, and which keys sshd is given for a login
//! (`srvctl-authorized-keys`). The keys themselves are checked in [`crate::model::keys`].
//!
//! An account's keys open the account on the host (sshd on port 22) and its gateway logins
//! `USER_VE_VEUSER`; a reseller's keys also cover its users' gateway logins, and the
//! operator's keys cover every gateway login (as in srvctl 3).

use std::collections::HashSet;
use std::io::Read;

use serde::Serialize;

use crate::model::keys::{self, KeyList, KeyRecord, ParsedKey};
use crate::model::names::shown;
use crate::model::{Owner, State};
use crate::ops::OpError;
use crate::system::{FileKind, System};

/// The kind of record named in messages.
const KIND: &str = "public key";

/// A key argument could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyArgumentError(String);

/// What the `KEY|FILE|-` argument of `sc add-publickey` stands for, as text: `-` is standard
/// input; an argument that starts with a key type (`ssh-ed25519 AAAA…`) or holds a space is
/// the key itself; anything else is the path of a file holding the key (a `.pub` file). A
/// file or input longer than any key is refused unread. The text is not checked here:
/// [`crate::model::keys::parse`] does that, wherever the text came from.
///
/// This is the one place that turns the argument into key text, so a front end that must
/// not open the caller's files (the privileged service) lets its client call this and sends
/// the text in place of the argument.
///
/// `open_files` is false when the command runs for a caller who is not root (through the
/// service): a path is then never opened here, with root's rights, and is refused as
/// unreadable (the client has read every file its user can read already).
pub fn read_key_argument(
    arg: &str,
    system: &dyn System,
    open_files: bool,
) -> Result<String, KeyArgumentError> {
    if arg == "-" {
        return read_limited(std::io::stdin().lock(), "standard input");
    }
    let first = arg.split_whitespace().next().unwrap_or_default();
    if arg.contains(char::is_whitespace) || keys::looks_like_key_type(first) {
        return Ok(arg.to_owned());
    }
    let path = std::path::Path::new(arg);
    let shown_path = shown(arg);
    if !open_files {
        return Err(KeyArgumentError(format!(
            "{shown_path}: not a key, and not a file you can read (give the key text, a .pub file, or - for standard input)"
        )));
    }
    let unreadable = |why: String| {
        KeyArgumentError(format!(
            "{shown_path}: {why} (give the key text, a .pub file, or - for standard input)"
        ))
    };
    if system.kind(path) != Some(FileKind::File) {
        return Err(unreadable("no such file".into()));
    }
    let stamp = system
        .stamp(path)
        .map_err(|e| unreadable(e.to_string()))?
        .ok_or_else(|| unreadable("no such file".into()))?;
    if stamp.len > keys::MAX_KEY_TEXT as u64 {
        return Err(unreadable(format!(
            "longer than {} bytes, not a public key",
            keys::MAX_KEY_TEXT
        )));
    }
    let bytes = system
        .read(path)
        .map_err(|e| unreadable(e.to_string()))?
        .ok_or_else(|| unreadable("no such file".into()))?;
    text_of(bytes, &shown_path)
}

/// Read at most one byte more than a key may have, and refuse what is longer.
fn read_limited(input: impl std::io::Read, what: &str) -> Result<String, KeyArgumentError> {
    let mut bytes = Vec::new();
    input
        .take(keys::MAX_KEY_TEXT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyArgumentError(format!("reading {what}: {e}")))?;
    if bytes.len() > keys::MAX_KEY_TEXT {
        return Err(KeyArgumentError(format!(
            "{what} holds more than {} bytes, not a public key",
            keys::MAX_KEY_TEXT
        )));
    }
    text_of(bytes, what)
}

fn text_of(bytes: Vec<u8>, what: &str) -> Result<String, KeyArgumentError> {
    String::from_utf8(bytes).map_err(|_| KeyArgumentError(format!("{what} is not UTF-8 text")))
}

/// Whose keys a command means: `account`, or the caller when none is given (`root`, the
/// operator, when run as root). The account must exist.
pub fn key_owner(state: &State, account: Option<&str>, caller: &str) -> Result<Owner, OpError> {
    let name = account.unwrap_or(caller);
    let owner = Owner::parse(name)?;
    if let Owner::Account(a) = &owner
        && !state.users.contains_key(a)
    {
        return Err(OpError::NotFound {
            kind: "user",
            name: a.to_string(),
        });
    }
    Ok(owner)
}

/// The keys of `owner` (none for an account that does not exist).
pub fn keys_of<'s>(state: &'s State, owner: &Owner) -> Option<&'s KeyList> {
    match owner {
        Owner::Operator => Some(&state.operator.publickeys),
        Owner::Account(a) => state.users.get(a).map(|u| &u.publickeys),
    }
}

/// The keys of `owner`, to change. The operator's record must have been readable: one that
/// was set aside is not overwritten.
fn keys_of_mut<'s>(state: &'s mut State, owner: &Owner) -> Result<&'s mut KeyList, OpError> {
    match owner {
        Owner::Operator if state.extra.contains_key("operator") => Err(OpError::Machine(
            "the operator's record in the datastore is not readable (set aside); repair \"operator\" by hand first".into(),
        )),
        Owner::Operator => Ok(&mut state.operator.publickeys),
        Owner::Account(a) => state
            .users
            .get_mut(a)
            .map(|u| &mut u.publickeys)
            .ok_or_else(|| OpError::NotFound {
                kind: "user",
                name: a.to_string(),
            }),
    }
}

/// A key was added.
#[derive(Debug, Clone, Serialize)]
pub struct KeyAdded {
    /// Whose key it is.
    pub account: String,
    /// Its SHA256 fingerprint.
    pub fingerprint: String,
    /// Its type.
    #[serde(rename = "type")]
    pub algorithm: String,
    /// Its comment.
    pub comment: String,
}

/// Keys were removed.
#[derive(Debug, Clone, Serialize)]
pub struct KeysRemoved {
    /// Whose keys they were.
    pub account: String,
    /// Their fingerprints.
    pub fingerprints: Vec<String>,
}

/// `sc add-publickey [USER] KEY`: add the key `text` to the account (default: the caller). A
/// key the account holds already is refused, whatever its comment.
pub fn add(
    state: &mut State,
    caller: &str,
    now: &str,
    account: Option<&str>,
    text: &str,
) -> Result<KeyAdded, OpError> {
    let owner = key_owner(state, account, caller)?;
    let parsed = keys::parse(text)?;
    let list = keys_of_mut(state, &owner)?;
    if list.find(&parsed.fingerprint).is_some() {
        return Err(OpError::Exists {
            kind: KIND,
            name: format!("{} of {owner}", parsed.fingerprint),
        });
    }
    list.push(KeyRecord::new(&parsed, now), parsed.clone());
    Ok(KeyAdded {
        account: owner.to_string(),
        fingerprint: parsed.fingerprint,
        algorithm: parsed.algorithm,
        comment: parsed.comment,
    })
}

/// `sc remove-publickey [USER] FINGERPRINT|COMMENT`: remove every key of the account whose
/// fingerprint or comment is `which`.
pub fn remove(
    state: &mut State,
    caller: &str,
    account: Option<&str>,
    which: &str,
) -> Result<KeysRemoved, OpError> {
    let owner = key_owner(state, account, caller)?;
    let removed = keys_of_mut(state, &owner)?.remove(which);
    if removed.is_empty() {
        return Err(OpError::NotFound {
            kind: KIND,
            name: format!("{} of {owner}", shown(which)),
        });
    }
    Ok(KeysRemoved {
        account: owner.to_string(),
        fingerprints: removed.into_iter().map(|r| r.fingerprint).collect(),
    })
}

/// One row of `sc publickeys`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    /// SHA256 fingerprint.
    pub fingerprint: String,
    /// Key type.
    #[serde(rename = "type")]
    pub algorithm: String,
    /// Comment.
    pub comment: String,
    /// When it was added.
    pub added: String,
}

/// `sc publickeys [USER]`: the valid keys of the account (default: the caller).
pub fn list(state: &State, caller: &str, account: Option<&str>) -> Result<Vec<KeyRow>, OpError> {
    let owner = key_owner(state, account, caller)?;
    Ok(keys_of(state, &owner)
        .into_iter()
        .flat_map(KeyList::valid)
        .map(|(r, p)| KeyRow {
            fingerprint: p.fingerprint.clone(),
            algorithm: p.algorithm.clone(),
            comment: p.comment.clone(),
            added: r.added.clone(),
        })
        .collect())
}

/// The key lines sshd is given for the host account `name` (`root`: the operator's keys).
/// An unknown or malformed name has none.
pub fn account_lines<'s>(state: &'s State, name: &str) -> Vec<&'s str> {
    Owner::parse(name)
        .map(|owner| owner_lines(state, &owner))
        .unwrap_or_default()
}

/// The key lines of `owner` (the site owner's keys that `sc NAME add-user` installs).
pub fn owner_lines<'s>(state: &'s State, owner: &Owner) -> Vec<&'s str> {
    keys_of(state, owner)
        .map(|list| lines([list]))
        .unwrap_or_default()
}

/// The key lines that cover the gateway login `login`: its USER's own keys, the keys of
/// USER's reseller's account and the operator's. An unknown USER or a malformed login has
/// none (the operator's keys cover only logins of accounts that exist).
pub fn gateway_lines<'s>(state: &'s State, login: &str) -> Vec<&'s str> {
    let operator = &state.operator.publickeys;
    match crate::gateway::Login::parse(login).map(|l| l.user).ok() {
        Some(Owner::Operator) => lines([operator]),
        Some(Owner::Account(name)) => match state.users.get(&name) {
            Some(user) => {
                let reseller = state
                    .reseller_by_id(user.reseller_id)
                    .and_then(|(r, _)| state.users.get(r))
                    .map(|r| &r.publickeys);
                lines(
                    [Some(&user.publickeys), reseller, Some(operator)]
                        .into_iter()
                        .flatten(),
                )
            }
            None => Vec::new(),
        },
        None => Vec::new(),
    }
}

/// The stored keys that were set aside, with whose they are and why (for regenerate's
/// report of skipped records).
pub fn set_aside_keys(state: &State) -> impl Iterator<Item = String> + '_ {
    let accounts = state
        .users
        .iter()
        .map(|(name, u)| (name.to_string(), &u.publickeys));
    std::iter::once((
        crate::model::OPERATOR.to_owned(),
        &state.operator.publickeys,
    ))
    .chain(accounts)
    .flat_map(|(owner, list)| {
        list.set_aside()
            .map(move |(_, reason)| format!("publickeys of {owner}: {reason}"))
            .collect::<Vec<_>>()
    })
}

/// The canonical lines of the valid keys of `lists`, each key once.
fn lines<'s>(lists: impl IntoIterator<Item = &'s KeyList>) -> Vec<&'s str> {
    let mut seen = HashSet::new();
    lists
        .into_iter()
        .flat_map(KeyList::valid)
        .filter(|(_, p)| seen.insert(p.fingerprint.as_str()))
        .map(|(_, p): (_, &ParsedKey)| p.line.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::system::Recording;

    // Made with ssh-keygen -t ed25519 for these tests.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf bob@laptop";
    const OTHER: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEQWIza2aCU2MtdUgzu9kEY76LtJ2JgyWPjKYmhHOhUPH4q8O+7/Gr33NNNdjx2p0LBDd6VHBl2O5R9lScYJfJI= e";

    #[test]
    fn the_argument_is_key_text_or_a_file_of_it() {
        let system = Recording::default();
        system
            .write(
                Path::new("/k/id.pub"),
                format!("{KEY}\n").as_bytes(),
                0o644,
                false,
            )
            .unwrap();
        system
            .write(
                Path::new("/k/big.pub"),
                &vec![b'a'; keys::MAX_KEY_TEXT + 1],
                0o644,
                false,
            )
            .unwrap();
        assert_eq!(read_key_argument(KEY, &system, true).unwrap(), KEY);
        let options = format!("command=\"x\" {KEY}");
        assert_eq!(read_key_argument(&options, &system, true).unwrap(), options);
        assert_eq!(
            read_key_argument("/k/id.pub", &system, true).unwrap(),
            format!("{KEY}\n")
        );
        // For a caller who is not root, a path is never opened.
        assert_eq!(read_key_argument(KEY, &system, false).unwrap(), KEY);
        let e = read_key_argument("/k/id.pub", &system, false).unwrap_err();
        assert!(e.to_string().contains("not a file you can read"), "{e}");
        for (arg, words) in [
            ("/k/missing.pub", "no such file"),
            ("/k", "no such file"),
            ("/k/big.pub", "longer than"),
        ] {
            let e = read_key_argument(arg, &system, true)
                .unwrap_err()
                .to_string();
            assert!(e.contains(words) && e.contains(arg), "{arg}: {e}");
        }
        let e = read_limited(&vec![b'a'; keys::MAX_KEY_TEXT + 1][..], "input").unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        assert_eq!(read_limited(KEY.as_bytes(), "input").unwrap(), KEY);
    }

    fn state() -> State {
        State::from_json(
            br#"{"schema_version": 1,
            "resellers": {"alice": {"id": 1, "created": "t", "created_by": "root"}},
            "users": {
              "alice": {"reseller_id": 1, "index": 0, "uid": 20256, "gid": 20256, "created": "t", "created_by": "root"},
              "bob": {"reseller_id": 1, "index": 1, "uid": 20257, "gid": 20257, "created": "t", "created_by": "root"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn keys_go_to_the_named_account_or_the_caller_and_are_held_once() {
        let mut s = state();
        let added = add(&mut s, "bob", "t1", None, KEY).unwrap();
        assert_eq!(
            (added.account.as_str(), added.comment.as_str()),
            ("bob", "bob@laptop")
        );
        add(&mut s, "root", "t1", None, OTHER).unwrap();
        add(&mut s, "root", "t1", Some("alice"), OTHER).unwrap();
        let again = KEY.replace("bob@laptop", "renamed");
        assert!(matches!(
            add(&mut s, "root", "t2", Some("bob"), &again),
            Err(OpError::Exists { .. })
        ));
        assert!(matches!(
            add(&mut s, "root", "t2", Some("carol"), KEY),
            Err(OpError::NotFound { .. })
        ));
        assert_eq!(account_lines(&s, "bob"), [KEY]);
        assert_eq!(account_lines(&s, "root"), [OTHER]);
        assert_eq!(list(&s, "root", Some("bob")).unwrap()[0].added, "t1");
        // The reseller's and the operator's keys are the same key: printed once.
        assert_eq!(gateway_lines(&s, "bob_x.ve_www"), [KEY, OTHER]);
        let removed = remove(&mut s, "root", None, "e").unwrap();
        assert_eq!(removed.account, "root");
        assert!(matches!(
            remove(&mut s, "root", None, "e"),
            Err(OpError::NotFound { .. })
        ));
        assert!(s.operator.is_empty());
    }

    #[test]
    fn an_unreadable_operator_record_is_kept_and_not_overwritten() {
        let mut s =
            State::from_json(br#"{"schema_version": 1, "operator": {"publickeys": 7}}"#).unwrap();
        assert_eq!(s.extra["operator"]["publickeys"], 7);
        assert!(matches!(
            add(&mut s, "root", "t", None, KEY),
            Err(OpError::Machine(_))
        ));
        assert!(account_lines(&s, "root").is_empty());
        let text = String::from_utf8(s.to_json()).unwrap();
        assert_eq!(text.matches("\"operator\"").count(), 1, "{text}");
    }
}
