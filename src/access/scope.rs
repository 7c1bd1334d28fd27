//! What a caller sees: the records in its scope, and the datastore as it may view it.

use super::{Caller, Role};
use crate::model::names::AccountName;
use crate::model::{Container, Owner, State};

impl Caller {
    /// Whether account `name` is in scope: the operator sees every account, a reseller its
    /// own and its users', a user its own.
    pub fn sees_account(&self, state: &State, name: &AccountName) -> bool {
        match &self.role {
            Role::Operator => true,
            Role::User(me) => me == name,
            Role::Reseller(me) => match (state.resellers.get(me), state.users.get(name)) {
                (Some(reseller), Some(user)) => user.reseller_id == reseller.id,
                _ => false,
            },
        }
    }

    /// Whether records owned by `owner` are in scope (the operator's own only for the
    /// operator).
    pub fn sees_owner(&self, state: &State, owner: &Owner) -> bool {
        match owner {
            Owner::Operator => self.role == Role::Operator,
            Owner::Account(name) => self.sees_account(state, name),
        }
    }

    /// Whether `container` is in scope: its owner is.
    pub fn sees_container(&self, state: &State, container: &Container) -> bool {
        self.sees_owner(state, &container.user)
    }

    /// The datastore as this caller may view it: only the accounts and containers in its
    /// scope (and the reseller records they belong to, so that their reseller's name shows).
    /// Records set aside and the document's other fields are the operator's only. Every view
    /// (`status`, `get`, `out`, `certificates`) reads this, so a record outside the scope
    /// answers exactly like a missing one.
    pub fn visible(&self, state: State) -> State {
        if self.role == Role::Operator {
            return state;
        }
        let state = &state;
        let users: std::collections::BTreeMap<_, _> = state
            .users
            .iter()
            .filter(|(name, _)| self.sees_account(state, name))
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect();
        State {
            resellers: state
                .resellers
                .iter()
                .filter(|(_, r)| users.values().any(|u| u.reseller_id == r.id))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect(),
            containers: state
                .containers
                .iter()
                .filter(|(_, c)| self.sees_container(state, c))
                .map(|(n, c)| (n.clone(), c.clone()))
                .collect(),
            users,
            set_aside: Vec::new(),
            operator: Default::default(),
            extra: Default::default(),
        }
    }
}
