//! The hand-written inputs: clusters.json and settings.json.

pub mod cluster;
pub mod file;
pub mod site;
