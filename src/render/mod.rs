//! The render step: pure functions from the datastore to the tree of files that should exist.

pub mod containers;
pub mod generator;
pub mod haproxy;
pub mod hosts_file;
pub mod mesh;
pub mod templates;
pub mod tree;
pub mod userdb;

use crate::cluster::{Clusters, Host};
use crate::model::State;
use templates::{TemplateError, Templates};
use tree::Tree;

/// Everything `srvctl-regenerate` keeps on host `me`, by path relative to the host's root.
pub fn host(
    state: &State,
    clusters: &Clusters,
    me: &Host,
    templates: &Templates,
) -> Result<Tree, TemplateError> {
    let mut tree = Tree::default();
    containers::render(&mut tree, state, me, templates)?;
    userdb::render(&mut tree, state);
    mesh::render(&mut tree, clusters, me, templates)?;
    hosts_file::render(&mut tree, state, clusters, templates)?;
    Ok(tree)
}
