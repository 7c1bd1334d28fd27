//! Zone transfers between the cluster's DNS master and its slaves: the master sends NOTIFY to
//! every slave when a zone changes and allows AXFR to whoever signs with the cluster's TSIG
//! key; a slave asks the master for its zones with that key and transfers them to no one.
//!
//! The key is one for the cluster, kept in etcd and written to [`KEY_FILE`] on every DNS host
//! by srvctl-sync ([`crate::cluster::dns_key`]); named reads it through the fragment's
//! `include`.

use std::net::Ipv4Addr;

use crate::config::cluster::{Clusters, DnsRole, Host};

/// The name of the TSIG key, in the key file and in every statement that uses it.
pub const KEY_NAME: &str = "srvctl-transfer";
/// The key file (absolute, as named reads it): `key "srvctl-transfer" { algorithm
/// hmac-sha256; secret "…"; };`, in a directory only root and named's group may enter.
pub const KEY_FILE: &str = "/var/lib/srvctl/dns/transfer.key";

/// How this host's zones move between the cluster's DNS hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfers {
    /// A master without slaves: every transfer is refused.
    Refused,
    /// A master: NOTIFY to these slaves, AXFR to the key's holders.
    ToSlaves(Vec<Ipv4Addr>),
    /// A slave: the zones come from the master at this address.
    FromMaster(Ipv4Addr),
}

impl Transfers {
    /// The transfers of host `me`, by its DNS role; `None` when it serves no DNS (or, for a
    /// slave, when its cluster has no master, which clusters.json refuses).
    pub fn of(clusters: &Clusters, me: &Host) -> Option<Self> {
        match me.dns? {
            DnsRole::Master => {
                let slaves: Vec<Ipv4Addr> = clusters.dns_slaves(me).map(|h| h.host_ip).collect();
                Some(if slaves.is_empty() {
                    Self::Refused
                } else {
                    Self::ToSlaves(slaves)
                })
            }
            DnsRole::Slave => clusters.dns_master(me).map(|m| Self::FromMaster(m.host_ip)),
        }
    }

    /// Whether named needs the key file for these transfers.
    pub fn needs_key(&self) -> bool {
        !matches!(self, Self::Refused)
    }
}

/// The fragment's line that reads the key file.
pub fn include_key(file: &str) -> String {
    format!("include \"{file}\";")
}
