//! A module: mail on the host. Postfix is the MX of every site domain of the cluster and relays
//! each domain's mail over the bridge (or the mesh) to the domain's mail container; it relays
//! the outbound mail of the containers, and nothing for anyone else. OpenDKIM signs the mail of
//! the sites of this host with their keys ([`keys`]). srvctl owns both configurations whole,
//! under `/run/srvctl/mail/` ([`postfix`], [`opendkim`]), run by srvctl's own units; the
//! distribution's `/etc/postfix` and `/etc/opendkim.conf` are left alone (docs/mail.md).
//! Both are checked before they replace the live ones ([`guard`]), and each service reloads
//! only when its files changed.

pub mod domains;
pub mod guard;
pub mod keys;
pub mod opendkim;
pub mod postfix;

use std::path::Path;

use crate::engine::changeset::Changes;
use crate::engine::registry::{Inputs, Module, Verdict};
use crate::engine::templates::TemplateError;
use crate::engine::tree::Tree;
use crate::system::paths::Paths;
use crate::system::{Request, System};

/// The directory of the module's files, relative to the host root.
pub const DIR: &str = "run/srvctl/mail";

/// The mail module.
pub struct Mail;

impl Module for Mail {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
        let domains = domains::domains(
            inputs.state,
            inputs.me,
            inputs.settings.company_domain.as_ref(),
        );
        let networks = postfix::networks(inputs.clusters, inputs.me);
        let pf = |name: &str| format!("{}/{name}", postfix::DIR);
        tree.file(pf("main.cf"), postfix::main_cf(inputs.me, &networks));
        tree.file(pf("master.cf"), postfix::master_cf().to_owned());
        tree.file(pf("relay_domains"), postfix::relay_domains(&domains));
        tree.file(pf("transport"), postfix::transport(&domains));
        let dk = |name: &str| format!("{}/{name}", opendkim::DIR);
        tree.file(opendkim::CONFIG, opendkim::config());
        tree.file(dk("KeyTable"), opendkim::key_table(&domains, keys::KEYS));
        tree.file(dk("SigningTable"), opendkim::signing_table(&domains));
        tree.file(dk("TrustedHosts"), opendkim::trusted_hosts(&networks));
        Ok(())
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[DIR]
    }

    /// A reload of each service whose files changed when it runs; a start when it does not
    /// (the first configuration of a host, which its unit's condition kept from starting
    /// before there was one). OpenDKIM first, so that postfix's new domains are signed as soon
    /// as it takes mail for them.
    fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
        [
            (opendkim::DIR, opendkim::UNIT),
            (postfix::DIR, postfix::UNIT),
        ]
        .into_iter()
        .filter(|(dir, _)| changed.iter().any(|p| p.starts_with(dir)))
        .flat_map(|(_, unit)| {
            [
                Request::Reload(unit.into()),
                Request::StartIfStopped(unit.into()),
            ]
        })
        .collect()
    }

    fn guard(&self, system: &dyn System, paths: &Paths, tree: &Tree, changes: &Changes) -> Verdict {
        guard::guard(
            system,
            paths,
            tree,
            changes,
            guard::Checkers::find(system).as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_reloads_when_its_own_files_changed() {
        let main = Path::new("run/srvctl/mail/postfix/main.cf");
        let keys = Path::new("run/srvctl/mail/opendkim/KeyTable");
        let both = |unit: &str| {
            [
                Request::Reload(unit.into()),
                Request::StartIfStopped(unit.into()),
            ]
        };
        assert_eq!(Mail.reloads(&[main]), both(postfix::UNIT));
        assert_eq!(
            Mail.reloads(&[main, keys]),
            [both(opendkim::UNIT), both(postfix::UNIT)].concat()
        );
        assert!(Mail.reloads(&[]).is_empty());
    }
}
