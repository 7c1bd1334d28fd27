//! The host mesh: one openvpn server per host (10.15.H.H) and one client towards every other
//! host of the cluster (10.15.X.Y on X's server), authenticated by the hosts' cluster
//! identities (`cluster/host.crt`, issued by the cluster CA, see [`crate::cluster::pki`]): the
//! site issuer's certificates are never accepted. Each pair of hosts has two tunnels; each host routes a peer's containers
//! (10.(16·X).0.0/12) through its own client tunnel to that peer.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::addr::plan::{HostNet, host_containers, mesh_address};
use crate::cluster::pki;
use crate::config::cluster::{Clusters, Host};
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::Tree;

/// UDP port of every mesh server.
pub const PORT: u16 = 1101;
/// Where the mesh configuration lives on the host.
pub const CONFIG_DIR: &str = "run/srvctl/openvpn";

/// The other hosts of this host's cluster.
fn peers<'c>(clusters: &'c Clusters, hostname: &str) -> Vec<&'c Host> {
    let Some(me) = clusters.host(hostname) else {
        return Vec::new();
    };
    clusters
        .hosts()
        .iter()
        .filter(|h| h.cluster == me.cluster && h.name != me.name)
        .collect()
}

/// The openvpn instances this host runs: none alone, else `server` and `client-H` per peer.
pub fn instances(clusters: &Clusters, hostname: &str) -> Vec<String> {
    let peers = peers(clusters, hostname);
    if peers.is_empty() {
        return Vec::new();
    }
    std::iter::once("server".to_owned())
        .chain(peers.iter().map(|p| format!("client-{}", p.hostnet)))
        .collect()
}

#[derive(Serialize)]
struct Tls {
    ca: String,
    cert: String,
    key: String,
}

fn tls() -> Tls {
    Tls {
        ca: pki::CA_CERT.to_owned(),
        cert: pki::HOST_CERT.to_owned(),
        key: pki::HOST_KEY.to_owned(),
    }
}

#[derive(Serialize)]
struct Server<'a> {
    host: &'a str,
    hostnet: HostNet,
    device: &'a str,
    port: u16,
    address: Ipv4Addr,
    ccd: String,
    #[serde(flatten)]
    tls: Tls,
}

#[derive(Serialize)]
struct Client<'a> {
    host: &'a str,
    peer: &'a str,
    peer_ip: Ipv4Addr,
    port: u16,
    device: String,
    address: Ipv4Addr,
    peer_address: Ipv4Addr,
    peer_containers: Ipv4Addr,
    #[serde(flatten)]
    tls: Tls,
}

/// Add the mesh configuration of `me` to `tree`: none alone, and none before the host holds
/// its cluster identity (`identity`).
pub fn render(
    tree: &mut Tree,
    clusters: &Clusters,
    me: &Host,
    identity: bool,
    templates: &Templates,
) -> Result<(), TemplateError> {
    let peers = peers(clusters, &me.name);
    if peers.is_empty() || !identity {
        return Ok(());
    }
    let ccd = format!("{CONFIG_DIR}/ccd");
    let server = Server {
        host: &me.name,
        hostnet: me.hostnet,
        device: "sc-mesh",
        port: PORT,
        address: mesh_address(me.hostnet, me.hostnet),
        ccd: format!("/{ccd}"),
        tls: tls(),
    };
    tree.file(
        format!("{CONFIG_DIR}/server.conf"),
        templates.render("mesh-server.conf", &server)?,
    );
    for peer in peers {
        let pushed = mesh_address(me.hostnet, peer.hostnet);
        let peer_containers = host_containers(peer.hostnet);
        // The peer's client tunnel carries its containers' packets too: without the iroute the
        // server drops them ("bad source address from client").
        tree.file(
            format!("{ccd}/{}", peer.name),
            format!("ifconfig-push {pushed} 255.255.255.0\niroute {peer_containers} 255.240.0.0\n"),
        );
        let client = Client {
            host: &me.name,
            peer: &peer.name,
            peer_ip: peer.host_ip,
            port: PORT,
            device: format!("sc-mesh-{}", peer.hostnet),
            address: mesh_address(peer.hostnet, me.hostnet),
            peer_address: mesh_address(peer.hostnet, peer.hostnet),
            peer_containers,
            tls: tls(),
        };
        tree.file(
            format!("{CONFIG_DIR}/client-{}.conf", peer.hostnet),
            templates.render("mesh-client.conf", &client)?,
        );
    }
    Ok(())
}

/// The mesh module: the openvpn server and client configurations of this host. A changed
/// client file restarts that client's tunnel; any other change (server, ccd) the server's.
pub struct Mesh;

impl crate::engine::registry::Module for Mesh {
    fn name(&self) -> &'static str {
        "mesh"
    }

    fn render(
        &self,
        inputs: &crate::engine::registry::Inputs,
        tree: &mut Tree,
    ) -> Result<(), TemplateError> {
        render(
            tree,
            inputs.clusters,
            inputs.me,
            inputs.cluster_identity,
            inputs.templates,
        )
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[CONFIG_DIR]
    }

    fn reloads(&self, changed: &[&std::path::Path]) -> Vec<crate::system::Request> {
        let mut out = Vec::new();
        for path in changed {
            let Some(rest) = path.strip_prefix(CONFIG_DIR).ok().and_then(|r| r.to_str()) else {
                continue;
            };
            let instance = match rest.strip_suffix(".conf") {
                Some(client) if client.starts_with("client-") => client,
                _ => "server",
            };
            let request = crate::system::Request::TryRestart(mesh_unit(instance));
            if !out.contains(&request) {
                out.push(request);
            }
        }
        out
    }
}

/// The unit name of a mesh tunnel: `server`, or `client-H` towards host H.
pub fn mesh_unit(instance: &str) -> String {
    format!("srvctl-mesh@{instance}.service")
}
