//! A module: authoritative DNS with BIND on the hosts whose clusters.json entry says
//! `"dns": "master"` or `"slave"`. The master renders the zones of every site from the
//! datastore ([`zones`]); a slave renders only the declarations of the same zones, whose copies
//! named transfers from the master ([`transfer`]). Both are checked with named-checkconf
//! (which also loads the zones) before they replace the live ones ([`guard`]); named then
//! reloads only the zones that changed, and re-reads its configuration only when zones came or
//! went. Every other host renders nothing.
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
use crate::system::{CommandLine, Request, System};

/// The systemd unit that runs named (Debian's bind9.service is an alias of it; Fedora's is
/// named.service too).
pub const UNIT: &str = "named.service";
/// named's control program (Debian `bind9-utils`, Fedora `bind`), which talks to the named
/// of this host with the key the package made (`rndc.key`).
pub const RNDC: &str = "rndc";

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

    /// `rndc reconfig` when the fragment changed (zones added or removed: named loads the new
    /// ones, drops the old ones, and reloads no other zone), `rndc reload ZONE` for each zone
    /// file written; nothing when named does not run.
    fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
        changed
            .iter()
            .filter_map(|path| {
                if *path == Path::new(zones::CONFIG) {
                    return Some(rndc(&["reconfig"]));
                }
                zone_of(path).map(|zone| rndc(&["reload", zone]))
            })
            .collect()
    }

    /// A zone file goes only with its zone, which the fragment no longer declares: the
    /// fragment's `rndc reconfig` drops it. A removed fragment asks for a reconfig too.
    fn removal_reloads(&self, removed: &[&Path]) -> Vec<Request> {
        removed
            .iter()
            .filter(|path| **path == Path::new(zones::CONFIG))
            .map(|_| rndc(&["reconfig"]))
            .collect()
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

/// The request to run `rndc ARGS` if named runs.
fn rndc(args: &[&str]) -> Request {
    Request::Control {
        unit: UNIT.into(),
        command: CommandLine::new(RNDC, args),
    }
}

/// The zone whose file is at `path`, if it is one of the zone files.
fn zone_of(path: &Path) -> Option<&str> {
    path.strip_prefix(zones::ZONES)
        .ok()?
        .to_str()?
        .strip_suffix(".zone")
}

#[cfg(test)]
mod tests;
