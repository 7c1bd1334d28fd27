//! `sc cluster join`: a new host's request, signature and acceptance in one step, the CA host
//! reached over ssh.
//!
//! The first certificate of a host cannot pass through the datastore: the host cannot reach
//! etcd before it holds a certificate, and while the cluster forms there is no quorum to
//! store anything. What the operator already trusts instead is ssh to the CA host: the new
//! host sends its CSR to `sc cluster sign -` there and installs what comes back, so only the
//! CSR and the signed certificate travel and no key leaves either host. Renewals later pass
//! through the datastore ([`super::renew`]).

use crate::config::cluster::{Clusters, Host};
use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

use super::pki::{self, PkiError};

/// How the joining host reaches the CA host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The CA host.
    pub ca: String,
    /// The ssh destination.
    pub destination: String,
}

impl Route {
    /// The route to `me`'s CA host: `via` (an ssh destination) or `root@` its name.
    pub fn to_ca(clusters: &Clusters, me: &Host, via: Option<&str>) -> Result<Self, PkiError> {
        let ca = clusters.ca_host(me);
        if ca.name == me.name {
            return Err(PkiError::Refused(format!(
                "{} is the CA host of cluster {:?}: `sc cluster request` installs its certificate",
                me.name, me.cluster
            )));
        }
        let destination = match via {
            Some(d) => d.to_owned(),
            None => format!("root@{}", ca.name),
        };
        // ssh would read a leading `-` as an option, and a space or a control character is
        // no destination at all.
        if destination.is_empty()
            || destination.starts_with('-')
            || destination
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(PkiError::Refused(format!(
                "{destination:?} is not an ssh destination (user@host, or a Host of ssh_config)"
            )));
        }
        Ok(Self {
            ca: ca.name.clone(),
            destination,
        })
    }

    /// The command that has the CA host sign a CSR given on standard input. No terminal:
    /// `BatchMode` makes a missing key fail at once instead of waiting for a password.
    pub fn sign_command(&self) -> CommandLine {
        CommandLine::new(
            "ssh",
            [
                "-o",
                "BatchMode=yes",
                "-T",
                "--",
                &self.destination,
                "sc",
                "cluster",
                "sign",
                "-",
            ],
        )
    }
}

/// Make this host's key (once) and CSR, and have the CA host sign it along `route`: the
/// bundle to install with [`pki::accept`].
pub fn signed_by_ca(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    me: &Host,
    route: &Route,
) -> Result<String, PkiError> {
    let requested = pki::request(system, paths, clusters, me)?;
    let csr = requested
        .csr
        .expect("a host other than the CA host gets a CSR");
    let command = route.sign_command();
    let bundle = system.exchange(&command, csr.as_bytes()).map_err(|e| {
        PkiError::Io(
            format!(
                "asking the CA host {} to sign over ssh {}",
                route.ca, route.destination
            ),
            e,
        )
    })?;
    String::from_utf8(bundle)
        .map_err(|_| PkiError::Refused(format!("the CA host {} answered no PEM", route.ca)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;
    use std::path::Path;

    fn clusters() -> Clusters {
        Clusters::parse(
            Path::new("clusters.json"),
            r#"{"c": {
              "h1.test": {"host_ip": "192.0.2.1", "hostnet": 1, "role": "ca"},
              "h2.test": {"host_ip": "192.0.2.2", "hostnet": 2}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_csr_goes_to_sc_cluster_sign_on_the_ca_host_over_ssh() {
        let clusters = clusters();
        let me = clusters.host("h2.test").unwrap();
        let route = Route::to_ca(&clusters, me, None).unwrap();
        assert_eq!(route.destination, "root@h1.test");
        let mut system = Recording::default();
        system.answers.insert("ssh".into(), b"BUNDLE".to_vec());
        let paths = Paths::rooted("/r");
        let bundle = signed_by_ca(&system, &paths, &clusters, me, &route).unwrap();
        assert_eq!(bundle, "BUNDLE");
        let commands = system.commands.borrow();
        let args: Vec<String> = commands[0]
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(commands[0].program, "ssh");
        assert_eq!(
            args[args.len() - 5..],
            ["root@h1.test", "sc", "cluster", "sign", "-"]
        );
        let sent = String::from_utf8(system.exchanged.borrow()[0].clone()).unwrap();
        assert!(
            sent.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{sent}"
        );
        // The key stays here, never in what was sent.
        assert!(!sent.contains("PRIVATE KEY"));
    }

    #[test]
    fn a_destination_that_ssh_would_read_as_an_option_is_refused() {
        let clusters = clusters();
        let me = clusters.host("h2.test").unwrap();
        for bad in ["-oProxyCommand=sh", "root@h1 extra", "a\nb", ""] {
            assert!(
                matches!(
                    Route::to_ca(&clusters, me, Some(bad)),
                    Err(PkiError::Refused(_))
                ),
                "{bad:?}"
            );
        }
        let via = Route::to_ca(&clusters, me, Some("admin@ca.example.net")).unwrap();
        assert_eq!(via.destination, "admin@ca.example.net");
    }

    #[test]
    fn the_ca_host_does_not_join_itself() {
        let clusters = clusters();
        let me = clusters.host("h1.test").unwrap();
        assert!(matches!(
            Route::to_ca(&clusters, me, None),
            Err(PkiError::Refused(_))
        ));
    }

    #[test]
    fn a_failed_ssh_is_one_line_naming_the_ca_host() {
        let clusters = clusters();
        let me = clusters.host("h2.test").unwrap();
        let route = Route::to_ca(&clusters, me, None).unwrap();
        let mut system = Recording::default();
        system
            .failing_programs
            .insert("ssh".into(), "Permission denied (publickey)".into());
        let e = signed_by_ca(&system, &Paths::rooted("/r"), &clusters, me, &route).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("CA host h1.test"), "{text}");
        assert!(text.contains("Permission denied"), "{text}");
    }
}
