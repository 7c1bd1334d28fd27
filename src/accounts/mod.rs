//! A module: the users' accounts, as userdb records, their home directories and their SSH
//! keys.

pub mod homes;
pub mod keys;
pub mod userdb;
