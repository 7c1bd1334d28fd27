//! A module: the host mesh: openvpn instances, host certificates, the `/etc/hosts` block.

pub mod hosts_file;
pub mod openvpn;
pub mod pki;
