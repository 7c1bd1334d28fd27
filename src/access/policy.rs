//! The rules: for every change and every container action, whether the caller's role may do
//! it, and on which records.
//!
//! Extension point: [`authorize`] matches every [`Change`] without a wildcard, so a new
//! change does not compile until it has a rule here. Commands that act on an account (keys:
//! `add-publickey`, `publickeys`, `remove-publickey`) use [`account`]; container actions,
//! including those that enter a container as a login (`shell`, `exec`, `sftp` with
//! `--login`), use [`container`].

use super::{Caller, Role};
use crate::model::State;
use crate::model::names::{AccountName, ContainerName, shown};
use crate::ops::{Change, OpError};

/// The container settings only the operator may change: the resource limits.
pub const OPERATOR_KEYS: &[&str] = &["memory_max", "cpu_weight", "tasks_max"];

/// The error of a record that does not exist, which a record outside the scope also gets.
fn missing(kind: &'static str, name: String) -> OpError {
    OpError::NotFound { kind, name }
}

/// Refuse anyone but the operator to run `command` (e.g. `sc regenerate`).
pub fn operator_only(caller: &Caller, command: &str) -> Result<(), OpError> {
    match caller.role {
        Role::Operator => Ok(()),
        _ => Err(OpError::Denied(format!(
            "only the operator may run sc {command}"
        ))),
    }
}

/// Refuse a container outside the caller's scope as if it did not exist. A name that is
/// invalid or missing passes: the command itself refuses it the usual way.
pub fn container(caller: &Caller, state: &State, name: &ContainerName) -> Result<(), OpError> {
    match state.containers.get(name) {
        Some(c) if !caller.sees_container(state, c) => Err(missing("container", name.to_string())),
        _ => Ok(()),
    }
}

/// [`container`] for a name as typed.
fn container_named(caller: &Caller, state: &State, name: &str) -> Result<(), OpError> {
    match ContainerName::new(name) {
        Ok(name) => container(caller, state, &name),
        Err(_) => Ok(()),
    }
}

/// Refuse an account outside the caller's scope as if it did not exist ("no user named …"),
/// the operator's own (`root`, which has no user record) included. A name that is invalid or
/// missing passes: the command itself refuses it.
pub fn account(caller: &Caller, state: &State, name: &str) -> Result<(), OpError> {
    if name == crate::model::OPERATOR && caller.role != Role::Operator {
        return Err(missing("user", name.to_owned()));
    }
    match AccountName::new(name) {
        Ok(name) if state.users.contains_key(&name) && !caller.sees_account(state, &name) => {
            Err(missing("user", name.to_string()))
        }
        _ => Ok(()),
    }
}

/// Refuse the keys of an account outside the caller's scope (`sc add-publickey`,
/// `publickeys`, `remove-publickey`). `None` is the caller's own; the operator's keys
/// (`root`) are the operator's alone.
pub fn keys_of(caller: &Caller, state: &State, account: Option<&str>) -> Result<(), OpError> {
    match account {
        None => Ok(()),
        Some(crate::model::OPERATOR) => operator_only(caller, "add-publickey root"),
        Some(name) => self::account(caller, state, name),
    }
}

/// Check `change` against the caller's role and scope in `state` (the datastore as loaded
/// under the writer lock), and fill in what a tenant leaves out: the owner of its new
/// container is itself, the reseller of a reseller's new user is that reseller.
pub fn authorize<'a>(
    caller: &'a Caller,
    state: &State,
    change: &Change<'a>,
) -> Result<Change<'a>, OpError> {
    match *change {
        Change::AddReseller { .. } => operator_only(caller, "add-reseller"),
        Change::DestroyReseller { .. } => operator_only(caller, "destroy-reseller"),
        Change::Import { .. } => operator_only(caller, "import-v3"),
        Change::AddUser { name, reseller } => {
            return add_user(caller, state, name, reseller);
        }
        Change::AddContainer {
            name,
            owner,
            image,
            start,
        } => {
            let owner = owner_of_new_container(caller, state, owner)?;
            return Ok(Change::AddContainer {
                name,
                owner,
                image,
                start,
            });
        }
        Change::DestroyUser { name } => {
            account(caller, state, name)?;
            match caller.role {
                Role::User(_) => Err(OpError::Denied(
                    "only the operator or a reseller may remove an account".into(),
                )),
                _ => Ok(()),
            }
        }
        Change::PutUser { name, .. } => account(caller, state, name),
        Change::PutContainer { name, key, .. } => {
            container_named(caller, state, name)?;
            if OPERATOR_KEYS.contains(&key) {
                operator_only(caller, &format!("put container NAME {key}"))
            } else {
                Ok(())
            }
        }
        Change::DestroyContainer { name, .. } => container_named(caller, state, name),
        Change::SetRedirect { name, .. }
        | Change::ChangeNames { name, .. }
        | Change::ChangeDns { name, .. }
        | Change::AddLogin { name, .. } => container(caller, state, name),
        Change::AddPublicKey { account, .. } | Change::RemovePublicKey { account, .. } => {
            keys_of(caller, state, account)
        }
    }?;
    Ok(change.clone())
}

/// `add-user`: the operator under any reseller; a reseller under itself only (by default);
/// a user not at all.
fn add_user<'a>(
    caller: &'a Caller,
    state: &State,
    name: &'a str,
    reseller: Option<&'a str>,
) -> Result<Change<'a>, OpError> {
    let reseller = match &caller.role {
        Role::Operator => reseller,
        Role::User(_) => {
            return Err(OpError::Denied(
                "only the operator or a reseller may add a user".into(),
            ));
        }
        Role::Reseller(me) => match reseller {
            None => Some(me.as_str()),
            Some(r) => match crate::ops::find_reseller(state, r) {
                Ok((found, _)) if found != me.as_str() => {
                    return Err(missing("reseller", shown(r)));
                }
                _ => Some(r),
            },
        },
    };
    Ok(Change::AddUser { name, reseller })
}

/// The owner of a container a tenant adds: itself by default; another account only if it is
/// in scope (a reseller's user), else as if it did not exist.
fn owner_of_new_container<'a>(
    caller: &'a Caller,
    state: &State,
    owner: Option<&'a str>,
) -> Result<Option<&'a str>, OpError> {
    let Some(me) = caller.account() else {
        return Ok(owner);
    };
    let Some(owner) = owner else {
        return Ok(Some(me.as_str()));
    };
    match crate::ops::find_owner(state, owner) {
        Ok((found, _, _)) if !caller.sees_owner(state, &found) => {
            Err(missing("user", owner.to_owned()))
        }
        _ => Ok(Some(owner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Owner;

    #[test]
    fn the_operator_keys_are_container_settings() {
        for key in OPERATOR_KEYS {
            assert!(
                crate::model::settings::CONTAINER_KEYS
                    .iter()
                    .any(|(k, _)| k == key),
                "{key}"
            );
        }
    }

    #[test]
    fn the_operators_own_containers_are_the_operators_alone() {
        let user = Caller {
            uid: 1,
            name: "bob".into(),
            role: Role::User(AccountName::new("bob").unwrap()),
        };
        assert!(!user.sees_owner(&State::default(), &Owner::Operator));
        assert!(Caller::operator_root().sees_owner(&State::default(), &Owner::Operator));
        let e = account(&user, &State::default(), "root").unwrap_err();
        assert_eq!(e.to_string(), "no user named root");
        assert!(account(&Caller::operator_root(), &State::default(), "root").is_ok());
    }
}
