//! Container settings (`/run/systemd/nspawn/NAME.nspawn`), each container's own network
//! configuration, and the per-user bridges (`/run/systemd/network/`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::addr::plan::Bridge;
use crate::config::cluster::Host;
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::Tree;
use crate::model::names::ContainerName;
use crate::model::{Container, State};

/// Directory of the per-container files bound into containers.
pub const CONTAINER_FILES: &str = "run/srvctl/containers";
/// Directory of the bridges' files, read by systemd-networkd.
pub const NETWORK_DIR: &str = "run/systemd/network";

#[derive(Serialize)]
struct Nspawn<'a> {
    name: &'a ContainerName,
    user: String,
    ip: Ipv4Addr,
    bridge: String,
    network_file: String,
}

#[derive(Serialize)]
struct Host0<'a> {
    name: &'a ContainerName,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    dns_servers: Vec<Ipv4Addr>,
}

#[derive(Serialize)]
struct BridgeFile {
    owner: String,
    interface: String,
    network: Ipv4Addr,
    gateway: Ipv4Addr,
    prefix: u8,
}

/// The bridge interfaces of the containers placed on host `hostname`.
pub fn bridges(state: &State, hostname: &str) -> std::collections::BTreeSet<String> {
    state
        .containers
        .values()
        .filter(|c| c.host == hostname)
        .filter_map(|c| c.slot().map(|(b, _)| b.interface()))
        .collect()
}

/// Add the files of every container placed on `host`, and of the bridges they use.
pub fn render(
    tree: &mut Tree,
    state: &State,
    host: &Host,
    templates: &Templates,
) -> Result<(), TemplateError> {
    let mut bridges: BTreeMap<Bridge, String> = BTreeMap::new();
    let here = state.containers.iter().filter(|(_, c)| c.host == host.name);
    for (name, c) in here {
        let Some((bridge, _)) = c.slot() else {
            continue;
        };
        bridges.entry(bridge).or_insert_with(|| c.user.to_string());
        container(tree, name, c, bridge, host, templates)?;
    }
    for (bridge, owner) in bridges {
        let data = BridgeFile {
            owner,
            interface: bridge.interface(),
            network: bridge.network(),
            gateway: bridge.gateway(),
            prefix: Bridge::PREFIX,
        };
        let base = format!("{NETWORK_DIR}/50-{}", data.interface);
        tree.file(
            format!("{base}.netdev"),
            templates.render("bridge.netdev", &data)?,
        );
        tree.file(
            format!("{base}.network"),
            templates.render("bridge.network", &data)?,
        );
    }
    Ok(())
}

fn container(
    tree: &mut Tree,
    name: &ContainerName,
    c: &Container,
    bridge: Bridge,
    host: &Host,
    templates: &Templates,
) -> Result<(), TemplateError> {
    let network_file = format!("{CONTAINER_FILES}/{name}/10-srvctl-host0.network");
    let host0 = Host0 {
        name,
        ip: c.ip,
        prefix: Bridge::PREFIX,
        gateway: bridge.gateway(),
        dns_servers: [host.dns1, host.dns2].into_iter().flatten().collect(),
    };
    tree.file(
        &network_file,
        templates.render("container-host0.network", &host0)?,
    );
    let nspawn = Nspawn {
        name,
        user: c.user.to_string(),
        ip: c.ip,
        bridge: bridge.interface(),
        network_file: format!("/{network_file}"),
    };
    tree.file(
        format!("run/systemd/nspawn/{name}.nspawn"),
        templates.render("container.nspawn", &nspawn)?,
    );
    Ok(())
}

/// The containers module: `.nspawn` files, each container's host0 network file and the
/// per-user bridges. .nspawn files are read when a container starts, so only the bridges'
/// files need a reload (of systemd-networkd).
pub struct Containers;

impl crate::engine::registry::Module for Containers {
    fn name(&self) -> &'static str {
        "containers"
    }

    fn render(
        &self,
        inputs: &crate::engine::registry::Inputs,
        tree: &mut Tree,
    ) -> Result<(), TemplateError> {
        render(tree, inputs.state, inputs.me, inputs.templates)
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &["run/systemd/nspawn", NETWORK_DIR, CONTAINER_FILES]
    }

    fn reloads(&self, changed: &[&std::path::Path]) -> Vec<crate::system::Request> {
        changed
            .iter()
            .any(|p| p.starts_with(NETWORK_DIR))
            .then_some(crate::system::Request::ReloadNetworkd)
            .into_iter()
            .collect()
    }
}
