//! The zones of a DNS master, from the datastore: one zone per site domain (a container's
//! name), per alias and per alternative name, and the company domain's zone of preview names;
//! the named.conf fragment that declares them, as master zones or as a slave's copies.
//!
//! Every value written is a validated [`Domain`], a host name from clusters.json (validated
//! like a container name) or an address, so no input can add a line or a record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::cluster::{Clusters, Host};
use crate::dns::transfer::{self, Transfers};
use crate::front::routes::site_domains;
use crate::model::State;
use crate::model::dkim::DkimKey;
use crate::model::dns::{DnsRecord, txt_strings};
use crate::model::web::{Domain, preview_name};

/// The directory of the module's files, relative to the host root.
pub const DIR: &str = "run/srvctl/dns";
/// The named.conf fragment, relative to the host root; the distribution's named.conf includes
/// it (docs/dns.md).
pub const CONFIG: &str = "run/srvctl/dns/named.conf";
/// The directory of the zone files, relative to the host root.
pub const ZONES: &str = "run/srvctl/dns/zones";
/// The time to live of every record, in seconds.
pub const TTL: u32 = 300;

/// A name may be at most this long (RFC 1035), without its final dot.
const NAME_MAX: usize = 253;

/// One zone: its apex and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The apex.
    pub origin: Domain,
    /// The address of the site's apex, `www`, and `mail` (the host of the site's container),
    /// for a zone of a site's name; `None` for the company zone of preview names alone.
    pub site: Option<Ipv4Addr>,
    /// The IPv6 address of the same host, when clusters.json gives it one (`host_ip6`).
    pub site6: Option<Ipv6Addr>,
    /// Preview names in this zone, with the addresses of their hosts.
    pub previews: Vec<(Domain, Ipv4Addr, Option<Ipv6Addr>)>,
    /// The site's own records (`sc NAME dns add`), in the zone of its name only.
    pub records: Vec<DnsRecord>,
    /// The site's DKIM key, published at `<selector>._domainkey` of each of its zones.
    pub dkim: Option<DkimKey>,
}

/// Every zone the master serves, by apex: the names of their own of every container the front
/// routes (its name, aliases, alternative names; not the `www.` variants, which are records of
/// those zones), and the company domain with the preview names. A container's records point at
/// the public address of its host (any host's front serves every site).
pub fn zones(
    state: &State,
    clusters: &Clusters,
    me: &Host,
    company: Option<&Domain>,
) -> BTreeMap<Domain, Zone> {
    let address = |host: &str| clusters.host(host).map_or(me.host_ip, |h| h.host_ip);
    let address6 = |host: &str| clusters.host(host).map_or(me.host_ip6, |h| h.host_ip6);
    let mut out: BTreeMap<Domain, Zone> = BTreeMap::new();
    for (domain, name, c) in site_domains(state, company) {
        out.insert(
            domain.clone(),
            Zone {
                records: if domain.as_str() == name.as_str() {
                    c.dns.clone()
                } else {
                    Vec::new()
                },
                dkim: c.dkim.clone(),
                origin: domain,
                site: Some(address(&c.host)),
                site6: address6(&c.host),
                previews: Vec::new(),
            },
        );
    }
    if let Some(company) = company {
        for (name, c) in crate::front::routes::served(state) {
            let Some(preview) = preview_name(name, company) else {
                continue;
            };
            out.entry(company.clone())
                .or_insert_with(|| Zone {
                    origin: company.clone(),
                    site: None,
                    site6: None,
                    previews: Vec::new(),
                    records: Vec::new(),
                    dkim: None,
                })
                .previews
                .push((preview, address(&c.host), address6(&c.host)));
        }
    }
    out
}

/// `label.zone`, if that name is not too long for the DNS.
fn sub(label: &str, zone: &Domain) -> Option<String> {
    let name = format!("{label}.{zone}");
    (name.len() <= NAME_MAX).then_some(name)
}

/// The zone file of `zone`: SOA (primary name server the first of `servers`, the master;
/// `serial`), an NS for each of `servers` (the master, then the slaves; each with its address
/// when its name lies inside the zone), and
/// for a site the A records of the apex, `www` and `mail` (and their AAAA records when the
/// site's host has an IPv6 address), the MX (`mail.<zone>`), SPF (`v=spf1 mx -all`) and DMARC
/// (`p=quarantine`, reports to `postmaster@<zone>`), the site's DKIM key
/// (`<selector>._domainkey`), then the site's own records. `servers` is never empty.
pub fn zone_file(zone: &Zone, servers: &[(&str, Ipv4Addr)], serial: u32) -> String {
    let o = &zone.origin;
    let (primary, _) = servers[0];
    let mut f = String::from(
        "; generated by srvctl-regenerate from the datastore; edits are overwritten\n",
    );
    let _ = writeln!(f, "$TTL {TTL}");
    let _ = writeln!(
        f,
        "{o}. IN SOA {primary}. hostmaster.{o}. ( {serial} 3600 900 1209600 {TTL} )"
    );
    for (ns, _) in servers {
        let _ = writeln!(f, "{o}. IN NS {ns}.");
    }
    // A name server inside its own zone needs its address there (glue).
    for (ns, ip) in servers {
        if *ns == o.as_str() || ns.ends_with(&format!(".{o}")) {
            let _ = writeln!(f, "{ns}. IN A {ip}");
        }
    }
    if let Some(ip) = zone.site {
        let names = ["www", "mail"].map(|label| sub(label, o));
        for name in std::iter::once(Some(o.to_string())).chain(names).flatten() {
            addresses(&mut f, &name, ip, zone.site6);
        }
        if let Some(mail) = sub("mail", o) {
            let _ = writeln!(f, "{o}. IN MX 10 {mail}.");
        }
        let _ = writeln!(f, "{o}. IN TXT \"v=spf1 mx -all\"");
        if let Some(dmarc) = sub("_dmarc", o) {
            let _ = writeln!(
                f,
                "{dmarc}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{o}\""
            );
        }
    }
    if let Some(key) = &zone.dkim
        && let Some(name) = sub(&format!("{}._domainkey", key.selector()), o)
    {
        let _ = writeln!(f, "{name}. IN TXT {}", txt_strings(&key.txt()));
    }
    for (name, ip, ip6) in &zone.previews {
        addresses(&mut f, name.as_str(), *ip, *ip6);
    }
    for line in zone.records.iter().filter_map(|r| r.zone_line(o)) {
        let _ = writeln!(f, "{line}");
    }
    f
}

/// The A record of `name`, and its AAAA record when there is an IPv6 address.
fn addresses(f: &mut String, name: &str, ip: Ipv4Addr, ip6: Option<Ipv6Addr>) {
    let _ = writeln!(f, "{name}. IN A {ip}");
    if let Some(ip6) = ip6 {
        let _ = writeln!(f, "{name}. IN AAAA {ip6}");
    }
}

/// The path of `zone`'s file as named reads it (absolute).
pub fn zone_path(zone: &Domain) -> String {
    format!("/{ZONES}/{zone}.zone")
}

/// The file of a slave's copy of `zone`, relative to named's working directory (`directory`,
/// which named may write: `/var/cache/bind` on Debian, `/var/named` on Fedora).
pub fn slave_file(zone: &Domain) -> String {
    format!("srvctl-slave.{zone}.zone")
}

/// The named.conf fragment: every zone, as `transfers` says. A master without slaves refuses
/// every transfer; a master with slaves notifies them (`notify explicit`: only them, not by
/// looking up the NS of the zone; at once, `notify-delay 0`, where named's default waits up to
/// five seconds) and allows AXFR with the key alone; a slave copies each zone from the master
/// with the key and transfers it to no one. Both read the key file first.
pub fn named_conf<'a>(zones: impl Iterator<Item = &'a Domain>, transfers: &Transfers) -> String {
    let mut f = String::from(
        "// generated by srvctl-regenerate from the datastore; edits are overwritten\n",
    );
    if transfers.needs_key() {
        let _ = writeln!(f, "{}", transfer::include_key(transfer::KEY_FILE));
    }
    let key = transfer::KEY_NAME;
    for zone in zones {
        let how = match transfers {
            Transfers::Refused => format!(
                "type master; file \"{}\"; allow-transfer {{ none; }};",
                zone_path(zone)
            ),
            Transfers::ToSlaves(slaves) => {
                let notify: String = slaves
                    .iter()
                    .map(|ip| format!(" {ip} key {key};"))
                    .collect();
                format!(
                    "type master; file \"{}\"; notify explicit; notify-delay 0; \
                     also-notify {{{notify} }}; allow-transfer {{ key {key}; }};",
                    zone_path(zone)
                )
            }
            Transfers::FromMaster(master) => format!(
                "type slave; masters {{ {master} key {key}; }}; file \"{}\"; \
                 allow-transfer {{ none; }};",
                slave_file(zone)
            ),
        };
        let _ = writeln!(f, "zone \"{zone}\" {{ {how} }};");
    }
    f
}

#[cfg(test)]
mod tests;
