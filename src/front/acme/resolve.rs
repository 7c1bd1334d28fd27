//! Whether a container's names resolve to this host, asked of DNS.
//!
//! The hosts file is never read: srvctl's own block in `/etc/hosts` maps every site to its
//! container's address, which is what the host itself should use but not what the ACME CA
//! sees. The resolvers asked are, in this order, `acme_resolvers` from the settings, the host's
//! `dns1`/`dns2` from clusters.json, or the nameservers of the system's resolv.conf (those of
//! systemd-resolved's upstream list when it runs, since its stub at 127.0.0.53 answers from
//! `/etc/hosts` too).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::{AcmeError, AcmeSettings, Resolution, io_at};
use crate::config::cluster::Host;
use crate::system::System;
use crate::system::paths::Paths;

/// Looks names up.
pub trait Resolver: Sync {
    /// The addresses `name` resolves to (empty when it has none), or why the resolver could
    /// not tell.
    fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String>;
    /// The names `ip` resolves back to (its PTR records, without the final dot; empty when
    /// it has none), or why the resolver could not tell.
    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String>;
}

/// The resolv.conf files read when neither the settings nor clusters.json name a resolver:
/// systemd-resolved's list of its upstream servers first, then the system's.
const RESOLV_CONFS: [&str; 2] = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"];

/// The stub addresses of systemd-resolved, which answer from `/etc/hosts` as well.
const RESOLVED_STUBS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 53), Ipv4Addr::new(127, 0, 0, 54)];

/// How long one query may take, and how often it is tried.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 2;

/// The nameservers of a resolv.conf text, but systemd-resolved's stubs.
fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A link-local IPv6 server comes with its zone (`fe80::1%eth0`), which is not kept.
        .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| !matches!(ip, IpAddr::V4(v4) if RESOLVED_STUBS.contains(v4)))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The resolvers that decide whether a name points at `host` (see the module documentation).
fn nameservers(
    system: &dyn System,
    paths: &Paths,
    host: &Host,
    settings: &AcmeSettings,
) -> Result<Vec<SocketAddr>, AcmeError> {
    if !settings.resolvers.is_empty() {
        return Ok(settings.resolvers.clone());
    }
    let cluster: Vec<SocketAddr> = [host.dns1, host.dns2]
        .into_iter()
        .flatten()
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), 53))
        .collect();
    if !cluster.is_empty() {
        return Ok(cluster);
    }
    for file in RESOLV_CONFS {
        let path = paths.host(file);
        if let Some(bytes) = system.read(&path).map_err(io_at(&path))? {
            let servers = resolv_conf_servers(&String::from_utf8_lossy(&bytes));
            if !servers.is_empty() {
                return Ok(servers);
            }
        }
    }
    Err(AcmeError::Dns(format!(
        "no DNS resolver to ask whether names point at this host: set dns1 for {} in \
         clusters.json or acme_resolvers in settings.json",
        host.name
    )))
}

/// A stub resolver asking the given nameservers over UDP and TCP, never the hosts file; or,
/// when it could not be set up, why.
pub struct DnsResolver(Result<(tokio::runtime::Runtime, TokioResolver), String>);

impl DnsResolver {
    /// The resolver that decides for `host` ([`nameservers`]).
    pub fn for_host(
        system: &dyn System,
        paths: &Paths,
        host: &Host,
        settings: &AcmeSettings,
    ) -> Self {
        Self(
            nameservers(system, paths, host, settings)
                .and_then(|servers| Self::asking(&servers))
                .map_err(|e| e.to_string()),
        )
    }

    /// A resolver asking `servers`, in order.
    fn asking(
        servers: &[SocketAddr],
    ) -> Result<(tokio::runtime::Runtime, TokioResolver), AcmeError> {
        let servers = servers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        let mut options = ResolverOpts::default();
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = TIMEOUT;
        options.attempts = ATTEMPTS;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AcmeError::Dns(e.to_string()))?;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .map_err(|e| AcmeError::Dns(e.to_string()))?;
        Ok((runtime, resolver))
    }
}

impl Resolver for DnsResolver {
    fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let (runtime, resolver) = self.0.as_ref().map_err(Clone::clone)?;
        // Absolute, so no search domain is tried.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match runtime.block_on(resolver.lookup_ip(fqdn.as_str())) {
            Ok(found) => Ok(found.iter().collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        use hickory_resolver::proto::rr::RData;
        let (runtime, resolver) = self.0.as_ref().map_err(Clone::clone)?;
        match runtime.block_on(resolver.reverse_lookup(ip)) {
            Ok(found) => Ok(found
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::PTR(ptr) => Some(ptr.0.to_string().trim_end_matches('.').to_owned()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The address a name must point at to be this host's: `acme_public_ip` (a host behind NAT),
/// else its `host_ip`.
pub fn public_ip(host: &Host, settings: &AcmeSettings) -> IpAddr {
    settings.public_ip.unwrap_or(IpAddr::V4(host.host_ip))
}

/// Whether `name` resolves to an address of `here` (and to no other address of the same
/// family, which would make validation fail half the time); else how it resolves. `here` is
/// this host's address, and in a cluster those of the other hosts too (each answers the
/// cluster's challenges).
fn resolves_here(resolver: &dyn Resolver, name: &str, here: &[IpAddr]) -> Result<(), Resolution> {
    let ips = resolver
        .lookup(name)
        .map_err(|why| Resolution::Unknown(name.to_owned(), why))?;
    let ours = |ip: &IpAddr| here.contains(ip);
    let family_here = |ip: &IpAddr| here.iter().any(|h| h.is_ipv4() == ip.is_ipv4());
    let here = ips.iter().any(ours) && ips.iter().all(|ip| ours(ip) || !family_here(ip));
    if here {
        Ok(())
    } else {
        Err(Resolution::Elsewhere(name.to_owned(), ips))
    }
}

/// How a container's names resolve: [`Resolution::Here`] once its own name (the first)
/// resolves to an address of `here`, with the names that resolve here (the certificate covers those; a
/// `www.` or alternative name that does not point here yet is added by a later order once it
/// does).
pub fn resolution(
    resolver: &dyn Resolver,
    names: &[String],
    here: &[IpAddr],
) -> (Resolution, Vec<String>) {
    let Some(primary) = names.first() else {
        return (Resolution::Elsewhere(String::new(), Vec::new()), Vec::new());
    };
    if let Err(not_here) = resolves_here(resolver, primary, here) {
        return (not_here, Vec::new());
    }
    let here = names
        .iter()
        .filter(|n| resolves_here(resolver, n, here).is_ok())
        .cloned()
        .collect();
    (Resolution::Here, here)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::testutil::Fixed;
    use crate::system::Recording;

    #[test]
    fn the_certificate_covers_the_names_that_resolve_here_once_the_main_one_does() {
        let here: &[IpAddr] = &["192.0.2.11".parse().unwrap()];
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
        assert_eq!(
            resolution(&r, &names(&["timeout.example.com"]), here),
            (
                Resolution::Unknown("timeout.example.com".into(), "timed out".into()),
                Vec::new()
            )
        );
        // In a cluster, a name that points at two of its hosts is every host's.
        let cluster: &[IpAddr] = &["192.0.2.11".parse().unwrap(), "192.0.2.12".parse().unwrap()];
        assert_eq!(
            resolution(&r, &names(&["b.example.com"]), cluster),
            (Resolution::Here, names(&["b.example.com"]))
        );
        // A further name that cannot be looked up is left out, like one that points elsewhere.
        assert_eq!(
            resolution(
                &r,
                &names(&["a.example.com", "timeout.a.example.com"]),
                here
            ),
            (Resolution::Here, names(&["a.example.com"]))
        );
    }

    #[test]
    fn without_a_resolver_every_lookup_says_why() {
        let sys = Recording::default();
        let r = DnsResolver::for_host(
            &sys,
            &Paths::rooted("/r"),
            &host(""),
            &AcmeSettings::default(),
        );
        let why = r.lookup("a.example.com").unwrap_err();
        assert!(why.contains("no DNS resolver"), "{why}");
    }

    fn host(dns: &str) -> Host {
        let clusters = crate::config::cluster::Clusters::parse(
            std::path::Path::new("clusters.json"),
            &format!(r#"{{"c": {{"h1.test": {{"host_ip": "192.0.2.11", "hostnet": 1{dns}}}}}}}"#),
        )
        .unwrap();
        clusters.host("h1.test").unwrap().clone()
    }

    #[test]
    fn resolvers_come_from_the_settings_then_clusters_json_then_resolv_conf() {
        let sys = Recording::default();
        let paths = Paths::rooted("/r");
        let plain = host("");
        let with_dns = host(r#", "dns1": "192.0.2.53", "dns2": "192.0.2.54""#);
        let named = AcmeSettings {
            resolvers: vec!["127.0.0.1:8053".parse().unwrap()],
            ..AcmeSettings::default()
        };
        let servers = |host: &Host, settings: &AcmeSettings| {
            nameservers(&sys, &paths, host, settings).map(|s| {
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        assert_eq!(servers(&with_dns, &named).unwrap(), "127.0.0.1:8053");
        let default = AcmeSettings::default();
        assert_eq!(
            servers(&with_dns, &default).unwrap(),
            "192.0.2.53:53 192.0.2.54:53"
        );
        let none = servers(&plain, &default).unwrap_err().to_string();
        assert!(
            none.contains("dns1") && none.contains("acme_resolvers"),
            "{none}"
        );

        // systemd-resolved's stub answers from /etc/hosts: it is never asked.
        sys.write(
            &paths.host("/etc/resolv.conf"),
            b"# stub\nnameserver 127.0.0.53\noptions edns0\nsearch example.com\n",
            0o644,
            false,
        )
        .unwrap();
        assert!(servers(&plain, &default).is_err());
        sys.write(
            &paths.host("/run/systemd/resolve/resolv.conf"),
            b"nameserver 198.51.100.1\nnameserver fe80::1%eth0\n",
            0o644,
            false,
        )
        .unwrap();
        assert_eq!(
            servers(&plain, &default).unwrap(),
            "198.51.100.1:53 [fe80::1]:53"
        );
    }

    #[test]
    fn the_address_to_point_at_is_the_public_one_behind_nat() {
        let h = host("");
        assert_eq!(
            public_ip(&h, &AcmeSettings::default()),
            "192.0.2.11".parse::<IpAddr>().unwrap()
        );
        let nat = AcmeSettings {
            public_ip: Some("203.0.113.7".parse().unwrap()),
            ..AcmeSettings::default()
        };
        assert_eq!(
            public_ip(&h, &nat),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }
}
