//! The name registry: who may answer for a name, and which account names may be taken.
//!
//! Every name a site answers for — its container name, `www.` of it, its aliases and
//! alternative names and their `www.`, its preview name under the company domain — belongs to
//! exactly one container. Some names belong to no container at all ([`Reserved`]): the host
//! names of clusters.json, the company domain and `www.` of it, `localhost` (and every name
//! under it), and `sc`'s own command words. Account names may not be a well-known system name
//! ([`crate::model::names::is_system_account`]) nor an account the host already has ([`HostAccounts`]).
//!
//! add-ve, alias/altname add, import-v3, add-user/add-reseller and the loader all decide with
//! these functions, so a name refused by a command is also refused in a hand-edited datastore.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::addr::plan::HostNet;
use crate::config::cluster::Clusters;
use crate::config::site::Settings;
use crate::model::State;
use crate::model::names::ContainerName;
use crate::model::web::{Domain, WebSettings, preview_name};
use crate::system::paths::Paths;

/// The words `sc` reads as a subcommand or a container action: a container of that name could
/// not be managed. The unit tests of the CLI check that every clap subcommand and every
/// container action word is listed.
pub const COMMAND_WORDS: &[&str] = &[
    // subcommands and their aliases
    "add-reseller",
    "add-user",
    "add-ve",
    "add-container",
    "destroy-ve",
    "destroy-container",
    "destroy-user",
    "destroy-reseller",
    "get",
    "out",
    "put",
    "new",
    "del",
    "status",
    "ls",
    "regenerate",
    "certificates",
    "cluster",
    "request",
    "sign",
    "accept",
    "join",
    "completion",
    "man",
    "import-v3",
    "add-publickey",
    "publickeys",
    "remove-publickey",
    "help",
    "version",
    "exec-all",
    "all-containers",
    "customize",
    "diagnose",
    "exec-function",
    "update-install",
    "names",
    // container actions and their arguments
    "start",
    "stop",
    "restart",
    "enable",
    "disable",
    "kill",
    "shell",
    "exec",
    "sftp",
    "users",
    "http-redirect",
    "https-redirect",
    "alias",
    "aliases",
    "altname",
    "altnames",
    "dns",
    "list",
    "add",
    "remove",
    "rm",
    "renew",
    "rootfs",
    "all-hosts",
];

/// A claim was refused: one line that names who holds the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// Another container answers for the name.
    #[error("{name} is already a name of container {owner}")]
    Taken {
        /// The name.
        name: String,
        /// The container that answers for it.
        owner: ContainerName,
    },
    /// The name is a host of clusters.json.
    #[error("{name} is the name of cluster host {name}")]
    ClusterHost {
        /// The name.
        name: String,
    },
    /// The name is the company domain of settings.json (or `www.` of it).
    #[error("{name} is reserved (company domain {company} in settings.json)")]
    CompanyDomain {
        /// The name.
        name: String,
        /// The company domain.
        company: Domain,
    },
    /// The name is `localhost` or under it.
    #[error("{name} is reserved (localhost)")]
    Localhost {
        /// The name.
        name: String,
    },
    /// The name is one of `sc`'s words.
    #[error("{name} is reserved (sc command word)")]
    CommandWord {
        /// The name.
        name: String,
    },
    /// The account name is a well-known system account.
    #[error("{name} is a system account on this host")]
    SystemAccount {
        /// The name.
        name: String,
    },
    /// The account name exists on this host and srvctl did not make it.
    #[error("{name} is an account of this host (UID {uid}) that srvctl did not create")]
    HostAccount {
        /// The name.
        name: String,
        /// Its UID (or GID, for a group).
        uid: u32,
    },
}

/// What the host's configuration reserves: the cluster hosts (with their hostnet, which the
/// loader also checks addresses against) and the company domain.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    /// At most a few dozen: a list is faster to search than a hash map.
    hosts: Vec<(String, HostNet)>,
    company_domain: Option<Domain>,
}

impl Reserved {
    /// The names reserved by `clusters` and `settings`.
    pub fn new(clusters: &Clusters, settings: &Settings) -> Self {
        Self {
            hosts: clusters
                .hosts()
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.hostnet))
                .collect(),
            company_domain: settings.company_domain.clone(),
        }
    }

    /// Read clusters.json and settings.json under `paths`. A file that is missing or wrong
    /// reserves nothing here: the commands that need it report its error themselves.
    pub fn load(system: &dyn crate::system::System, paths: &Paths) -> Self {
        Self::new(
            &Clusters::load(system, &paths.clusters()).unwrap_or_default(),
            &Settings::load(system, paths).unwrap_or_default(),
        )
    }

    /// The company domain, which gives every container a preview name.
    pub fn company_domain(&self) -> Option<&Domain> {
        self.company_domain.as_ref()
    }

    /// The hostnet of cluster host `host`, when clusters.json names it.
    pub fn hostnet(&self, host: &str) -> Option<HostNet> {
        self.hosts.iter().find(|(h, _)| h == host).map(|(_, n)| *n)
    }

    /// Why no container may answer for `name` (lower-case), if so.
    pub fn refusal(&self, name: &str) -> Option<ClaimError> {
        let name_owned = || name.to_owned();
        if self.hosts.iter().any(|(h, _)| h == name) {
            return Some(ClaimError::ClusterHost { name: name_owned() });
        }
        if let Some(company) = &self.company_domain
            && (name == company.as_str() || name.strip_prefix("www.") == Some(company.as_str()))
        {
            return Some(ClaimError::CompanyDomain {
                name: name_owned(),
                company: company.clone(),
            });
        }
        let bare = name.trim_end_matches('.');
        if bare == "localhost" || bare.ends_with(".localhost") {
            return Some(ClaimError::Localhost { name: name_owned() });
        }
        // Every command word is one label: a name with a dot is none of them.
        if !name.contains('.') && COMMAND_WORDS.contains(&name) {
            return Some(ClaimError::CommandWord { name: name_owned() });
        }
        None
    }
}

/// Every name container `name` answers for: its own name, its alternative names, its aliases,
/// its preview name (with a company domain), and `www.` of its own name, alternative names and
/// aliases (a name that starts with `www.` gets no second one). The order is the routing
/// table's order of precedence; a name may appear twice (an alias `www.NAME`). Names stored
/// in the record are borrowed, derived ones made.
pub fn site_names<'a>(
    name: &'a ContainerName,
    web: &'a WebSettings,
    company: Option<&Domain>,
) -> Vec<Cow<'a, str>> {
    let listed = || web.altnames.iter().chain(&web.aliases).map(Domain::as_str);
    let mut out = Vec::with_capacity(3 + 2 * (web.altnames.len() + web.aliases.len()));
    out.push(Cow::Borrowed(name.as_str()));
    out.extend(listed().map(Cow::Borrowed));
    out.extend(
        company
            .and_then(|c| preview_name(name, c))
            .map(|d| Cow::Owned(d.to_string())),
    );
    // A container name with a dot is a domain; one without has no `www.`.
    let own = Some(name.as_str()).filter(|n| n.contains('.'));
    out.extend(own.into_iter().chain(listed()).filter_map(www));
    out
}

/// The names a list entry (an alias, an alternative name) adds: the domain itself and `www.`
/// of it.
pub fn entry_names(domain: &Domain) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(domain.as_str())];
    out.extend(www(domain.as_str()));
    out
}

/// `www.` of the domain `domain`, unless it starts with `www.` or would be too long.
fn www<'a>(domain: &str) -> Option<Cow<'a, str>> {
    (!domain.starts_with("www.") && domain.len() + 4 <= crate::model::web::DOMAIN_MAX).then(|| {
        let mut www = String::with_capacity(domain.len() + 4);
        www.push_str("www.");
        www.push_str(domain);
        Cow::Owned(www)
    })
}

/// Whether container `name` (with the web fields `web`) answers for `candidate`: the same
/// answer as `site_names(name, web, company).contains(candidate)`, without building the list
/// (a single claim is checked against every container of the datastore).
pub fn answers_for(
    name: &ContainerName,
    web: &WebSettings,
    company: Option<&Domain>,
    candidate: &str,
) -> bool {
    let listed = |bare: &str| {
        web.altnames
            .iter()
            .chain(&web.aliases)
            .any(|d| d.as_str() == bare)
    };
    if name.as_str() == candidate || listed(candidate) {
        return true;
    }
    if company.is_some_and(|c| is_preview(name, c, candidate)) {
        return true;
    }
    match candidate.strip_prefix("www.") {
        Some(bare)
            if !bare.starts_with("www.") && candidate.len() <= crate::model::web::DOMAIN_MAX =>
        {
            (bare == name.as_str() && name.as_str().contains('.')) || listed(bare)
        }
        _ => false,
    }
}

/// Whether `candidate` is the preview name of `name` under `company` (see [`preview_name`]).
fn is_preview(name: &ContainerName, company: &Domain, candidate: &str) -> bool {
    let Some(label) = candidate
        .strip_suffix(company.as_str())
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return false;
    };
    label.len() == name.as_str().len()
        && label.len() <= 63
        && candidate.len() <= crate::model::web::DOMAIN_MAX
        && label
            .bytes()
            .zip(name.as_str().bytes())
            .all(|(l, n)| l == if n == b'.' { b'-' } else { n })
}

/// The container of `state` that answers for `candidate`, the first in key order.
pub fn owner_of<'s>(
    state: &'s State,
    company: Option<&Domain>,
    candidate: &str,
) -> Option<&'s ContainerName> {
    state
        .containers
        .iter()
        .find(|(n, c)| answers_for(n, &c.web, company, candidate))
        .map(|(n, _)| n)
}

/// Whether `claimant` may answer for every one of `names` in `state`: none is reserved, none
/// belongs to another container. The first refused name decides the error. This is the check
/// of every command that gives a container a name (add-ve, alias/altname add, import-v3).
pub fn check_claim(
    state: &State,
    reserved: &Reserved,
    claimant: &ContainerName,
    names: &[Cow<'_, str>],
) -> Result<(), ClaimError> {
    check_names(reserved, claimant, names, |name| {
        owner_of(state, reserved.company_domain(), name)
    })
}

/// The one rule of [`check_claim`] and [`Registry::check`]: each name is neither reserved nor
/// answered for by a container other than `claimant` (`owner` says who answers for a name).
fn check_names<'s>(
    reserved: &Reserved,
    claimant: &ContainerName,
    names: &[Cow<'_, str>],
    owner: impl Fn(&str) -> Option<&'s ContainerName>,
) -> Result<(), ClaimError> {
    for name in names {
        if let Some(refusal) = reserved.refusal(name) {
            return Err(refusal);
        }
        if let Some(owner) = owner(name)
            && owner != claimant
        {
            return Err(ClaimError::Taken {
                name: name.to_string(),
                owner: owner.clone(),
            });
        }
    }
    Ok(())
}

/// Which container answers for each name, built up container by container: the loader's way
/// of checking a whole datastore in one pass. It borrows the names from the records.
#[derive(Debug, Clone, Default)]
pub struct Registry<'a> {
    owners: HashMap<Cow<'a, str>, &'a ContainerName>,
}

impl<'a> Registry<'a> {
    /// An empty registry with room for the names of `containers` containers.
    pub fn with_capacity(containers: usize) -> Self {
        Self {
            owners: HashMap::with_capacity(2 * containers),
        }
    }

    /// The container that answers for `name`, if any.
    pub fn owner(&self, name: &str) -> Option<&'a ContainerName> {
        self.owners.get(name).copied()
    }

    /// Whether `claimant` may answer for every one of `names`, as [`check_claim`] decides.
    pub fn check(
        &self,
        reserved: &Reserved,
        claimant: &ContainerName,
        names: &[Cow<'_, str>],
    ) -> Result<(), ClaimError> {
        check_names(reserved, claimant, names, |name| self.owner(name))
    }

    /// Record that `claimant` answers for `names` (the first claim of a name wins).
    pub fn insert(&mut self, claimant: &'a ContainerName, names: Vec<Cow<'a, str>>) {
        for name in names {
            self.owners.entry(name).or_insert(claimant);
        }
    }
}

/// The accounts a host already has, for [`check_account`]. `--root` (tests, scratch trees)
/// uses [`NoHostAccounts`]; a real host [`SystemAccounts`].
pub trait HostAccounts: std::fmt::Debug {
    /// The UID of user `name`, else the GID of group `name`, if the host has one.
    fn id_of(&self, name: &str) -> Option<u32>;
}

/// The host's own user and group databases (NSS: passwd, group, userdb).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

impl HostAccounts for SystemAccounts {
    fn id_of(&self, name: &str) -> Option<u32> {
        use nix::unistd::{Group, User};
        if let Ok(Some(u)) = User::from_name(name) {
            return Some(u.uid.as_raw());
        }
        Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }
}

/// A host without accounts of its own: only the well-known system names are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostAccounts;

impl HostAccounts for NoHostAccounts {
    fn id_of(&self, _: &str) -> Option<u32> {
        None
    }
}

/// The host accounts for a command under `paths`: none under `--root`, else the system's.
pub fn host_accounts(paths: &Paths) -> &'static dyn HostAccounts {
    if paths.root().is_some() {
        &NoHostAccounts
    } else {
        &SystemAccounts
    }
}

/// Whether a new srvctl account may be called `name`: not a well-known system name, not an
/// account the host has unless its id is one srvctl's datastore holds (srvctl's own accounts
/// resolve on the host too, through their userdb records).
pub fn check_account(name: &str, state: &State, host: &dyn HostAccounts) -> Result<(), ClaimError> {
    if crate::model::names::is_system_account(name) {
        return Err(ClaimError::SystemAccount {
            name: name.to_owned(),
        });
    }
    match host.id_of(name) {
        Some(uid) if !srvctl_ids(state).contains(&uid) => Err(ClaimError::HostAccount {
            name: name.to_owned(),
            uid,
        }),
        _ => Ok(()),
    }
}

/// Every UID and GID the datastore holds, set-aside records included.
fn srvctl_ids(state: &State) -> HashSet<u32> {
    let aside = state
        .set_aside_records(crate::model::Section::Users)
        .flat_map(|r| ["uid", "gid"].map(|k| r.get(k).and_then(serde_json::Value::as_u64)))
        .flatten()
        .filter_map(|id| u32::try_from(id).ok());
    state
        .users
        .values()
        .flat_map(|u| [u.uid, u.gid])
        .chain(aside)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved() -> Reserved {
        let clusters = Clusters::parse(
            std::path::Path::new("clusters.json"),
            r#"{"t":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
        )
        .unwrap();
        let settings = Settings {
            company_domain: Some(Domain::new("company.net").unwrap()),
            company_name: None,
            ..Default::default()
        };
        Reserved::new(&clusters, &settings)
    }

    fn name(s: &str) -> ContainerName {
        ContainerName::new(s).unwrap()
    }

    fn shop() -> (ContainerName, WebSettings) {
        let web = WebSettings {
            aliases: vec![Domain::new("shop.example.net").unwrap()],
            altnames: vec![Domain::new("store.example.com").unwrap()],
            ..WebSettings::default()
        };
        (name("shop.example.com"), web)
    }

    #[test]
    fn a_site_answers_for_all_its_names() {
        let (n, web) = shop();
        let company = Domain::new("company.net").unwrap();
        let names = site_names(&n, &web, Some(&company));
        for expected in [
            "shop.example.com",
            "www.shop.example.com",
            "shop.example.net",
            "www.shop.example.net",
            "store.example.com",
            "www.store.example.com",
            "shop-example-com.company.net",
        ] {
            assert!(names.iter().any(|x| x == expected), "{expected} missing");
        }
        assert_eq!(
            site_names(&name("alpha"), &WebSettings::default(), None),
            ["alpha"]
        );
    }

    #[test]
    fn each_name_has_one_owner() {
        let (n, web) = shop();
        let r = reserved();
        let mut registry = Registry::default();
        registry.insert(&n, site_names(&n, &web, r.company_domain()));
        let other = name("other.example.org");
        for taken in [
            "shop.example.com",
            "www.shop.example.com",
            "shop.example.net",
            "www.shop.example.net",
            "store.example.com",
            "shop-example-com.company.net",
        ] {
            let e = registry.check(&r, &other, &[taken.into()]).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{taken} is already a name of container shop.example.com")
            );
        }
        assert!(
            registry
                .check(&r, &n, &["www.shop.example.com".into()])
                .is_ok()
        );
        assert!(
            registry
                .check(&r, &other, &["free.example.org".into()])
                .is_ok()
        );
    }

    #[test]
    fn the_single_check_and_the_registry_agree() {
        let company = Domain::new("company.net").unwrap();
        let (n, web) = shop();
        let mut state = State::default();
        let plain = |s: &str| (name(s), WebSettings::default());
        let www_alias = WebSettings {
            aliases: vec![Domain::new("www.b.example.org").unwrap()],
            ..WebSettings::default()
        };
        for (n, web) in [(n, web), plain("alpha"), (name("b.example.org"), www_alias)] {
            state.containers.insert(n, container(web));
        }
        let mut registry = Registry::default();
        for (n, c) in &state.containers {
            registry.insert(n, site_names(n, &c.web, Some(&company)));
        }
        let mut probes: Vec<String> = registry.owners.keys().map(|k| k.to_string()).collect();
        probes.extend(
            [
                "www.alpha",
                "www.www.b.example.org",
                "alpha.company.net",
                "x.org",
            ]
            .map(String::from),
        );
        for p in &probes {
            assert_eq!(
                owner_of(&state, Some(&company), p),
                registry.owner(p),
                "{p}"
            );
        }
    }

    fn container(web: WebSettings) -> crate::model::Container {
        crate::model::Container {
            user: crate::model::Owner::Operator,
            host: "h1.test".into(),
            ip: "10.16.0.2".parse().unwrap(),
            created: "t".into(),
            created_by: "root".into(),
            settings: Default::default(),
            web,
            logins: Vec::new(),
            dns: Vec::new(),
            dkim: None,
            destroying: false,
            provision: false,
            extra: Default::default(),
        }
    }

    #[test]
    fn reserved_names_belong_to_no_container() {
        let r = reserved();
        for (n, says) in [
            ("h2.test", "cluster host h2.test"),
            ("company.net", "company domain"),
            ("www.company.net", "company domain"),
            ("localhost", "localhost"),
            ("localhost.", "localhost"),
            ("a.localhost", "localhost"),
            ("status", "sc command word"),
            ("version", "sc command word"),
            ("add-ve", "sc command word"),
        ] {
            let e = r
                .refusal(n)
                .unwrap_or_else(|| panic!("{n} free"))
                .to_string();
            assert!(e.starts_with(n) && e.contains(says), "{e}");
        }
        assert!(r.refusal("sub.company.net").is_none());
        assert!(Reserved::default().refusal("h2.test").is_none());
    }

    #[derive(Debug)]
    struct Host(&'static str, u32);

    impl HostAccounts for Host {
        fn id_of(&self, name: &str) -> Option<u32> {
            (name == self.0).then_some(self.1)
        }
    }

    #[test]
    fn accounts_of_the_system_and_of_the_host_are_refused() {
        let state = State::default();
        for n in ["root", "www-data", "systemd-network", "nobody", "_apt"] {
            let e = check_account(n, &state, &NoHostAccounts).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{n} is a system account on this host")
            );
        }
        assert!(check_account("bob", &state, &NoHostAccounts).is_ok());
        let e = check_account("carol", &state, &Host("carol", 1005)).unwrap_err();
        assert!(matches!(e, ClaimError::HostAccount { uid: 1005, .. }));
    }

    #[test]
    fn srvctl_own_accounts_resolving_on_the_host_are_not_host_accounts() {
        let doc = r#"{"schema_version": 1, "users": {"bob": {"reseller_id": 0, "index": 1,
            "uid": 20001, "gid": 20001, "created": "t", "created_by": "root"}}}"#;
        let state = State::from_json(doc.as_bytes()).unwrap();
        assert!(check_account("bob", &state, &Host("bob", 20001)).is_ok());
        assert!(check_account("bob", &state, &Host("bob", 33)).is_err());
    }
}
