//! The engine: render (pure: datastore → the files that should exist) → plan (diff against
//! the disk) → apply (the only side effects), and the two programs systemd runs: the generator
//! and regenerate.

pub mod apply;
pub mod changeset;
pub mod generator;
pub mod regenerate;
pub mod registry;
pub mod templates;
pub mod tree;
