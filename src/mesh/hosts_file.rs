//! srvctl's block in the host's `/etc/hosts`: the cluster's hosts and every container, so
//! names resolve without DNS on every host.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::config::cluster::Clusters;
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::{Entry, Tree};
use crate::model::State;

/// The hosts file, relative to the host root.
pub const HOSTS: &str = "etc/hosts";
/// First line of the block.
pub const BEGIN: &str = "# BEGIN srvctl";
/// Last line of the block.
pub const END: &str = "# END srvctl";

#[derive(Serialize)]
struct Line {
    ip: Ipv4Addr,
    names: String,
}

/// Add the block.
pub fn render(
    tree: &mut Tree,
    state: &State,
    clusters: &Clusters,
    templates: &Templates,
) -> Result<(), TemplateError> {
    let mut entries = Vec::new();
    for h in clusters.hosts() {
        let short = h.name.split('.').next().unwrap_or(&h.name);
        entries.push(Line {
            ip: h.host_ip,
            names: format!("{} {short}", h.name),
        });
    }
    for (name, c) in &state.containers {
        entries.push(Line {
            ip: c.ip,
            names: name.to_string(),
        });
    }
    let mut text = templates.render("hosts", &serde_json::json!({ "entries": entries }))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    tree.insert(
        HOSTS,
        Entry::Block {
            bytes: text.into_bytes(),
        },
    );
    Ok(())
}

/// Replace the block in `current` (or append it) and return the new file.
pub fn splice(current: &[u8], block: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(current);
    let mut out = String::new();
    let mut inside = false;
    let mut placed = false;
    for line in text.lines() {
        if line.starts_with(BEGIN) {
            inside = true;
            continue;
        }
        if inside {
            if line.starts_with(END) {
                inside = false;
                if !placed {
                    out.push_str(&String::from_utf8_lossy(block));
                    placed = true;
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !placed {
        out.push_str(&String::from_utf8_lossy(block));
    }
    out.into_bytes()
}

/// The hosts-file module: srvctl's block in `/etc/hosts`, read at every lookup (no reload).
pub struct HostsFile;

impl crate::engine::registry::Module for HostsFile {
    fn name(&self) -> &'static str {
        "hosts-file"
    }

    fn render(
        &self,
        inputs: &crate::engine::registry::Inputs,
        tree: &mut Tree,
    ) -> Result<(), TemplateError> {
        render(tree, inputs.state, inputs.clusters, inputs.templates)
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[HOSTS]
    }

    fn reloads(&self, _changed: &[&std::path::Path]) -> Vec<crate::system::Request> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_block() {
        let block = b"# BEGIN srvctl x\n1.2.3.4\ta\n# END srvctl\n";
        let first = splice(b"127.0.0.1 localhost\n", block);
        assert_eq!(
            first,
            b"127.0.0.1 localhost\n# BEGIN srvctl x\n1.2.3.4\ta\n# END srvctl\n"
        );
        let mut edited = first.clone();
        edited.extend_from_slice(b"::1 ip6-localhost\n");
        let second = splice(&edited, b"# BEGIN srvctl x\n# END srvctl\n");
        assert_eq!(
            String::from_utf8(second).unwrap(),
            "127.0.0.1 localhost\n# BEGIN srvctl x\n# END srvctl\n::1 ip6-localhost\n"
        );
        assert_eq!(splice(&first, block), first);
    }
}
