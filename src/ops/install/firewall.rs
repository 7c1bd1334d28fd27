//! The firewall step of `sc update-install`: the ports srvctl serves, open.
//!
//! Where firewalld runs, they are added to its permanent configuration (and it is reloaded).
//! Elsewhere srvctl keeps a table of its own, `inet srvctl-firewall`, in
//! [`TABLE_FILE`], loaded by [`UNIT`] at boot before the network comes up: its input chain
//! drops what it does not accept, and accepts replies, loopback, ICMP, DHCP replies, what
//! comes from srvctl's bridges and mesh tunnels (`sc-*`), and the ports of [`ports`]. The file
//! is rendered from numbers only (ports, protocols): nothing of it comes from text. It names
//! protocols and ports by number, so that nft needs no `/etc/protocols` or `/etc/services`
//! (a minimal host has neither).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::{Action, HostView, Step};

/// srvctl's nftables table file (when no firewalld runs).
pub const TABLE_FILE: &str = "/etc/srvctl/firewall.nft";
/// The unit that loads it.
pub const UNIT: &str = "srvctl-firewall.service";

/// A transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn word(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// A port srvctl serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Port {
    /// The port number.
    pub number: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl Port {
    const fn tcp(number: u16) -> Self {
        Self {
            number,
            protocol: Protocol::Tcp,
        }
    }

    const fn udp(number: u16) -> Self {
        Self {
            number,
            protocol: Protocol::Udp,
        }
    }

    /// A port as firewalld writes it (`80/tcp`), `None` for anything else.
    fn parse(text: &str) -> Option<Self> {
        let (number, protocol) = text.split_once('/')?;
        let number = number.parse().ok()?;
        match protocol {
            "tcp" => Some(Self::tcp(number)),
            "udp" => Some(Self::udp(number)),
            _ => None,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol.word())
    }
}

/// The firewall of the host as update-install finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallView {
    /// firewalld runs: the ports its permanent configuration opens, by port or by service.
    Firewalld {
        /// The open ports.
        open: BTreeSet<Port>,
    },
    /// No firewalld: srvctl's table file as it is (`None`: there is none).
    Nftables {
        /// The file's text.
        file: Option<String>,
    },
}

/// The ports firewalld's services of these names open (those srvctl's ports can be open by).
const SERVICES: &[(&str, &[Port])] = &[
    ("ssh", &[Port::tcp(22)]),
    ("http", &[Port::tcp(80)]),
    ("https", &[Port::tcp(443)]),
    ("dns", &[Port::tcp(53), Port::udp(53)]),
    ("etcd-client", &[Port::tcp(2379)]),
    ("etcd-server", &[Port::tcp(2380)]),
];

/// The ports firewalld's service `name` opens, of those srvctl serves.
fn service_ports(name: &str) -> &'static [Port] {
    SERVICES
        .iter()
        .find(|(service, _)| *service == name)
        .map_or(&[], |(_, ports)| ports)
}

/// The ports firewalld opens, from the answers of `firewall-cmd --permanent --list-ports`
/// and `--list-services` (space-separated words).
pub fn firewalld_open(ports: &str, services: &str) -> BTreeSet<Port> {
    ports
        .split_whitespace()
        .filter_map(Port::parse)
        .chain(
            services
                .split_whitespace()
                .flat_map(|s| service_ports(s).iter().copied()),
        )
        .collect()
}

/// The ports the host serves, each with what serves it: the operator's SSH (the ports the
/// host's sshd listens on), haproxy's HTTP and HTTPS, the SSH gateway, postfix's SMTP; on a cluster host the
/// mesh's openvpn and etcd's client and peer ports; DNS on a DNS master or slave.
pub fn ports(view: &HostView) -> Vec<(Port, &'static str)> {
    let mut all: Vec<(Port, &'static str)> = view
        .ssh_ports
        .iter()
        .map(|&p| (Port::tcp(p), "the host's SSH"))
        .collect();
    all.extend([
        (
            Port::tcp(crate::front::haproxy::FRONT_HTTP_PORT),
            "haproxy, HTTP",
        ),
        (
            Port::tcp(crate::front::haproxy::FRONT_HTTPS_PORT),
            "haproxy, HTTPS",
        ),
        (Port::tcp(crate::gateway::PORT), "the SSH gateway"),
        (
            Port::tcp(crate::mail::postfix::SMTP_PORT),
            "postfix, the sites' MX",
        ),
    ]);
    if view.role.cluster {
        all.extend([
            (Port::udp(crate::mesh::openvpn::PORT), "the host mesh"),
            (
                Port::tcp(crate::cluster::member::CLIENT_PORT),
                "etcd, clients",
            ),
            (Port::tcp(crate::cluster::member::PEER_PORT), "etcd, peers"),
        ]);
    }
    if view.role.dns_server {
        all.extend([(Port::tcp(53), "DNS"), (Port::udp(53), "DNS")]);
    }
    let mut seen = BTreeSet::new();
    all.retain(|(p, _)| seen.insert(*p));
    all
}

/// srvctl's nftables table for a host serving `ports`.
pub fn table(ports: &[(Port, &'static str)]) -> String {
    let mut text = String::from(
        "# Written by sc update-install (run it again after changing clusters.json): srvctl's\n\
         # firewall. srvctl-firewall.service loads it with `nft -f`, replacing the previous\n\
         # table in one transaction. What it does not accept it drops.\n\
         table inet srvctl-firewall\n\
         delete table inet srvctl-firewall\n\
         table inet srvctl-firewall {\n\
         \x20   chain input {\n\
         \x20       type filter hook input priority filter; policy drop;\n\
         \x20       ct state established,related accept\n\
         \x20       ct state invalid drop\n\
         \x20       iif \"lo\" accept\n\
         \x20       meta l4proto { 1, 58 } accept comment \"ICMP, ICMPv6\"\n\
         \x20       iifname \"sc-*\" accept comment \"srvctl's bridges and mesh tunnels\"\n\
         \x20       udp dport { 68, 546 } accept comment \"DHCP replies\"\n",
    );
    for (port, what) in ports {
        text.push_str(&format!(
            "        {} dport {} accept comment \"{what}\"\n",
            port.protocol.word(),
            port.number
        ));
    }
    text.push_str("    }\n}\n");
    text
}

/// The firewall step of the plan.
pub fn step(view: &HostView) -> Step {
    let ports = ports(view);
    let (found, action) = match &view.firewall {
        FirewallView::Firewalld { open } => {
            let closed: Vec<Port> = ports
                .iter()
                .map(|(p, _)| *p)
                .filter(|p| !open.contains(p))
                .collect();
            match closed.len() {
                0 => (
                    "firewalld: every port srvctl serves is open".to_owned(),
                    None,
                ),
                _ => (
                    format!(
                        "firewalld: closed: {}",
                        closed
                            .iter()
                            .map(Port::to_string)
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    Some(Action::OpenPorts(closed)),
                ),
            }
        }
        FirewallView::Nftables { file } => {
            let wanted = table(&ports);
            match file {
                Some(text) if *text == wanted => {
                    (format!("nftables: {TABLE_FILE} is up to date"), None)
                }
                Some(_) => (
                    format!("nftables: {TABLE_FILE} differs"),
                    Some(Action::WriteTable(wanted)),
                ),
                None => (
                    format!("nftables: no {TABLE_FILE}"),
                    Some(Action::WriteTable(wanted)),
                ),
            }
        }
    };
    Step {
        name: "firewall",
        found,
        action,
    }
}
