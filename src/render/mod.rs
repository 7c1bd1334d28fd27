//! The render step: pure functions from the datastore to the tree of files that should exist.
//! Each area is a module of [`crate::registry`], which renders them all.

pub mod containers;
pub mod generator;
pub mod haproxy;
pub mod hosts_file;
pub mod mesh;
pub mod templates;
pub mod tree;
pub mod userdb;
