//! What `sc version` reports: srvctl's own version and the versions of the packages it
//! drives, as this host's package manager (dpkg on Debian, rpm on Fedora) knows them.

use serde::Serialize;

use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// The package managers srvctl knows how to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// Debian's (`dpkg-query`).
    Dpkg,
    /// Fedora's (`rpm`).
    Rpm,
}

impl PackageManager {
    /// The package manager of the distribution `/etc/os-release` names (its `ID` or one of its
    /// `ID_LIKE`), or `None` for one srvctl does not know (or no os-release at all).
    pub fn of_host(system: &dyn System, paths: &Paths) -> Option<Self> {
        let text = system.read(&paths.host("/etc/os-release")).ok()??;
        let text = String::from_utf8_lossy(&text);
        let ids = text
            .lines()
            .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
            .flat_map(|v| v.trim_matches(['"', '\'']).split_whitespace());
        for id in ids {
            match id {
                "debian" | "ubuntu" => return Some(Self::Dpkg),
                "fedora" | "rhel" | "centos" => return Some(Self::Rpm),
                _ => {}
            }
        }
        None
    }

    /// The names of the packages srvctl drives, in this distribution's spelling.
    pub fn driven(self) -> &'static [&'static str] {
        match self {
            Self::Dpkg => &[
                "systemd",
                "systemd-container",
                "haproxy",
                "openvpn",
                "etcd-server",
                "openssh-server",
                "nftables",
            ],
            Self::Rpm => &[
                "systemd",
                "systemd-container",
                "haproxy",
                "openvpn",
                "etcd",
                "openssh-server",
                "nftables",
            ],
        }
    }

    /// The command that prints the installed version of `package` (and fails when it is not
    /// installed).
    fn query(self, package: &str) -> CommandLine {
        match self {
            Self::Dpkg => CommandLine::new(
                "dpkg-query",
                ["-W", "-f=${Status}\t${Version}", "--", package],
            ),
            Self::Rpm => CommandLine::new(
                "rpm",
                ["-q", "--qf", "%{VERSION}-%{RELEASE}", "--", package],
            ),
        }
    }

    /// The installed version of `package`, `None` when it is not installed.
    pub fn installed_version(self, system: &dyn System, package: &str) -> Option<String> {
        let out = system.exchange(&self.query(package), b"").ok()?;
        self.version(&String::from_utf8_lossy(&out))
    }

    /// The version in the answer of [`Self::query`], `None` when it says "not installed".
    fn version(self, answer: &str) -> Option<String> {
        let version = match self {
            Self::Dpkg => answer.strip_prefix("install ok installed\t")?,
            Self::Rpm => answer,
        };
        let version = version.trim();
        (!version.is_empty()).then(|| version.to_owned())
    }
}

/// One package srvctl drives and its installed version (`None`: not installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The package's name.
    pub name: &'static str,
    /// Its installed version.
    pub version: Option<String>,
}

/// What `sc version` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// srvctl's version.
    pub srvctl: &'static str,
    /// The package manager asked (`None`: a distribution srvctl does not know).
    pub package_manager: Option<PackageManager>,
    /// The packages srvctl drives, in a fixed order.
    pub packages: Vec<Package>,
}

/// srvctl's version and the driven packages' versions, each asked of the package manager.
pub fn versions(system: &dyn System, paths: &Paths) -> Versions {
    let manager = PackageManager::of_host(system, paths);
    let packages = manager
        .map(|m| {
            m.driven()
                .iter()
                .map(|&name| Package {
                    name,
                    version: m.installed_version(system, name),
                })
                .collect()
        })
        .unwrap_or_default();
    Versions {
        srvctl: env!("CARGO_PKG_VERSION"),
        package_manager: manager,
        packages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    fn host(os_release: &str) -> (Recording, Paths) {
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        system
            .write(
                &paths.host("/etc/os-release"),
                os_release.as_bytes(),
                0o644,
                false,
            )
            .unwrap();
        (system, paths)
    }

    #[test]
    fn debian_asks_dpkg_query_for_each_driven_package() {
        let (mut system, paths) = host("PRETTY_NAME=\"Debian\"\nID=debian\n");
        system.answers = [(
            "dpkg-query".to_owned(),
            b"install ok installed\t2.8.1-1".to_vec(),
        )]
        .into();
        let v = versions(&system, &paths);
        assert_eq!(v.srvctl, env!("CARGO_PKG_VERSION"));
        assert_eq!(v.package_manager, Some(PackageManager::Dpkg));
        let names: Vec<_> = v.packages.iter().map(|p| p.name).collect();
        assert_eq!(names, PackageManager::Dpkg.driven());
        assert!(
            v.packages
                .iter()
                .all(|p| p.version.as_deref() == Some("2.8.1-1"))
        );
        let commands = system.commands.borrow();
        assert_eq!(commands.len(), names.len());
        assert_eq!(
            commands[2].to_string(),
            "dpkg-query -W -f=${Status}\t${Version} -- haproxy"
        );
    }

    #[test]
    fn a_package_removed_or_unknown_is_not_installed() {
        let (mut system, paths) = host("ID=ubuntu\nID_LIKE=debian\n");
        system.answers = [(
            "dpkg-query".to_owned(),
            b"deinstall ok config-files\t2.8.1-1".to_vec(),
        )]
        .into();
        let v = versions(&system, &paths);
        assert!(v.packages.iter().all(|p| p.version.is_none()));
        system.failing_programs =
            [("dpkg-query".to_owned(), "no packages found".to_owned())].into();
        assert!(
            versions(&system, &paths)
                .packages
                .iter()
                .all(|p| p.version.is_none())
        );
    }

    #[test]
    fn fedora_asks_rpm_and_an_unknown_distribution_nothing() {
        let (mut system, paths) = host("ID=fedora\nVERSION_ID=41\n");
        system.answers = [("rpm".to_owned(), b"3.1.0-2.fc41".to_vec())].into();
        let v = versions(&system, &paths);
        assert_eq!(v.package_manager, Some(PackageManager::Rpm));
        assert_eq!(v.packages[4].name, "etcd");
        assert_eq!(v.packages[4].version.as_deref(), Some("3.1.0-2.fc41"));
        assert!(
            system.commands.borrow()[0]
                .to_string()
                .starts_with("rpm -q --qf")
        );

        let (system, paths) = host("ID=arch\n");
        let v = versions(&system, &paths);
        assert_eq!(v.package_manager, None);
        assert!(v.packages.is_empty());
        assert!(system.commands.borrow().is_empty());
    }
}
