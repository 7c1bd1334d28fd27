//! The use cases, shared by every front end: the edits of the datastore (re-exported here),
//! the one transaction they run in ([`transaction`]: lock → load → validate → edit → commit →
//! audit) and the follow-up steps it returns as data ([`follow_up`]: performed through
//! [`crate::system::System`]).

pub mod audit;
pub mod context;
pub mod custom;
pub mod diagnose;
mod dns_records;
mod edit;
pub mod follow_up;
pub mod hooks;
pub mod import_v3;
pub mod install;
pub mod listing;
pub mod transaction;
pub mod trusted;
pub mod versions;
pub mod views;

pub use edit::*;
pub use follow_up::{FollowUpError, Step};
pub use transaction::{Audit, Change, Done, Report, Services};
