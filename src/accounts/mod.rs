//! A module: the users' accounts, as userdb records.

pub mod userdb;
