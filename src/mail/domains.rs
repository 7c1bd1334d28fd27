//! The mail domains of the cluster: every site domain (a container's name, its aliases and
//! alternative names, of every container that is not being destroyed), where its mail goes, and
//! the key that signs it.

use std::net::Ipv4Addr;

use crate::config::cluster::Host;
use crate::model::State;
use crate::model::dkim::DkimKey;
use crate::model::names::ContainerName;
use crate::model::web::Domain;

/// One domain the host's postfix is the MX of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailDomain {
    /// The domain.
    pub domain: Domain,
    /// The address of its mail container: `mail.<domain>` when that container exists, else
    /// the site's container itself.
    pub to: Ipv4Addr,
    /// The site's container, whose DKIM key signs the domain's mail.
    pub site: ContainerName,
    /// The site's DKIM key, when the site lives on this host (which keeps the private key)
    /// and has one.
    pub key: Option<DkimKey>,
}

/// Every mail domain, in name order, as host `me` sees them.
pub fn domains(state: &State, me: &Host, company: Option<&Domain>) -> Vec<MailDomain> {
    crate::front::routes::site_domains(state, company)
        .into_iter()
        .map(|(domain, name, c)| {
            let mail = ContainerName::new(&format!("mail.{domain}"))
                .ok()
                .and_then(|m| state.containers.get(&m))
                .filter(|m| !m.destroying);
            MailDomain {
                to: mail.map_or(c.ip, |m| m.ip),
                site: name.clone(),
                key: c.dkim.clone().filter(|_| c.host == me.name),
                domain,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_goes_to_the_mail_container_when_there_is_one() {
        let key = crate::model::dkim::tests::PUBLIC;
        let state = State::from_json(
            format!(
                r#"{{"schema_version": 1, "containers": {{
              "example.com": {{"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root", "aliases": ["example.org"],
                "dkim": {{"selector": "s1", "public": "{key}"}}}},
              "mail.example.com": {{"user": "root", "host": "h1.test", "ip": "10.16.0.3",
                "created": "t", "created_by": "root"}},
              "far.example.net": {{"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root",
                "dkim": {{"selector": "s1", "public": "{key}"}}}},
              "gone.example.net": {{"user": "root", "host": "h1.test", "ip": "10.16.0.4",
                "created": "t", "created_by": "root", "destroying": true}}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let clusters = crate::config::cluster::Clusters::parse(
            std::path::Path::new("clusters.json"),
            r#"{"c":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},
                     "h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
        )
        .unwrap();
        let me = clusters.host("h1.test").unwrap();
        let d = domains(&state, me, None);
        let shown: Vec<(&str, String, bool)> = d
            .iter()
            .map(|d| (d.domain.as_str(), d.to.to_string(), d.key.is_some()))
            .collect();
        assert_eq!(
            shown,
            [
                ("example.com", "10.16.0.3".into(), true),
                ("example.org", "10.16.0.2".into(), true),
                ("far.example.net", "10.32.0.2".into(), false),
                ("mail.example.com", "10.16.0.3".into(), false),
            ]
        );
    }
}
