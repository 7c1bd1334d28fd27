//! The one transaction every change goes through: lock the datastore, load it, validate and
//! edit it in memory, commit it, record the outcome in the audit log, and return what should
//! follow (daemon-reload, clones, starts, stops) as data.

use std::path::Path;

use serde::Serialize;

use super::edit::{self, Context, OpError};
use super::follow_up::{self, Step};
use super::hooks::{self, Event, HookCall};
use crate::accounts::keys;
use crate::config::cluster::Clusters;
use crate::model::State;
use crate::model::names::ContainerName;
use crate::model::web::NameList;
use crate::ops::import_v3::ImportReport;
use crate::store::{Store, StoreError};
use crate::system::paths::Paths;
use crate::system::{FileKind, System};

/// Where the audit record of a change goes: the caller knows who asked, where and when.
pub trait Audit {
    /// Record the outcome of a change: `ok`, or `error: …`.
    fn record(&self, outcome: &str);
}

/// What the use cases act on.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// The datastore.
    pub store: &'a dyn Store,
    /// The machine: files, programs, systemd.
    pub system: &'a dyn System,
    /// Where things are on the machine.
    pub paths: &'a Paths,
    /// The audit log.
    pub audit: &'a dyn Audit,
    /// Whether systemd really acts (false under a scratch root, where requests are only
    /// printed): a container to be started then needs a built image.
    pub live_systemd: bool,
}

/// A change to the datastore, as a front end asks for it.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// `sc add-reseller NAME`.
    AddReseller {
        /// Its name.
        name: &'a str,
    },
    /// `sc add-user NAME [--reseller R]`.
    AddUser {
        /// Its name.
        name: &'a str,
        /// Its reseller (default: the operator).
        reseller: Option<&'a str>,
    },
    /// `sc add-ve NAME [--user U] [--image I] [--no-start]`.
    AddContainer {
        /// Its name.
        name: &'a str,
        /// Its owner (default: the operator).
        owner: Option<&'a str>,
        /// Its image (default: debian).
        image: Option<&'a str>,
        /// Clone its root filesystem and start it (false: the record only).
        start: bool,
    },
    /// `sc destroy-ve NAME [--force]`: mark it, then (in the follow-up) stop it, remove its
    /// files and release its record.
    DestroyContainer {
        /// The container.
        name: &'a str,
        /// Even while it runs (else a running container is refused, unless it is being
        /// destroyed already: a destroy run again finishes the job).
        force: bool,
    },
    /// `sc destroy-user NAME`.
    DestroyUser {
        /// The user.
        name: &'a str,
    },
    /// `sc destroy-reseller NAME`.
    DestroyReseller {
        /// The reseller.
        name: &'a str,
    },
    /// `sc put container NAME KEY [VALUE]`.
    PutContainer {
        /// The container.
        name: &'a str,
        /// The field.
        key: &'a str,
        /// The value; none resets.
        value: Option<&'a str>,
    },
    /// `sc put user NAME KEY [VALUE]`.
    PutUser {
        /// The user.
        name: &'a str,
        /// The field.
        key: &'a str,
        /// The value; none resets.
        value: Option<&'a str>,
    },
    /// `sc NAME http-redirect|https-redirect [VALUE]`.
    SetRedirect {
        /// The container.
        name: &'a ContainerName,
        /// HTTPS rather than HTTP.
        https: bool,
        /// The policy; none resets to the default.
        value: Option<&'a str>,
    },
    /// `sc NAME alias|altname add|remove DOMAIN`.
    ChangeNames {
        /// The container.
        name: &'a ContainerName,
        /// Which list.
        list: NameList,
        /// Add (true) or remove.
        add: bool,
        /// The domain.
        domain: &'a str,
    },
    /// `sc NAME dns add|remove TYPE VALUE [--name LABEL]`.
    ChangeDns {
        /// The container (the site whose zone holds the record).
        name: &'a ContainerName,
        /// Add (true) or remove.
        add: bool,
        /// The owner name relative to the site's zone (`@`: the apex), the type, the value.
        record: (&'a str, &'a str, &'a str),
    },
    /// `sc add-publickey [USER] KEY`: sshd reads the keys from the datastore, so nothing
    /// follows.
    AddPublicKey {
        /// The account (default: the caller; `root` is the operator).
        account: Option<&'a str>,
        /// The key's text (see [`keys::read_key_argument`]).
        key: &'a str,
    },
    /// `sc remove-publickey [USER] FINGERPRINT|COMMENT`.
    RemovePublicKey {
        /// The account (default: the caller).
        account: Option<&'a str>,
        /// The fingerprint or comment of the keys to remove.
        which: &'a str,
    },
    /// `sc NAME add-user LOGIN`: an account inside the container.
    AddLogin {
        /// The container.
        name: &'a ContainerName,
        /// The account's name.
        login: &'a str,
    },
    /// `sc import-v3 DIR`.
    Import {
        /// The srvctl 3 data directory.
        dir: &'a Path,
        /// The cluster definition the containers are placed in.
        clusters: &'a Clusters,
    },
}

/// What a change did, to be printed.
#[derive(Debug, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Report {
    /// A reseller was added.
    Reseller(edit::ResellerAdded),
    /// A user was added.
    User(edit::UserAdded),
    /// A container was added.
    Container(edit::ContainerAdded),
    /// A record was removed (a container: it is being removed by the follow-up steps).
    Removed(edit::Removed),
    /// A field was set or reset.
    Set {
        /// The record.
        name: String,
        /// The field.
        key: String,
        /// The new value, or none when reset.
        value: Option<String>,
    },
    /// A public key was added.
    PublicKey(keys::KeyAdded),
    /// Public keys were removed.
    PublicKeysRemoved(keys::KeysRemoved),
    /// A srvctl 3 import.
    Import(ImportReport),
    /// An account was added inside a container.
    Login(edit::LoginAdded),
    /// The web front of a container changed (a redirect, an alias, an alternative name), or
    /// its own DNS records.
    Front {
        /// The container.
        name: String,
        /// The field: `http_redirect`, `https_redirect`, `aliases`, `altnames` or `dns`.
        key: String,
        /// What changed, in words.
        change: String,
        /// The field's value afterwards (a string, null for the default, or a list).
        value: serde_json::Value,
    },
}

/// A change that was made (or, in a dry run, would be made).
#[derive(Debug)]
pub struct Done {
    /// What it did.
    pub report: Report,
    /// What should follow, in order.
    pub steps: Vec<Step>,
    /// The hooks of the change (add-ve, destroy-ve, add-user): its before hooks ran before
    /// the commit; its after hooks are the front end's to run once the steps are done.
    pub hook: Option<HookCall>,
}

/// Run `change` in one transaction: lock, load, check it against the caller's role and scope
/// ([`crate::access::authorize`]), validate and edit, commit (unless `dry_run`), audit. A
/// refused change writes nothing and is audited with its error; a dry run that succeeds is not
/// audited. When another writer commits first ([`StoreError::Conflict`], another host of a
/// cluster), the whole transaction runs again on the new document, up to [`TRIES`] times; the
/// audit log gets one record for the change, whatever the number of tries.
pub fn run(
    env: &Services<'_>,
    ctx: &Context<'_>,
    change: &Change<'_>,
    dry_run: bool,
) -> Result<Done, OpError> {
    // A new site's DKIM key is made before the datastore is locked (it takes a while); a dry
    // run makes none.
    let new_key = match change {
        Change::AddContainer { .. } if !dry_run => crate::mail::keys::generate(env.system, ctx.now)
            .transpose()
            .map_err(OpError::Machine)?,
        _ => None,
    };
    let result = retried(env.system, || {
        let (mut tx, mut state) = env.store.begin()?;
        let change = crate::access::authorize(ctx.caller, &state, change)?;
        let mut done = apply(env, &mut state, ctx, &change, new_key.as_ref())?;
        done.hook = hook_call(&state, &done.report);
        if !dry_run {
            if let Some(call) = &done.hook {
                hooks::before(env.system, env.paths, ctx.hostname, call)?;
            }
            tx.commit(&state)?;
        }
        Ok(done)
    });
    match &result {
        Ok(_) if dry_run => {}
        Ok(_) => env.audit.record("ok"),
        Err(e) => env.audit.record(&format!("error: {e}")),
    }
    result
}

/// The hooks a change that made `report` runs, told about its record in `state`.
fn hook_call(state: &State, report: &Report) -> Option<HookCall> {
    let record = |value: Option<serde_json::Result<serde_json::Value>>| {
        value
            .and_then(Result::ok)
            .unwrap_or(serde_json::Value::Null)
    };
    let (event, name, value) = match report {
        Report::Container(added) => (
            Event::AddVe,
            added.name.to_string(),
            record(state.containers.get(&added.name).map(serde_json::to_value)),
        ),
        Report::User(added) => (
            Event::AddUser,
            added.name.to_string(),
            record(state.users.get(&added.name).map(serde_json::to_value)),
        ),
        Report::Removed(removed) if removed.kind == "container" => {
            let container = ContainerName::new(&removed.name).ok();
            let found = container.and_then(|n| state.containers.get(&n));
            (
                Event::DestroyVe,
                removed.name.clone(),
                record(found.map(serde_json::to_value)),
            )
        }
        _ => return None,
    };
    Some(HookCall {
        event,
        name: Some(name),
        record: value,
    })
}

/// The second transaction of a destroy: remove the record of `name`, which must be marked as
/// being destroyed. Its address is free once this commits.
pub fn release(
    system: &dyn System,
    store: &dyn Store,
    name: &ContainerName,
) -> Result<edit::Removed, OpError> {
    retried(system, || {
        let (mut tx, mut state) = store.begin()?;
        let removed = edit::release_container(&mut state, name)?;
        tx.commit(&state)?;
        Ok(removed)
    })
}

/// How many times a transaction is tried when other writers keep committing first.
pub const TRIES: u32 = 20;

/// Run `attempt` until it ends other than in a [`StoreError::Conflict`], at most [`TRIES`]
/// times, waiting a short random while between tries (so writers that collided do not collide
/// again in step).
fn retried<T>(
    system: &dyn System,
    mut attempt: impl FnMut() -> Result<T, OpError>,
) -> Result<T, OpError> {
    let mut tried = 1;
    loop {
        match attempt() {
            Err(OpError::Store(StoreError::Conflict(_))) if tried < TRIES => {
                std::thread::sleep(backoff(system, tried));
                tried += 1;
            }
            result => return result,
        }
    }
}

/// The wait before try `tried + 1`: random, up to 2 ms doubled per try (at most 64 ms).
fn backoff(system: &dyn System, tried: u32) -> std::time::Duration {
    let mut byte = [0u8; 2];
    let random = match system.random(&mut byte) {
        Ok(()) => u64::from(u16::from_le_bytes(byte)),
        Err(_) => u64::from(u16::MAX / 2),
    };
    let ceiling_us = 2_000u64 << tried.min(5);
    std::time::Duration::from_micros(ceiling_us / 4 + random * ceiling_us / u64::from(u16::MAX))
}

/// Validate and make `change` on `state`, and say what follows; `new_key` is the DKIM key of a
/// container it adds.
fn apply(
    env: &Services<'_>,
    state: &mut State,
    ctx: &Context<'_>,
    change: &Change<'_>,
    new_key: Option<&crate::mail::keys::NewKey>,
) -> Result<Done, OpError> {
    let done = |report, steps| {
        Ok(Done {
            report,
            steps,
            hook: None,
        })
    };
    match *change {
        Change::AddReseller { name } => {
            let added = edit::add_reseller(state, ctx, name)?;
            let steps = follow_up::added_account(state, &added.name);
            done(Report::Reseller(added), steps)
        }
        Change::AddUser { name, reseller } => {
            let added = edit::add_user(state, ctx, name, reseller)?;
            let steps = follow_up::added_account(state, &added.name);
            done(Report::User(added), steps)
        }
        Change::AddPublicKey { account, key } => done(
            Report::PublicKey(keys::add(
                state,
                ctx.caller.key_owner(),
                ctx.now,
                account,
                key,
            )?),
            Vec::new(),
        ),
        Change::RemovePublicKey { account, which } => done(
            Report::PublicKeysRemoved(keys::remove(state, ctx.caller.key_owner(), account, which)?),
            Vec::new(),
        ),
        Change::AddContainer {
            name,
            owner,
            image,
            start,
        } => add_container(env, state, ctx, name, owner, image, start, new_key),
        Change::DestroyContainer { name, force } => {
            if let Ok(n) = ContainerName::new(name)
                && let Some(c) = state.containers.get(&n)
            {
                if c.host != ctx.hostname {
                    // Its unit and root filesystem are its host's: only there can they be
                    // removed.
                    return Err(OpError::Machine(format!(
                        "{name} lives on {}; run sc destroy-ve there",
                        c.host
                    )));
                }
                if !force && !c.destroying && running(env.system, &n)? {
                    return Err(OpError::Running(n));
                }
            }
            let name = edit::mark_destroying(state, name)?;
            let identity = state.containers[&name].rootfs_identity(&name);
            done(
                Report::Removed(edit::Removed {
                    kind: "container",
                    name: name.to_string(),
                }),
                follow_up::destroyed_container(&name, &identity),
            )
        }
        Change::DestroyUser { name } => done(
            Report::Removed(edit::destroy_user(state, name)?),
            vec![follow_up::regenerate()],
        ),
        Change::DestroyReseller { name } => done(
            Report::Removed(edit::destroy_reseller(state, name)?),
            vec![follow_up::regenerate()],
        ),
        Change::PutContainer { name, key, value } => {
            edit::put_container(state, name, key, value)?;
            done(set(name, key, value), follow_up::reload())
        }
        Change::PutUser { name, key, value } => {
            edit::put_user(state, name, key, value)?;
            done(set(name, key, value), follow_up::reload())
        }
        Change::SetRedirect { name, https, value } => {
            edit::refuse_if_destroying(state, name)?;
            done(redirect(state, name, https, value)?, front_steps())
        }
        Change::ChangeNames {
            name,
            list,
            add,
            domain,
        } => {
            edit::refuse_if_destroying(state, name)?;
            done(
                names(state, ctx.reserved, name, list, add, domain)?,
                front_steps(),
            )
        }
        Change::ChangeDns { name, add, record } => {
            edit::refuse_if_destroying(state, name)?;
            done(
                super::dns_records::change(state, name, add, record)?,
                vec![follow_up::regenerate()],
            )
        }
        Change::AddLogin { name, login } => {
            let added = edit::add_login(state, name.as_str(), login)?;
            let owner = &state.containers[name].user;
            let step = Step::CreateLogin {
                name: added.container.clone(),
                login: added.login.clone(),
                keys: keys::owner_lines(state, owner)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            };
            done(Report::Login(added), vec![step])
        }
        Change::Import { dir, clusters } => done(
            Report::Import(crate::ops::import_v3::import(
                env.system, state, clusters, ctx, dir,
            )?),
            follow_up::reload(),
        ),
    }
}

fn front_steps() -> Vec<Step> {
    vec![follow_up::regenerate(), follow_up::certificates()]
}

fn set(name: &str, key: &str, value: Option<&str>) -> Report {
    Report::Set {
        name: name.to_owned(),
        key: key.to_owned(),
        value: value.map(str::to_owned),
    }
}

/// `sc add-ve`: the record, after checking that the machine can take it: no directory under
/// its name that srvctl did not make for it, and (when it is to start) a built image. On the
/// container's own host, `new_key` becomes its DKIM key.
#[allow(clippy::too_many_arguments)]
fn add_container(
    env: &Services<'_>,
    state: &mut State,
    ctx: &Context<'_>,
    name: &str,
    owner: Option<&str>,
    image: Option<&str>,
    start: bool,
    new_key: Option<&crate::mail::keys::NewKey>,
) -> Result<Done, OpError> {
    let mut added = edit::add_container(state, ctx, name, owner)?;
    if let Some(image) = image {
        edit::put_container(state, added.name.as_str(), "image", Some(image))?;
        added.image = image.to_owned();
    }
    if added.host != ctx.hostname {
        // Its root filesystem and unit are the other host's: its srvctl-sync makes them from
        // the record. Here only the configuration follows (the front routes to it).
        if start && let Some(c) = state.containers.get_mut(&added.name) {
            c.provision = true;
        }
        let mut steps = follow_up::reload();
        steps.push(follow_up::certificates());
        return Ok(Done {
            report: Report::Container(added),
            steps,
            hook: None,
        });
    }
    let dir = crate::containers::rootfs::machine_dir(env.paths, &added.name);
    if env.system.kind(&dir).is_some() {
        return Err(OpError::Machine(follow_up::foreign_rootfs(&dir)));
    }
    let source = crate::containers::image::image_dir(env.paths, &added.image);
    if start && env.live_systemd && env.system.kind(&source) != Some(FileKind::Dir) {
        return Err(OpError::Machine(format!(
            "image {image} is not built ({}); run `sc regenerate rootfs {image}` first, or add the record only with --no-start",
            source.display(),
            image = added.image
        )));
    }
    // The site's DKIM key, whose private half only this host keeps.
    if let Some(new_key) = new_key {
        let key = new_key
            .install(env.system, env.paths, &added.name)
            .map_err(OpError::Machine)?;
        if let Some(c) = state.containers.get_mut(&added.name) {
            c.dkim = Some(key);
        }
    }
    let identity = state.containers[&added.name].rootfs_identity(&added.name);
    let steps = follow_up::added_container(&added.name, &added.image, &identity, start);
    Ok(Done {
        report: Report::Container(added),
        steps,
        hook: None,
    })
}

/// Whether container `name` runs, as systemd says ([`crate::containers::boot::runs`]).
fn running(system: &dyn System, name: &ContainerName) -> Result<bool, OpError> {
    crate::containers::boot::runs(system, name).map_err(|e| {
        OpError::Machine(format!(
            "cannot ask systemd whether {name} runs ({e}); --force destroys it without asking"
        ))
    })
}

fn redirect(
    state: &mut State,
    name: &ContainerName,
    https: bool,
    value: Option<&str>,
) -> Result<Report, OpError> {
    let set = crate::front::routes::set_redirect(state, name, https, value)?;
    let key = if https {
        "https_redirect"
    } else {
        "http_redirect"
    };
    let command = key.replace('_', "-");
    Ok(Report::Front {
        name: name.to_string(),
        key: key.into(),
        change: match &set {
            Some(r) => format!("{command} set to {r}"),
            None => format!("{command} reset to the default"),
        },
        value: serde_json::json!(set.map(|r| r.to_string())),
    })
}

fn names(
    state: &mut State,
    reserved: &crate::model::claims::Reserved,
    name: &ContainerName,
    list: NameList,
    add: bool,
    domain: &str,
) -> Result<Report, OpError> {
    let names = crate::front::routes::change_names(state, reserved, name, list, add, domain)?;
    let domain =
        crate::model::web::Domain::new(domain).map_err(crate::front::routes::FrontError::from)?;
    let what = if list == NameList::Aliases {
        "alias"
    } else {
        "alternative name"
    };
    Ok(Report::Front {
        name: name.to_string(),
        key: list.key().into(),
        change: format!("{what} {domain} {}", if add { "added" } else { "removed" }),
        value: serde_json::json!(names),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::containers::units::container_unit;
    use crate::store::Memory;
    use crate::system::{Recording, Request};

    const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#;

    // Made with ssh-keygen -t ed25519.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf bob@laptop";

    /// The audit log as a list of outcomes.
    #[derive(Default)]
    pub(crate) struct Log(pub(crate) RefCell<Vec<String>>);

    impl Audit for Log {
        fn record(&self, outcome: &str) {
            self.0.borrow_mut().push(outcome.to_owned());
        }
    }

    /// One farm in memory: datastore, machine, audit log, and a scratch root for the paths.
    pub(crate) struct Fixture {
        pub(crate) store: Memory,
        pub(crate) system: Recording,
        pub(crate) log: Log,
        paths: Paths,
        clusters: Clusters,
    }

    impl Fixture {
        pub(crate) fn new() -> Self {
            Self {
                store: Memory::default(),
                system: Recording::default(),
                log: Log::default(),
                paths: Paths::rooted("/r"),
                clusters: Clusters::parse(Path::new("clusters.json"), CLUSTERS).unwrap(),
            }
        }

        fn env(&self) -> Services<'_> {
            Services {
                store: &self.store,
                system: &self.system,
                paths: &self.paths,
                audit: &self.log,
                live_systemd: true,
            }
        }

        pub(crate) fn run(&self, change: &Change<'_>) -> Result<Done, OpError> {
            self.run_as(&crate::access::Caller::operator_root(), change)
        }

        /// Run `change` for `caller`.
        pub(crate) fn run_as(
            &self,
            caller: &crate::access::Caller,
            change: &Change<'_>,
        ) -> Result<Done, OpError> {
            let reserved = crate::model::claims::Reserved::new(&self.clusters, &Default::default());
            let ctx = Context {
                host: self.clusters.host("h1.test"),
                hostname: "h1.test",
                caller,
                now: "2026-01-01T00:00:00Z",
                reserved: &reserved,
                accounts: &crate::model::claims::NoHostAccounts,
            };
            run(&self.env(), &ctx, change, false)
        }

        pub(crate) fn state(&self) -> State {
            self.store.load().unwrap()
        }

        /// Run `change` for the operator on h1.test, placing containers on `host`.
        fn run_placed(&self, host: &str, change: &Change<'_>) -> Result<Done, OpError> {
            let reserved = crate::model::claims::Reserved::new(&self.clusters, &Default::default());
            let ctx = Context {
                host: self.clusters.host(host),
                hostname: "h1.test",
                caller: &crate::access::Caller::operator_root(),
                now: "2026-01-01T00:00:00Z",
                reserved: &reserved,
                accounts: &crate::model::claims::NoHostAccounts,
            };
            run(&self.env(), &ctx, change, false)
        }

        /// A container `web.ve` whose image is built (so that add-ve takes it).
        fn with_container(self) -> Self {
            let image = crate::containers::image::image_dir(&self.paths, "debian");
            self.system.create_dir(&image, 0o755).unwrap();
            self.run(&add("web.ve", true)).unwrap();
            self
        }
    }

    fn add(name: &str, start: bool) -> Change<'_> {
        Change::AddContainer {
            name,
            owner: None,
            image: None,
            start,
        }
    }

    fn web() -> ContainerName {
        ContainerName::new("web.ve").unwrap()
    }

    #[test]
    fn a_container_of_another_host_is_destroyed_only_there() {
        let f = Fixture::new();
        f.run_placed("h2.test", &add("web.ve", false)).unwrap();
        let before = f.store.bytes();
        let e = f
            .run(&Change::DestroyContainer {
                name: "web.ve",
                force: false,
            })
            .unwrap_err();
        assert!(e.to_string().contains("lives on h2.test"), "{e}");
        assert_eq!(f.store.bytes(), before);
    }

    #[test]
    fn a_container_placed_on_another_host_is_left_to_that_host() {
        let f = Fixture::new();
        // No image is built here: it is the other host's to clone.
        let done = f.run_placed("h2.test", &add("web.ve", true)).unwrap();
        let c = &f.state().containers[&web()];
        assert_eq!(c.host, "h2.test");
        assert!(
            c.provision,
            "h2's srvctl-sync is asked to clone and start it"
        );
        assert!(c.ip.to_string().starts_with("10.32."), "{}", c.ip);
        assert!(
            !done
                .steps
                .iter()
                .any(|s| matches!(s, Step::Provision { .. } | Step::StartContainer(_))),
            "{:?}",
            done.steps
        );
        f.run_placed("h2.test", &add("other.ve", false)).unwrap();
        let other = ContainerName::new("other.ve").unwrap();
        assert!(
            !f.state().containers[&other].provision,
            "--no-start asks nothing of h2"
        );
    }

    fn identity() -> String {
        "web.ve 2026-01-01T00:00:00Z".into()
    }

    fn home(name: &str, uid: u32) -> Step {
        Step::CreateHome {
            name: crate::model::names::AccountName::new(name).unwrap(),
            uid,
            gid: uid,
        }
    }

    fn systemd(request: Request) -> Step {
        Step::Systemd(request)
    }

    #[test]
    fn add_ve_commits_audits_and_returns_its_steps() {
        let f = Fixture::new().with_container();
        assert!(f.state().containers.contains_key(&web()));
        assert_eq!(f.log.0.borrow().as_slice(), ["ok"]);
        let done = f.run(&add("two.ve", true)).unwrap();
        let two = ContainerName::new("two.ve").unwrap();
        assert_eq!(
            done.steps,
            [
                Step::Provision {
                    name: two.clone(),
                    image: "debian".into(),
                    identity: "two.ve 2026-01-01T00:00:00Z".into(),
                },
                systemd(Request::DaemonReload),
                follow_up::regenerate(),
                Step::StartContainer(two),
                follow_up::certificates(),
            ]
        );
        let done = f.run(&add("three.ve", false)).unwrap();
        assert_eq!(
            done.steps,
            [
                systemd(Request::DaemonReload),
                follow_up::regenerate(),
                follow_up::certificates(),
            ],
            "--no-start: the record and its configuration only"
        );
        assert_eq!(f.store.commits(), 3);
    }

    #[test]
    fn the_other_changes_return_their_steps() {
        let f = Fixture::new().with_container();
        let name = web();
        let regenerate = vec![follow_up::regenerate()];
        let cases: Vec<(Change<'_>, Vec<Step>)> = vec![
            (
                Change::AddReseller { name: "alice" },
                vec![home("alice", 20256), follow_up::regenerate()],
            ),
            (
                Change::AddUser {
                    name: "bob",
                    reseller: Some("alice"),
                },
                vec![home("bob", 20257), follow_up::regenerate()],
            ),
            (
                Change::AddPublicKey {
                    account: Some("bob"),
                    key: KEY,
                },
                Vec::new(),
            ),
            (
                Change::RemovePublicKey {
                    account: Some("bob"),
                    which: "bob@laptop",
                },
                Vec::new(),
            ),
            (
                Change::PutUser {
                    name: "bob",
                    key: "email",
                    value: Some("bob@example.com"),
                },
                follow_up::reload(),
            ),
            (Change::DestroyUser { name: "bob" }, regenerate.clone()),
            (Change::DestroyReseller { name: "alice" }, regenerate),
            (
                Change::PutContainer {
                    name: "web.ve",
                    key: "disabled",
                    value: Some("true"),
                },
                follow_up::reload(),
            ),
            (
                Change::SetRedirect {
                    name: &name,
                    https: false,
                    value: Some("https"),
                },
                vec![follow_up::regenerate(), follow_up::certificates()],
            ),
            (
                Change::ChangeNames {
                    name: &name,
                    list: NameList::Aliases,
                    add: true,
                    domain: "alias.example.com",
                },
                vec![follow_up::regenerate(), follow_up::certificates()],
            ),
        ];
        for (change, steps) in cases {
            assert_eq!(f.run(&change).unwrap().steps, steps, "{change:?}");
        }
    }

    #[test]
    fn a_refused_change_writes_nothing_and_is_audited() {
        let f = Fixture::new().with_container();
        let before = f.store.bytes();
        let e = f.run(&add("web.ve", true)).unwrap_err();
        assert!(matches!(e, OpError::Exists { .. }), "{e}");
        assert_eq!(f.store.bytes(), before);
        assert_eq!(
            f.log.0.borrow().last().unwrap(),
            "error: container web.ve already exists"
        );
    }

    #[test]
    fn add_ve_refuses_a_directory_no_record_owns_and_a_missing_image() {
        let f = Fixture::new();
        let e = f.run(&add("new.ve", true)).unwrap_err().to_string();
        assert!(e.contains("image debian is not built"), "{e}");
        assert!(e.contains("--no-start"), "{e}");
        assert_eq!(f.store.bytes(), None, "nothing was written");
        f.run(&add("new.ve", false)).unwrap();
        let name = ContainerName::new("old.ve").unwrap();
        let dir = crate::containers::rootfs::machine_dir(&f.paths, &name);
        f.system.create_dir(&dir, 0o755).unwrap();
        let before = f.store.bytes();
        for start in [true, false] {
            let e = f.run(&add("old.ve", start)).unwrap_err().to_string();
            assert!(e.contains("was not created by srvctl"), "{e}");
            assert!(e.contains("rm -rf"), "{e}");
        }
        assert_eq!(f.store.bytes(), before);
    }

    #[test]
    fn destroy_marks_first_and_releases_the_record_last() {
        let f = Fixture::new().with_container();
        let done = f
            .run(&Change::DestroyContainer {
                name: "web.ve",
                force: false,
            })
            .unwrap();
        assert_eq!(
            done.steps,
            [
                systemd(Request::Stop(container_unit(&web()))),
                Step::RemoveRootfs {
                    name: web(),
                    identity: identity(),
                },
                systemd(Request::DaemonReload),
                follow_up::regenerate(),
                Step::ReleaseRecord(web()),
            ]
        );
        assert!(f.state().containers[&web()].destroying);
        follow_up::perform(&f.env(), &done.steps).unwrap();
        assert!(!f.state().containers.contains_key(&web()));
        assert_eq!(
            f.system.requests.borrow().as_slice(),
            [
                Request::Stop(container_unit(&web())),
                Request::DaemonReload,
                Request::Start(follow_up::REGENERATE_UNIT.into()),
            ]
        );
    }

    #[test]
    fn a_running_container_is_destroyed_only_with_force() {
        let f = Fixture::new().with_container();
        let destroy = |force| Change::DestroyContainer {
            name: "web.ve",
            force,
        };
        f.system
            .systemd(&Request::Start(container_unit(&web())))
            .unwrap();
        let before = f.store.bytes();
        let e = f.run(&destroy(false)).unwrap_err();
        assert!(matches!(e, OpError::Running(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "container web.ve is running; add --force to stop and destroy it (`sc destroy-ve web.ve --force`)"
        );
        assert_eq!(f.store.bytes(), before, "a refusal writes nothing");
        assert_eq!(f.log.0.borrow().last().unwrap(), &format!("error: {e}"));
        // Forced: marked, then stopped and removed. A forced destroy interrupted before the
        // stop finishes when run again without --force.
        let done = f.run(&destroy(true)).unwrap();
        assert_eq!(
            done.steps[0],
            systemd(Request::Stop(container_unit(&web())))
        );
        assert!(f.state().containers[&web()].destroying);
        let again = f.run(&destroy(false)).unwrap();
        follow_up::perform(&f.env(), &again.steps).unwrap();
        assert!(!f.state().containers.contains_key(&web()));
        // A container that does not run needs no --force.
        let f = Fixture::new().with_container();
        f.system
            .systemd(&Request::Start(container_unit(&web())))
            .unwrap();
        f.system
            .systemd(&Request::Stop(container_unit(&web())))
            .unwrap();
        let done = f.run(&destroy(false)).unwrap();
        follow_up::perform(&f.env(), &done.steps).unwrap();
        assert!(!f.state().containers.contains_key(&web()));
    }

    #[test]
    fn a_destroy_interrupted_at_any_step_keeps_the_record_and_finishes_when_run_again() {
        let steps = {
            let f = Fixture::new().with_container();
            f.run(&Change::DestroyContainer {
                name: "web.ve",
                force: false,
            })
            .unwrap()
            .steps
        };
        for crash_after in 0..steps.len() {
            let f = Fixture::new().with_container();
            let ip = f.state().containers[&web()].ip;
            let done = f
                .run(&Change::DestroyContainer {
                    name: "web.ve",
                    force: false,
                })
                .unwrap();
            follow_up::perform(&f.env(), &done.steps[..crash_after]).unwrap();
            let state = f.state();
            assert!(
                state.containers[&web()].destroying,
                "after {crash_after} steps"
            );
            assert!(
                state.clone().rendered().containers.is_empty(),
                "a container being destroyed is not rendered"
            );
            // Its address stays taken, and nothing else may be done to it.
            let other = f.run(&add("other.ve", false)).unwrap();
            let Report::Container(other) = other.report else {
                panic!("not an add")
            };
            assert_ne!(other.ip, ip, "after {crash_after} steps");
            assert!(matches!(
                f.run(&add("web.ve", true)),
                Err(OpError::Destroying(_))
            ));
            assert!(matches!(
                f.run(&Change::PutContainer {
                    name: "web.ve",
                    key: "disabled",
                    value: None
                }),
                Err(OpError::Destroying(_))
            ));
            let again = f
                .run(&Change::DestroyContainer {
                    name: "web.ve",
                    force: false,
                })
                .unwrap();
            assert_eq!(again.steps, steps);
            follow_up::perform(&f.env(), &again.steps).unwrap();
            assert!(!f.state().containers.contains_key(&web()));
        }
    }

    #[test]
    fn a_container_that_does_not_start_keeps_its_record_and_says_how_to_retry() {
        let mut f = Fixture::new().with_container();
        let unit = container_unit(&web());
        f.system
            .failing_jobs
            .insert(unit.clone(), "dependency".into());
        let dir = crate::containers::rootfs::machine_dir(&f.paths, &web());
        f.system.create_dir(&dir, 0o755).unwrap();
        let e = follow_up::perform(&f.env(), &[Step::StartContainer(web())]).unwrap_err();
        assert!(
            matches!(e, follow_up::FollowUpError::NotStarted { .. }),
            "{e}"
        );
        let text = e.to_string();
        for words in [
            "web.ve is recorded but did not start",
            "depends on failed",
            &format!("journalctl -u {unit}"),
            "sc web.ve start",
            "sc destroy-ve web.ve",
        ] {
            assert!(text.contains(words), "{words:?} in {text}");
        }
        assert!(f.state().containers.contains_key(&web()));
    }

    /// A datastore in which another writer commits between every `begin` and its commit,
    /// `interruptions` times.
    struct Contended {
        inner: Memory,
        interruptions: std::cell::Cell<u32>,
        begun: std::cell::Cell<u32>,
    }

    impl Store for Contended {
        fn load(&self) -> Result<State, crate::store::StoreError> {
            self.inner.load()
        }

        fn hold(&self) -> Result<crate::store::Held, crate::store::StoreError> {
            self.inner.hold()
        }

        fn begin(
            &self,
        ) -> Result<(Box<dyn crate::store::Transaction + '_>, State), crate::store::StoreError>
        {
            self.begun.set(self.begun.get() + 1);
            let begun = self.inner.begin()?;
            if self.interruptions.get() > 0 {
                self.interruptions.set(self.interruptions.get() - 1);
                let (mut other, mut state) = self.inner.begin()?;
                state.extra.insert("other".into(), self.begun.get().into());
                other.commit(&state)?;
            }
            Ok(begun)
        }
    }

    fn run_contended(interruptions: u32) -> (Result<Done, OpError>, Contended, Log) {
        let f = Fixture::new();
        let store = Contended {
            inner: Memory::default(),
            interruptions: interruptions.into(),
            begun: 0.into(),
        };
        let log = Log::default();
        let env = Services {
            store: &store,
            audit: &log,
            ..f.env()
        };
        let reserved = crate::model::claims::Reserved::new(&f.clusters, &Default::default());
        let ctx = Context {
            host: f.clusters.host("h1.test"),
            hostname: "h1.test",
            caller: &crate::access::Caller::operator_root(),
            now: "2026-01-01T00:00:00Z",
            reserved: &reserved,
            accounts: &crate::model::claims::NoHostAccounts,
        };
        let result = run(&env, &ctx, &add("web.ve", false), false);
        (result, store, log)
    }

    #[test]
    fn a_conflicting_change_is_made_again_on_the_new_document_and_audited_once() {
        let (result, store, log) = run_contended(3);
        assert!(result.is_ok(), "{:?}", result.err());
        assert_eq!(store.begun.get(), 4);
        let state = store.load().unwrap();
        assert!(state.containers.contains_key(&web()));
        assert_eq!(state.extra["other"], 3, "the other writer's change is kept");
        assert_eq!(*log.0.borrow(), ["ok"]);
    }

    #[test]
    fn a_change_that_always_conflicts_gives_up_after_its_tries() {
        let (result, store, log) = run_contended(TRIES + 5);
        assert!(
            matches!(result, Err(OpError::Store(StoreError::Conflict(_)))),
            "{:?}",
            result.err()
        );
        assert_eq!(store.begun.get(), TRIES);
        assert!(!store.load().unwrap().containers.contains_key(&web()));
        let log = log.0.borrow();
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].contains("the datastore changed"), "{log:?}");
    }

    #[test]
    fn a_commit_after_another_writer_is_a_conflict() {
        let store = Memory::with(&State::default());
        let (mut first, state) = store.begin().unwrap();
        let (mut second, _) = store.begin().unwrap();
        let mut changed = state.clone();
        changed.extra.insert("x".into(), serde_json::json!(1));
        assert!(first.commit(&changed).unwrap());
        assert!(matches!(
            second.commit(&state),
            Err(crate::store::StoreError::Conflict(_))
        ));
        assert_eq!(store.load().unwrap(), changed);
    }
}
