//! Who may do what. The caller of a command is whoever the kernel says it is (root running
//! `sc`, or the peer credentials of the privileged service's socket); [`Caller::resolve`] turns
//! its UID into a role, and the policy ([`authorize`], [`container`], [`operator_only`],
//! [`account`]) decides, against the loaded datastore, whether the role may act and on which
//! records.
//!
//! - The operator (root, or a member of the `operator_group` of settings.json) may do
//!   everything.
//! - A reseller acts on its own account, its users and their containers.
//! - A user acts on its own account and its own containers.
//!
//! A record outside the caller's scope answers exactly like one that does not exist: same
//! failure kind (`not-found`), same message. A command the role may not run at all is refused
//! with kind `permission`.

mod policy;
mod role;
mod scope;
#[cfg(test)]
mod tests;

pub use policy::{account, authorize, container, keys_of, operator_only};
pub(crate) use role::login_name;
pub use role::{Caller, Role};
