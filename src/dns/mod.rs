//! A module: authoritative DNS with BIND on the hosts whose clusters.json entry says
//! `"dns": "master"` or `"slave"`. The master renders the zones of every site from the
//! datastore ([`zones`]); a slave renders only the declarations of the same zones, whose copies
//! named transfers from the master ([`transfer`]). Both are checked with named-checkconf and
//! named-checkzone before they replace the live ones ([`guard`]), and named reloads when any
//! of them changed. Every other host renders nothing.
//!
//! The serial of a zone changes only when that zone does, and then grows ([`serial`]).

pub mod guard;
pub mod serial;
pub mod transfer;
pub mod zones;

use std::path::Path;

use crate::dns::transfer::Transfers;
use crate::engine::changeset::Changes;
use crate::engine::registry::{Inputs, Module, Verdict};
use crate::engine::templates::TemplateError;
use crate::engine::tree::Tree;
use crate::system::paths::Paths;
use crate::system::{Request, System};

/// The systemd unit that runs named (Debian's bind9.service is an alias of it; Fedora's is
/// named.service too).
pub const UNIT: &str = "named.service";

/// The DNS module.
pub struct Dns;

impl Module for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
        let Some(transfers) = Transfers::of(inputs.clusters, inputs.me) else {
            return Ok(());
        };
        let zones = zones::zones(
            inputs.state,
            inputs.clusters,
            inputs.me,
            inputs.settings.company_domain.as_ref(),
        );
        // A slave's zone files are named's copies, not srvctl's.
        if !matches!(transfers, Transfers::FromMaster(_)) {
            // The master, then its slaves.
            let servers: Vec<(&str, std::net::Ipv4Addr)> = std::iter::once(inputs.me)
                .chain(inputs.clusters.dns_slaves(inputs.me))
                .map(|h| (h.name.as_str(), h.host_ip))
                .collect();
            for zone in zones.values() {
                tree.file(
                    format!("{}/{}.zone", zones::ZONES, zone.origin),
                    zones::zone_file(zone, &servers, inputs.datastore_time),
                );
            }
        }
        tree.file(zones::CONFIG, zones::named_conf(zones.keys(), &transfers));
        Ok(())
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[zones::DIR]
    }

    /// A plain reload of named (`rndc reload` of every zone, through its unit) when any file
    /// changed; nothing when named does not run.
    fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
        if changed.is_empty() {
            return Vec::new();
        }
        vec![Request::Reload(UNIT.into())]
    }

    /// A zone file's serial, against the live one ([`serial::settle`]).
    fn settle(&self, path: &Path, rendered: &[u8], live: Option<&[u8]>) -> Option<Vec<u8>> {
        if path.starts_with(zones::ZONES) {
            serial::settle(rendered, live)
        } else {
            None
        }
    }

    fn guard(&self, system: &dyn System, paths: &Paths, tree: &Tree, changes: &Changes) -> Verdict {
        guard::guard(
            system,
            paths,
            tree,
            changes,
            guard::Checkers::find(system).as_ref(),
        )
    }
}

#[cfg(test)]
mod tests;
