//! Roles and callers: a UID (and its groups) resolved against the datastore.

use crate::config::site::Settings;
use crate::model::names::AccountName;
use crate::model::{OPERATOR, State};
use crate::ops::OpError;

/// What a caller is to srvctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Root, or a member of the configured operator group: everything.
    Operator,
    /// A reseller: its own account, its users and their containers.
    Reseller(AccountName),
    /// A user: its own account and its own containers.
    User(AccountName),
}

impl Role {
    /// The role of account `name`: a reseller if the account is a reseller's own, else a user.
    fn of_account(name: &AccountName, state: &State) -> Self {
        if state.resellers.contains_key(name) {
            Self::Reseller(name.clone())
        } else {
            Self::User(name.clone())
        }
    }
}

/// The account whose UID is `uid`.
fn account_of(uid: u32, state: &State) -> Option<&AccountName> {
    state
        .users
        .iter()
        .find(|(_, u)| u.uid == uid)
        .map(|(name, _)| name)
}

/// Whether one of `gids` is the group that `operator_group` names (looked up in the host's
/// group database).
fn in_operator_group(gids: &[u32], settings: &Settings) -> bool {
    let Some(group) = settings.operator_group.as_deref() else {
        return false;
    };
    nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .is_some_and(|g| gids.contains(&g.gid.as_raw()))
}

/// Who runs a command: the kernel's UID, the name the audit log records, and the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The UID the kernel reported.
    pub uid: u32,
    /// The name audited and recorded as `created_by`: the account's name, or the operator's
    /// login name.
    pub name: String,
    /// What the caller may do.
    pub role: Role,
}

impl Caller {
    /// Root running `sc` directly.
    pub fn operator_root() -> Self {
        Self::operator(0, OPERATOR)
    }

    /// An operator with UID `uid`, audited as `name` (e.g. the sudo caller of root's `sc`).
    pub fn operator(uid: u32, name: &str) -> Self {
        Self {
            uid,
            name: name.to_owned(),
            role: Role::Operator,
        }
    }

    /// The caller with UID `uid` and groups `gids`, as the datastore and settings make it.
    ///
    /// Its role: the operator for UID 0 or a member of the `operator_group` of `settings`;
    /// else the account whose UID it is (a reseller if the account is a reseller's own). Any
    /// other UID is refused. It is named by its account; an operator without one (root, a
    /// member of the operator group) by the host's user database, or by its UID.
    pub fn resolve(
        uid: u32,
        gids: &[u32],
        state: &State,
        settings: &Settings,
    ) -> Result<Self, OpError> {
        let account = account_of(uid, state);
        let role = if uid == 0 || in_operator_group(gids, settings) {
            Role::Operator
        } else {
            let name = account
                .ok_or_else(|| OpError::Denied(format!("UID {uid} is no srvctl account")))?;
            Role::of_account(name, state)
        };
        let name = match account {
            Some(account) if uid != 0 => account.to_string(),
            _ => login_name(uid),
        };
        Ok(Self { uid, name, role })
    }

    /// Whose keys `sc add-publickey` and friends mean when no USER is given: the caller's own
    /// account, or the operator's keys (`root`) for an operator.
    pub fn key_owner(&self) -> &str {
        self.account()
            .map_or(crate::model::OPERATOR, AccountName::as_str)
    }

    /// The account whose scope this caller acts in; `None` for the operator.
    pub fn account(&self) -> Option<&AccountName> {
        match &self.role {
            Role::Operator => None,
            Role::Reseller(name) | Role::User(name) => Some(name),
        }
    }
}

/// The login name of `uid` in the host's user database, or the UID as text.
pub(crate) fn login_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
