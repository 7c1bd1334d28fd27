//! A module: the host mesh: openvpn instances, the `/etc/hosts` block; and the internal CA
//! (`pki`), the site issuer of the HTTPS front.

pub mod hosts_file;
pub mod openvpn;
pub mod pki;
