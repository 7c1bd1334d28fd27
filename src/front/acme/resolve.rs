//! Whether a container's names resolve to this host.

use std::net::{IpAddr, ToSocketAddrs};

use super::Resolution;

/// Looks names up.
pub trait Resolver: Sync {
    /// The addresses `name` resolves to (empty when it does not resolve).
    fn lookup(&self, name: &str) -> Vec<IpAddr>;
}

/// The system resolver (getaddrinfo: /etc/hosts, DNS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, name: &str) -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default()
    }
}

/// Whether `name` resolves to `host_ip` (and to no other address of the same family, which
/// would make validation fail half the time); else what it resolves to.
fn resolves_here(resolver: &dyn Resolver, name: &str, host_ip: IpAddr) -> Result<(), Vec<IpAddr>> {
    let ips = resolver.lookup(name);
    let here = ips.contains(&host_ip)
        && ips
            .iter()
            .all(|ip| *ip == host_ip || ip.is_ipv4() != host_ip.is_ipv4());
    if here { Ok(()) } else { Err(ips) }
}

/// How a container's names resolve: [`Resolution::Here`] once its own name (the first)
/// resolves to `host_ip`, with the names that resolve here (the certificate covers those; a
/// `www.` or alternative name that does not point here yet is added by a later order once it
/// does).
pub fn resolution(
    resolver: &dyn Resolver,
    names: &[String],
    host_ip: IpAddr,
) -> (Resolution, Vec<String>) {
    let Some(primary) = names.first() else {
        return (Resolution::Elsewhere(String::new(), Vec::new()), Vec::new());
    };
    if let Err(ips) = resolves_here(resolver, primary, host_ip) {
        return (Resolution::Elsewhere(primary.clone(), ips), Vec::new());
    }
    let here = names
        .iter()
        .filter(|n| resolves_here(resolver, n, host_ip).is_ok())
        .cloned()
        .collect();
    (Resolution::Here, here)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::testutil::Fixed;

    #[test]
    fn the_certificate_covers_the_names_that_resolve_here_once_the_main_one_does() {
        let here: IpAddr = "192.0.2.11".parse().unwrap();
        let r = Fixed(vec![
            ("a.example.com", "192.0.2.11"),
            ("a.example.com", "2001:db8::1"),
            ("www.a.example.com", "192.0.2.11"),
            ("b.example.com", "192.0.2.11"),
            ("b.example.com", "192.0.2.12"),
        ]);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolution(
                &r,
                &names(&[
                    "a.example.com",
                    "www.a.example.com",
                    "b.example.com",
                    "c.example.com"
                ]),
                here
            ),
            (
                Resolution::Here,
                names(&["a.example.com", "www.a.example.com"])
            )
        );
        assert!(matches!(
            resolution(&r, &names(&["b.example.com", "a.example.com"]), here),
            (Resolution::Elsewhere(n, ips), _) if n == "b.example.com" && ips.len() == 2
        ));
        assert!(matches!(
            resolution(&r, &names(&["c.example.com"]), here),
            (Resolution::Elsewhere(_, ips), _) if ips.is_empty()
        ));
    }
}
