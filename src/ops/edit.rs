//! The edits of the datastore. Each one is pure: it validates, allocates from the address
//! plan and edits the in-memory [`State`], or refuses and leaves it untouched.

use serde::Serialize;

use crate::addr::plan::{self, Bridge, ContainerNumber, ResellerId, UserIndex};
use crate::config::cluster::Host;
use crate::model::claims::{self, ClaimError, HostAccounts, Reserved};
use crate::model::names::{AccountName, ContainerLogin, ContainerName, NameError};
use crate::model::settings::{ContainerSettings, SettingError};
use crate::model::{Container, Owner, Reseller, Section, State, User};

/// Who, where and when a change is made.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// This host, if clusters.json names it.
    pub host: Option<&'a Host>,
    /// This host's name, as the system reports it.
    pub hostname: &'a str,
    /// Who asks: the role the change is checked against, and the name recorded as
    /// `created_by`.
    pub caller: &'a crate::access::Caller,
    /// The time of the change (RFC 3339).
    pub now: &'a str,
    /// The names no container may take (cluster hosts, the company domain), and the company
    /// domain of the preview names.
    pub reserved: &'a Reserved,
    /// The accounts this host already has.
    pub accounts: &'a dyn HostAccounts,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A name is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A setting is invalid.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The name is taken.
    #[error("{kind} {name} already exists")]
    Exists {
        /// Kind of record.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// No such record.
    #[error("no {kind} named {name}")]
    NotFound {
        /// Kind of record.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A range of the address plan is full.
    #[error("{0}")]
    Exhausted(String),
    /// This host is not in clusters.json.
    #[error("this host ({0}) is not defined in clusters.json; add it, or set SRVCTL_HOSTNAME")]
    UnknownHost(String),
    /// The record is still used by others.
    #[error("{0}")]
    InUse(String),
    /// The container is being destroyed: only `sc destroy-ve` may touch it.
    #[error("container {0} is being destroyed; run `sc destroy-ve {0}` to finish")]
    Destroying(ContainerName),
    /// The container runs: `sc destroy-ve` stops it only when told to.
    #[error(
        "container {0} is running; add --force to stop and destroy it (`sc destroy-ve {0} --force`)"
    )]
    Running(ContainerName),
    /// A change to a container's web front was refused.
    #[error(transparent)]
    Front(#[from] crate::front::routes::FrontError),
    /// A srvctl 3 import was refused.
    #[error(transparent)]
    Import(#[from] crate::ops::import_v3::ImportError),
    /// The datastore cannot be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Something on the machine stands in the way of the change (nothing was written).
    #[error("{0}")]
    Machine(String),
    /// A name belongs to someone else or is reserved.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// The caller's role may not do this.
    #[error("{0}")]
    Denied(String),
    /// An SSH public key was refused.
    #[error(transparent)]
    Key(#[from] crate::model::keys::KeyError),
    /// A before hook refused the change.
    #[error(transparent)]
    Hook(#[from] crate::ops::hooks::HookError),
    /// A site's own DNS record was refused.
    #[error(transparent)]
    Dns(#[from] crate::model::dns::RecordError),
}

/// A reseller was added.
#[derive(Debug, Clone, Serialize)]
pub struct ResellerAdded {
    /// Its name.
    pub name: AccountName,
    /// Its id, R.
    pub id: ResellerId,
    /// UID of its own account.
    pub uid: u32,
}

/// A user was added.
#[derive(Debug, Clone, Serialize)]
pub struct UserAdded {
    /// Its name.
    pub name: AccountName,
    /// Its reseller's name.
    pub reseller: String,
    /// Its reseller's id, R.
    pub reseller_id: ResellerId,
    /// Its index, U.
    pub index: UserIndex,
    /// Its UID (and GID).
    pub uid: u32,
}

/// A container was added.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerAdded {
    /// Its name.
    pub name: ContainerName,
    /// Its address.
    pub ip: std::net::Ipv4Addr,
    /// Its bridge interface.
    pub bridge: String,
    /// Its gateway, the bridge's host address.
    pub gateway: std::net::Ipv4Addr,
    /// Its owner.
    pub user: String,
    /// Its host.
    pub host: String,
    /// The image its root filesystem comes from.
    pub image: String,
}

/// A record was removed.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// Kind of record.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
}

fn taken(state: &State, name: &AccountName) -> Result<(), OpError> {
    if state.users.contains_key(name) || state.resellers.contains_key(name) {
        return Err(OpError::Exists {
            kind: "account",
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The UID for a new account at (R, U): the plan's id, unless an imported account holds it.
fn free_account_id(state: &State, reseller: ResellerId, index: UserIndex) -> Result<u32, OpError> {
    let held: Vec<u64> = state
        .set_aside_records(Section::Users)
        .flat_map(|r| ["uid", "gid"].map(|k| r.get(k).and_then(serde_json::Value::as_u64)))
        .flatten()
        .collect();
    let used = |id: u32| {
        held.contains(&u64::from(id)) || state.users.values().any(|u| u.uid == id || u.gid == id)
    };
    let derived = plan::account_id(reseller, index);
    if !used(derived) {
        return Ok(derived);
    }
    (plan::ACCOUNT_ID_BASE + 16 * 256..plan::ACCOUNT_IDS.end)
        .find(|id| !used(*id))
        .ok_or_else(|| OpError::Exhausted("no free UID left for srvctl accounts".into()))
}

fn new_user(
    state: &State,
    ctx: &Context<'_>,
    reseller: ResellerId,
    index: UserIndex,
) -> Result<User, OpError> {
    let uid = free_account_id(state, reseller, index)?;
    Ok(User {
        reseller_id: reseller,
        index,
        uid,
        gid: uid,
        created: ctx.now.to_owned(),
        created_by: ctx.caller.name.clone(),
        display_name: None,
        email: None,
        publickeys: Default::default(),
        extra: Default::default(),
    })
}

/// `sc add-reseller NAME`: the lowest free id of 1..=15, and the reseller's own account.
pub fn add_reseller(
    state: &mut State,
    ctx: &Context<'_>,
    name: &str,
) -> Result<ResellerAdded, OpError> {
    claims::check_account(name, state, ctx.accounts)?;
    let name = AccountName::new(name)?;
    taken(state, &name)?;
    let id = ResellerId::assignable()
        .find(|id| state.reseller_by_id(*id).is_none())
        .ok_or_else(|| {
            OpError::Exhausted(format!(
                "all {} reseller ids are in use",
                plan::capacity::RESELLERS
            ))
        })?;
    let own = new_user(state, ctx, id, UserIndex::OWN)?;
    let uid = own.uid;
    state.resellers.insert(
        name.clone(),
        Reseller {
            id,
            created: ctx.now.to_owned(),
            created_by: ctx.caller.name.clone(),
            extra: Default::default(),
        },
    );
    state.users.insert(name.clone(), own);
    Ok(ResellerAdded { name, id, uid })
}

/// Find a reseller by name, by id, or the operator (`root` or `0`).
pub fn find_reseller(state: &State, reference: &str) -> Result<(String, ResellerId), OpError> {
    let not_found = || OpError::NotFound {
        kind: "reseller",
        name: crate::model::names::shown(reference),
    };
    if reference == crate::model::OPERATOR || reference == "0" {
        return Ok((crate::model::OPERATOR.into(), ResellerId::OPERATOR));
    }
    if let Ok(n) = reference.parse::<u32>() {
        let id = ResellerId::new(n).map_err(|_| not_found())?;
        return state
            .reseller_by_id(id)
            .map(|(name, r)| (name.to_string(), r.id))
            .ok_or_else(not_found);
    }
    let name = AccountName::new(reference)?;
    state
        .resellers
        .get(&name)
        .map(|r| (name.to_string(), r.id))
        .ok_or_else(not_found)
}

/// `sc add-user NAME [--reseller R]`: the lowest free index of 1..=254 inside the reseller.
pub fn add_user(
    state: &mut State,
    ctx: &Context<'_>,
    name: &str,
    reseller: Option<&str>,
) -> Result<UserAdded, OpError> {
    claims::check_account(name, state, ctx.accounts)?;
    let name = AccountName::new(name)?;
    let (reseller_name, reseller_id) =
        find_reseller(state, reseller.unwrap_or(crate::model::OPERATOR))?;
    taken(state, &name)?;
    let held: Vec<u64> = state
        .set_aside_records(Section::Users)
        .filter(|r| {
            r.get("reseller_id").and_then(serde_json::Value::as_u64)
                == Some(reseller_id.get().into())
        })
        .filter_map(|r| r.get("index")?.as_u64())
        .collect();
    let index = UserIndex::assignable()
        .find(|i| {
            !held.contains(&u64::from(i.get()))
                && !state
                    .users
                    .values()
                    .any(|u| u.reseller_id == reseller_id && u.index == *i)
        })
        .ok_or_else(|| {
            OpError::Exhausted(format!(
                "reseller {reseller_name} has all {} user indexes in use",
                plan::capacity::USERS_PER_RESELLER
            ))
        })?;
    let user = new_user(state, ctx, reseller_id, index)?;
    let uid = user.uid;
    state.users.insert(name.clone(), user);
    Ok(UserAdded {
        name,
        reseller: reseller_name,
        reseller_id,
        index,
        uid,
    })
}

/// Find an owner account (or the operator) that exists.
pub fn find_owner(
    state: &State,
    reference: &str,
) -> Result<(Owner, ResellerId, UserIndex), OpError> {
    let owner = Owner::parse(reference)?;
    let (r, u) = state.owner_slot(&owner).ok_or_else(|| OpError::NotFound {
        kind: "user",
        name: reference.to_owned(),
    })?;
    Ok((owner, r, u))
}

/// `sc add-ve NAME [--user U]`: a container on this host, at the lowest free number of 2..=252
/// on its owner's bridge. Every name the new site answers for (its name, `www.` of it, its
/// preview name) must be free in the name registry.
pub fn add_container(
    state: &mut State,
    ctx: &Context<'_>,
    name: &str,
    owner: Option<&str>,
) -> Result<ContainerAdded, OpError> {
    let name = ContainerName::new(name)?;
    let (owner, reseller, user) = find_owner(state, owner.unwrap_or(crate::model::OPERATOR))?;
    let host = ctx
        .host
        .ok_or_else(|| OpError::UnknownHost(ctx.hostname.to_owned()))?;
    if state.containers.get(&name).is_some_and(|c| c.destroying) {
        return Err(OpError::Destroying(name));
    }
    let company = ctx.reserved.company_domain();
    let no_web = crate::model::web::WebSettings::default();
    let names = claims::site_names(&name, &no_web, company);
    claims::check_claim(state, ctx.reserved, &name, &names)?;
    if state.containers.contains_key(&name)
        || state.set_aside.iter().any(|s| s.key == name.as_str())
    {
        return Err(OpError::Exists {
            kind: "container",
            name: name.to_string(),
        });
    }
    let bridge = Bridge {
        host: host.hostnet,
        reseller,
        user,
    };
    // A set-aside record keeps its address: handing it out again would clash once it is fixed.
    let set_aside = state
        .set_aside_records(Section::Containers)
        .filter_map(|r| r.get("ip")?.as_str()?.parse().ok())
        .filter_map(Bridge::of_container_address);
    let used: std::collections::HashSet<ContainerNumber> = state
        .containers
        .values()
        .filter_map(Container::slot)
        .chain(set_aside)
        .filter(|(b, _)| *b == bridge)
        .map(|(_, n)| n)
        .collect();
    let number = ContainerNumber::all()
        .find(|n| !used.contains(n))
        .ok_or_else(|| {
            OpError::Exhausted(format!(
                "bridge {} of {owner} on {} is full ({} containers)",
                bridge.interface(),
                host.name,
                plan::capacity::CONTAINERS_PER_BRIDGE
            ))
        })?;
    let ip = bridge.container_address(number);
    state.containers.insert(
        name.clone(),
        Container {
            user: owner.clone(),
            host: host.name.clone(),
            ip,
            created: ctx.now.to_owned(),
            created_by: ctx.caller.name.clone(),
            destroying: false,
            provision: false,
            settings: ContainerSettings::default(),
            web: Default::default(),
            logins: Vec::new(),
            dns: Vec::new(),
            dkim: None,
            extra: Default::default(),
        },
    );
    Ok(ContainerAdded {
        name,
        ip,
        bridge: bridge.interface(),
        gateway: bridge.gateway(),
        user: owner.to_string(),
        host: host.name.clone(),
        image: crate::containers::image::DEFAULT_IMAGE.into(),
    })
}

/// A container that may be changed: it exists and is not being destroyed.
fn existing_container<'s>(
    state: &'s mut State,
    name: &str,
) -> Result<(ContainerName, &'s mut Container), OpError> {
    let name = ContainerName::new(name)?;
    let c = state
        .containers
        .get_mut(&name)
        .ok_or_else(|| not_found_container(&name))?;
    if c.destroying {
        return Err(OpError::Destroying(name));
    }
    Ok((name, c))
}

fn not_found_container(name: &ContainerName) -> OpError {
    OpError::NotFound {
        kind: "container",
        name: name.to_string(),
    }
}

/// Refuse any change but `sc destroy-ve` to a container being destroyed.
pub fn refuse_if_destroying(state: &State, name: &ContainerName) -> Result<(), OpError> {
    match state.containers.get(name) {
        Some(c) if c.destroying => Err(OpError::Destroying(name.clone())),
        _ => Ok(()),
    }
}

/// `sc destroy-ve NAME`, first half: mark the record as being destroyed. It keeps its name and
/// address while its unit is stopped and its files are removed; marking it again is a no-op
/// (a destroy that was interrupted is finished by running it again).
pub fn mark_destroying(state: &mut State, name: &str) -> Result<ContainerName, OpError> {
    let name = ContainerName::new(name)?;
    let c = state
        .containers
        .get_mut(&name)
        .ok_or_else(|| not_found_container(&name))?;
    c.destroying = true;
    Ok(name)
}

/// `sc destroy-ve NAME`, second half: remove a record marked as being destroyed; its number
/// is free again.
pub fn release_container(state: &mut State, name: &ContainerName) -> Result<Removed, OpError> {
    match state.containers.get(name) {
        Some(c) if c.destroying => {
            state.containers.remove(name);
            Ok(Removed {
                kind: "container",
                name: name.to_string(),
            })
        }
        Some(_) => Err(OpError::InUse(format!(
            "container {name} is not marked as being destroyed"
        ))),
        None => Err(not_found_container(name)),
    }
}

/// `sc del user NAME`: remove an account that owns no container and is not a reseller.
pub fn destroy_user(state: &mut State, name: &str) -> Result<Removed, OpError> {
    let name = AccountName::new(name)?;
    if !state.users.contains_key(&name) {
        return Err(OpError::NotFound {
            kind: "user",
            name: name.to_string(),
        });
    }
    if state.resellers.contains_key(&name) {
        return Err(OpError::InUse(format!(
            "{name} is a reseller; remove it with `sc del reseller {name}`"
        )));
    }
    refuse_if_owning(state, &name)?;
    state.users.remove(&name);
    Ok(Removed {
        kind: "user",
        name: name.to_string(),
    })
}

fn refuse_if_owning(state: &State, name: &AccountName) -> Result<(), OpError> {
    let owned = state
        .containers
        .values()
        .filter(|c| c.user == Owner::Account(name.clone()))
        .count();
    if owned > 0 {
        return Err(OpError::InUse(format!(
            "{name} still owns {owned} container(s); destroy them first"
        )));
    }
    Ok(())
}

/// `sc del reseller NAME`: remove a reseller that has no users left besides its own account.
pub fn destroy_reseller(state: &mut State, name: &str) -> Result<Removed, OpError> {
    let name = AccountName::new(name)?;
    let id = state
        .resellers
        .get(&name)
        .map(|r| r.id)
        .ok_or_else(|| OpError::NotFound {
            kind: "reseller",
            name: name.to_string(),
        })?;
    let users = state
        .users
        .iter()
        .filter(|(n, u)| u.reseller_id == id && **n != name)
        .count();
    if users > 0 {
        return Err(OpError::InUse(format!(
            "reseller {name} still has {users} user(s); remove them first"
        )));
    }
    refuse_if_owning(state, &name)?;
    state.resellers.remove(&name);
    state.users.remove(&name);
    Ok(Removed {
        kind: "reseller",
        name: name.to_string(),
    })
}

/// `sc put container NAME KEY [VALUE]`.
pub fn put_container(
    state: &mut State,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), OpError> {
    let (_, c) = existing_container(state, name)?;
    c.settings.set(key, value)?;
    Ok(())
}

/// A login was added to a container.
#[derive(Debug, Clone, Serialize)]
pub struct LoginAdded {
    /// The container.
    pub container: ContainerName,
    /// The new login.
    pub login: ContainerLogin,
}

/// `sc NAME add-user LOGIN`: list `login` among the accounts of container `name`. Refused:
/// an invalid name, `root`, `www` and system account names, and a login listed already.
pub fn add_login(state: &mut State, name: &str, login: &str) -> Result<LoginAdded, OpError> {
    let (container, c) = existing_container(state, name)?;
    let login = ContainerLogin::new(login)?;
    if let Some(why) = crate::model::reserved_login(&login) {
        return Err(OpError::Name(NameError::Invalid {
            kind: "container login",
            shown: crate::model::names::shown(login.as_str()),
            why,
        }));
    }
    if c.logins.contains(&login) {
        return Err(OpError::Exists {
            kind: "login",
            name: format!("{login}@{container}"),
        });
    }
    c.logins.push(login.clone());
    Ok(LoginAdded { container, login })
}

/// `sc put user NAME KEY [VALUE]`.
pub fn put_user(
    state: &mut State,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), OpError> {
    let name = AccountName::new(name)?;
    let user = state
        .users
        .get_mut(&name)
        .ok_or_else(|| OpError::NotFound {
            kind: "user",
            name: name.to_string(),
        })?;
    user.set(key, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::Clusters;

    fn clusters() -> Clusters {
        Clusters::parse(
            std::path::Path::new("clusters.json"),
            r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
        )
        .unwrap()
    }

    static ROOT: std::sync::LazyLock<crate::access::Caller> =
        std::sync::LazyLock::new(crate::access::Caller::operator_root);

    fn ctx<'a>(c: &'a Clusters, reserved: &'a Reserved) -> Context<'a> {
        Context {
            host: c.host("h1.test"),
            hostname: "h1.test",
            caller: &ROOT,
            now: "2026-01-01T00:00:00Z",
            reserved,
            accounts: &crate::model::claims::NoHostAccounts,
        }
    }

    #[test]
    fn the_worked_example() {
        let c = clusters();
        let r = Reserved::new(&c, &Default::default());
        let ctx = ctx(&c, &r);
        let mut s = State::default();
        assert_eq!(add_reseller(&mut s, &ctx, "alice").unwrap().id.get(), 1);
        let bob = add_user(&mut s, &ctx, "bob", Some("alice")).unwrap();
        assert_eq!((bob.reseller_id.get(), bob.index.get()), (1, 1));
        let ip = |r: ContainerAdded| r.ip.to_string();
        assert_eq!(
            ip(add_container(&mut s, &ctx, "web.example.com", Some("bob")).unwrap()),
            "10.17.1.2"
        );
        assert_eq!(
            ip(add_container(&mut s, &ctx, "two.example.com", Some("bob")).unwrap()),
            "10.17.1.3"
        );
        let web = mark_destroying(&mut s, "web.example.com").unwrap();
        assert!(matches!(
            add_container(&mut s, &ctx, "web.example.com", Some("bob")),
            Err(OpError::Destroying(_))
        ));
        assert!(matches!(
            put_container(&mut s, "web.example.com", "http_port", Some("8080")),
            Err(OpError::Destroying(_))
        ));
        assert_eq!(
            ip(add_container(&mut s, &ctx, "four.example.com", Some("bob")).unwrap()),
            "10.17.1.4",
            "a container being destroyed keeps its address"
        );
        release_container(&mut s, &web).unwrap();
        assert_eq!(
            ip(add_container(&mut s, &ctx, "three.example.com", Some("bob")).unwrap()),
            "10.17.1.2"
        );
        assert_eq!(
            ip(add_container(&mut s, &ctx, "op.example.com", None).unwrap()),
            "10.16.0.2"
        );
        assert_eq!(
            ip(add_container(&mut s, &ctx, "own.alice.ve", Some("alice")).unwrap()),
            "10.17.0.2"
        );
    }

    #[test]
    fn refusals_leave_state_untouched() {
        let c = clusters();
        let r = Reserved::new(&c, &Default::default());
        let ctx = ctx(&c, &r);
        let mut s = State::default();
        add_reseller(&mut s, &ctx, "alice").unwrap();
        add_user(&mut s, &ctx, "bob", Some("alice")).unwrap();
        add_container(&mut s, &ctx, "web.example.com", Some("bob")).unwrap();
        let before = s.clone();
        assert!(add_container(&mut s, &ctx, "web.example.com", Some("bob")).is_err());
        assert!(add_container(&mut s, &ctx, "x.example.com", Some("carol")).is_err());
        assert!(add_user(&mut s, &ctx, "bob", Some("alice")).is_err());
        assert!(add_user(&mut s, &ctx, "dave", Some("nobody")).is_err());
        assert!(add_reseller(&mut s, &ctx, "bob").is_err());
        assert!(destroy_user(&mut s, "bob").is_err());
        assert!(destroy_reseller(&mut s, "alice").is_err());
        assert!(put_container(&mut s, "web.example.com", "http_port", Some("0")).is_err());
        let elsewhere = Context {
            host: None,
            ..ctx.clone()
        };
        assert!(matches!(
            add_container(&mut s, &elsewhere, "y.example.com", None),
            Err(OpError::UnknownHost(_))
        ));
        assert_eq!(s, before);
    }

    #[test]
    fn logins_are_added_once_and_never_reserved_ones() {
        let c = clusters();
        let r = Reserved::new(&c, &Default::default());
        let mut s = State::default();
        add_container(&mut s, &ctx(&c, &r), "web.example.com", None).unwrap();
        let added = add_login(&mut s, "web.example.com", "deploy").unwrap();
        assert_eq!(added.login.as_str(), "deploy");
        let before = s.clone();
        let refused = [
            ("deploy", "login deploy@web.example.com already exists"),
            ("root", "every container has it already"),
            ("www", "every container has it already"),
            ("www-data", "reserved for the system"),
            ("systemd-x", "reserved for the system"),
            ("de_ploy", "use only lower-case letters"),
            ("a\nb", "use only lower-case letters"),
        ];
        for (login, why) in refused {
            let e = add_login(&mut s, "web.example.com", login).unwrap_err();
            assert!(e.to_string().contains(why), "{login:?}: {e}");
        }
        assert!(matches!(
            add_login(&mut s, "nowhere.example.com", "deploy"),
            Err(OpError::NotFound { .. })
        ));
        assert_eq!(s, before);
        let web = &s.containers[&ContainerName::new("web.example.com").unwrap()];
        assert_eq!(web.all_logins(), ["root", "www", "deploy"]);
    }

    #[test]
    fn names_and_accounts_are_claimed_once() {
        let c = clusters();
        let settings = crate::config::site::Settings {
            company_domain: Some(crate::model::web::Domain::new("company.net").unwrap()),
            company_name: None,
            ..Default::default()
        };
        let r = Reserved::new(&c, &settings);
        let ctx = ctx(&c, &r);
        let mut s = State::default();
        add_container(&mut s, &ctx, "shop.example.com", None).unwrap();
        let before = s.clone();
        for (name, owner) in [
            ("www.shop.example.com", "container shop.example.com"),
            ("shop-example-com.company.net", "container shop.example.com"),
            ("WWW.Shop.Example.com", "container shop.example.com"),
            ("h2.test", "cluster host h2.test"),
            ("company.net", "company domain"),
            ("localhost", "localhost"),
            ("status", "sc command word"),
        ] {
            let e = add_container(&mut s, &ctx, name, None).unwrap_err();
            assert!(matches!(e, OpError::Claim(_)), "{name}: {e}");
            assert!(e.to_string().contains(owner), "{name}: {e}");
        }
        for name in ["www-data", "systemd-network", "root", "nobody"] {
            let e = add_user(&mut s, &ctx, name, None).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{name} is a system account on this host")
            );
            assert!(add_reseller(&mut s, &ctx, name).is_err());
        }
        assert_eq!(s, before);
    }

    #[test]
    fn exhausted_ranges_are_refused() {
        let c = clusters();
        let r = Reserved::new(&c, &Default::default());
        let ctx = ctx(&c, &r);
        let mut s = State::default();
        for i in 0..15 {
            add_reseller(&mut s, &ctx, &format!("r{i}")).unwrap();
        }
        assert!(matches!(
            add_reseller(&mut s, &ctx, "r15"),
            Err(OpError::Exhausted(_))
        ));
        for i in 0..251 {
            add_container(&mut s, &ctx, &format!("c{i}.ve"), None).unwrap();
        }
        assert!(matches!(
            add_container(&mut s, &ctx, "full.ve", None),
            Err(OpError::Exhausted(_))
        ));
        for i in 0..254 {
            add_user(&mut s, &ctx, &format!("u{i}"), Some("r0")).unwrap();
        }
        assert!(matches!(
            add_user(&mut s, &ctx, "u254", Some("r0")),
            Err(OpError::Exhausted(_))
        ));
    }

    #[test]
    fn removing_frees_ids() {
        let c = clusters();
        let r = Reserved::new(&c, &Default::default());
        let ctx = ctx(&c, &r);
        let mut s = State::default();
        add_reseller(&mut s, &ctx, "a").unwrap();
        add_reseller(&mut s, &ctx, "b").unwrap();
        destroy_reseller(&mut s, "a").unwrap();
        assert_eq!(add_reseller(&mut s, &ctx, "c").unwrap().id.get(), 1);
        let u = add_user(&mut s, &ctx, "x", None).unwrap();
        assert_eq!((u.reseller_id.get(), u.index.get()), (0, 1));
        destroy_user(&mut s, "x").unwrap();
        assert!(!s.users.contains_key(&AccountName::new("x").unwrap()));
    }
}
