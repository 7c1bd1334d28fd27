//! The one transaction every change goes through: lock the datastore, load it, validate and
//! edit it in memory, commit it, record the outcome in the audit log, and return what should
//! follow (daemon-reload, clones, starts, stops) as data.

use std::path::Path;

use serde::Serialize;

use super::edit::{self, Context, OpError};
use super::follow_up::{self, Step};
use crate::cluster::Clusters;
use crate::import_v3::ImportReport;
use crate::model::State;
use crate::names::ContainerName;
use crate::paths::Paths;
use crate::store::Store;
use crate::system::System;
use crate::web::NameList;

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
    /// `sc destroy-ve NAME`: mark it, then (in the follow-up) stop it, remove its files and
    /// release its record.
    DestroyContainer {
        /// The container.
        name: &'a str,
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
    /// A srvctl 3 import.
    Import(ImportReport),
    /// The web front of a container changed: a redirect, an alias, an alternative name.
    Front {
        /// The container.
        name: String,
        /// The field: `http_redirect`, `https_redirect`, `aliases` or `altnames`.
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
}

/// Run `change` in one transaction: lock, load, validate and edit, commit (unless `dry_run`),
/// audit. A refused change writes nothing and is audited with its error; a dry run that
/// succeeds is not audited.
pub fn run(
    env: &Services<'_>,
    ctx: &Context<'_>,
    change: &Change<'_>,
    dry_run: bool,
) -> Result<Done, OpError> {
    let result = (|| {
        let (mut tx, mut state) = env.store.begin()?;
        let done = apply(env, &mut state, ctx, change)?;
        if !dry_run {
            tx.commit(&state)?;
        }
        Ok(done)
    })();
    match &result {
        Ok(_) if dry_run => {}
        Ok(_) => env.audit.record("ok"),
        Err(e) => env.audit.record(&format!("error: {e}")),
    }
    result
}

/// The second transaction of a destroy: remove the record of `name`, which must be marked as
/// being destroyed. Its address is free once this commits.
pub fn release(store: &dyn Store, name: &ContainerName) -> Result<edit::Removed, OpError> {
    let (mut tx, mut state) = store.begin()?;
    let removed = edit::release_container(&mut state, name)?;
    tx.commit(&state)?;
    Ok(removed)
}

/// Validate and make `change` on `state`, and say what follows.
fn apply(
    env: &Services<'_>,
    state: &mut State,
    ctx: &Context<'_>,
    change: &Change<'_>,
) -> Result<Done, OpError> {
    let done = |report, steps| Ok(Done { report, steps });
    match *change {
        Change::AddReseller { name } => done(
            Report::Reseller(edit::add_reseller(state, ctx, name)?),
            vec![follow_up::regenerate()],
        ),
        Change::AddUser { name, reseller } => done(
            Report::User(edit::add_user(state, ctx, name, reseller)?),
            vec![follow_up::regenerate()],
        ),
        Change::AddContainer {
            name,
            owner,
            image,
            start,
        } => add_container(env, state, ctx, name, owner, image, start),
        Change::DestroyContainer { name } => {
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
            done(names(state, name, list, add, domain)?, front_steps())
        }
        Change::Import { dir, clusters } => done(
            Report::Import(crate::import_v3::import(state, clusters, ctx, dir)?),
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
/// its name that srvctl did not make for it, and (when it is to start) a built image.
fn add_container(
    env: &Services<'_>,
    state: &mut State,
    ctx: &Context<'_>,
    name: &str,
    owner: Option<&str>,
    image: Option<&str>,
    start: bool,
) -> Result<Done, OpError> {
    let mut added = edit::add_container(state, ctx, name, owner)?;
    if let Some(image) = image {
        edit::put_container(state, added.name.as_str(), "image", Some(image))?;
        added.image = image.to_owned();
    }
    let dir = crate::rootfs::machine_dir(env.paths, &added.name);
    if dir.exists() {
        return Err(OpError::Machine(follow_up::foreign_rootfs(&dir)));
    }
    let source = crate::image::image_dir(env.paths, &added.image);
    if start && env.live_systemd && !source.is_dir() {
        return Err(OpError::Machine(format!(
            "image {image} is not built ({}); run `sc regenerate rootfs {image}` first, or add the record only with --no-start",
            source.display(),
            image = added.image
        )));
    }
    let identity = state.containers[&added.name].rootfs_identity(&added.name);
    let steps = follow_up::added_container(&added.name, &added.image, &identity, start);
    Ok(Done {
        report: Report::Container(added),
        steps,
    })
}

fn redirect(
    state: &mut State,
    name: &ContainerName,
    https: bool,
    value: Option<&str>,
) -> Result<Report, OpError> {
    let set = crate::web::set_redirect(state, name, https, value)?;
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
    name: &ContainerName,
    list: NameList,
    add: bool,
    domain: &str,
) -> Result<Report, OpError> {
    let names = crate::web::change_names(state, name, list, add, domain)?;
    let domain = crate::web::Domain::new(domain).map_err(crate::web::FrontError::from)?;
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
