//! `srvctl-regenerate`: expand the datastore into the host's configuration, writing only what
//! changed, removing only what it generated before, and reloading only what needs it.

use std::path::Path;

use serde::Serialize;

use crate::config::cluster::{ClusterError, Clusters};
use crate::engine::apply::{self, ApplyError};
use crate::engine::changeset;
use crate::engine::registry::{self, Inputs, MODULES, Verdict};
use crate::engine::templates::TemplateError;
use crate::engine::templates::Templates;
use crate::mesh::pki::PkiError;
use crate::store::{self, StoreError};
use crate::system::System;
use crate::system::paths::Paths;

/// Where the list of generated files is kept (volatile, like the files it lists).
pub const MANIFEST: &str = "run/srvctl/regenerate.manifest";

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Files and links written.
    pub written: Vec<String>,
    /// Files and links removed.
    pub removed: Vec<String>,
    /// Entries that were already right.
    pub unchanged: usize,
    /// Services reloaded.
    pub reloads: Vec<String>,
    /// Modules whose running service took their changes without a reload, with what changed
    /// (`front: …`: haproxy's maps and certificates, through its runtime API).
    pub updated_live: Vec<String>,
    /// Datastore records skipped because they are invalid.
    pub skipped: Vec<String>,
    /// Bridges that systemd-networkd had not made when the wait ended.
    pub bridges_missing: Vec<String>,
    /// Certificates of the internal CA issued for the HTTPS front (container names).
    pub certificates_issued: Vec<String>,
    /// Home directories created for accounts that had none.
    pub homes_created: Vec<String>,
    /// Host limits raised to srvctl's floors (`key old → new`).
    pub limits_raised: Vec<String>,
    /// Things the operator should know (e.g. haproxy is not installed, so not checked).
    pub notes: Vec<String>,
    /// Why modules' new configurations were not applied: their guards refused them (the
    /// front's `haproxy -c`, the DNS module's named-checkconf; one line each, the name is kept
    /// for scripts).
    pub haproxy_error: Option<String>,
}

impl Outcome {
    /// One line summing up a run.
    pub fn summary(&self) -> String {
        if self.is_noop() {
            return format!("nothing to change ({} entries up to date)", self.unchanged);
        }
        let mut s = format!(
            "{} written, {} removed, {} unchanged",
            self.written.len(),
            self.removed.len(),
            self.unchanged
        );
        if !self.certificates_issued.is_empty() {
            s.push_str(&format!(
                "; {} internal certificate(s) issued",
                self.certificates_issued.len()
            ));
        }
        if !self.homes_created.is_empty() {
            s.push_str(&format!("; {} home(s) created", self.homes_created.len()));
        }
        if !self.limits_raised.is_empty() {
            s.push_str(&format!(
                "; host limits raised: {}",
                self.limits_raised.join(", ")
            ));
        }
        if !self.updated_live.is_empty() {
            s.push_str(&format!("; updated live: {}", self.updated_live.join(", ")));
        }
        if !self.reloads.is_empty() {
            s.push_str(&format!("; reloaded: {}", self.reloads.join(", ")));
        }
        if !self.bridges_missing.is_empty() {
            s.push_str(&format!(
                "; bridges not up yet: {}",
                self.bridges_missing.join(", ")
            ));
        }
        s
    }

    /// Whether the run changed nothing.
    pub fn is_noop(&self) -> bool {
        self.written.is_empty()
            && self.removed.is_empty()
            && self.certificates_issued.is_empty()
            && self.homes_created.is_empty()
            && self.limits_raised.is_empty()
    }
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
pub enum RegenerateError {
    /// The datastore could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// clusters.json is wrong.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// This host is not in clusters.json.
    #[error("this host ({0}) is not defined in clusters.json")]
    UnknownHost(String),
    /// A template is wrong.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Certificates could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The HTTPS front's certificates could not be made.
    #[error(transparent)]
    Certs(#[from] crate::front::certs::CertError),
    /// settings.json is wrong.
    #[error(transparent)]
    Settings(#[from] crate::config::site::SettingsError),
    /// The ACME part of settings.json is wrong.
    #[error(transparent)]
    Acme(#[from] crate::front::acme::AcmeError),
    /// Reading the current files failed.
    #[error("reading current files: {0}")]
    Read(std::io::Error),
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// How many times [`run`] starts again when the datastore keeps changing under it.
const RERUNS: usize = 5;

/// Expand the datastore into this host's configuration, as [`run_once`]; when the datastore
/// was replaced while it ran (a command committed after it was read), run again. A command's
/// `systemctl start srvctl-regenerate` that comes while a run is under way joins that run
/// instead of starting a new one, so without this its change would wait for the next one.
pub fn run(system: &dyn System, paths: &Paths, hostname: &str) -> Result<Outcome, RegenerateError> {
    let datastore = paths.datastore();
    let stamp = || system.stamp(&datastore).ok().flatten();
    for _ in 1..RERUNS {
        let before = stamp();
        let outcome = run_once(system, paths, hostname)?;
        if stamp() == before {
            return Ok(outcome);
        }
    }
    run_once(system, paths, hostname)
}

/// Regenerate host `hostname` under `paths`, once.
fn run_once(
    system: &dyn System,
    paths: &Paths,
    hostname: &str,
) -> Result<Outcome, RegenerateError> {
    let state = store::read(system, paths)?.rendered();
    let clusters = Clusters::load(system, &paths.clusters())?;
    let me = clusters
        .host(hostname)
        .ok_or_else(|| RegenerateError::UnknownHost(hostname.to_owned()))?;
    let templates = Templates::load(system, Some(&paths.host("/etc/srvctl/templates")))?;
    let mut outcome = Outcome {
        skipped: state
            .set_aside
            .iter()
            .map(|s| format!("{} {:?}: {}", s.section.key(), s.key, s.reason))
            .chain(crate::accounts::keys::set_aside_keys(&state))
            .collect(),
        ..Outcome::default()
    };
    let cluster_identity = crate::cluster::pki::has_identity(system, paths);
    if clusters.is_replicated(me) && !cluster_identity {
        outcome.notes.push(format!(
            "no host mesh and no etcd member yet: this host has no cluster certificate ({}); \
             run {}",
            crate::cluster::pki::HOST_CERT,
            if me.ca {
                "`sc cluster request` here".to_owned()
            } else {
                format!(
                    "`sc cluster join` here (over ssh to {ca}), or `sc cluster request` here, \
                     `sc cluster sign` on {ca} and `sc cluster accept` here",
                    ca = clusters.ca_host(me).name
                )
            }
        ));
    }
    let site = crate::config::site::Settings::load(system, paths)?;
    let acme = crate::front::acme::AcmeSettings::load(system, paths)?;
    // Every container the front serves (of every host) has a certificate before haproxy is
    // rendered: one of the internal CA unless a valid ACME one is installed.
    let certificates = crate::front::certs::lock(system, paths).map_err(RegenerateError::Read)?;
    let ensured = crate::front::certs::ensure_internal(system, paths, &state, hostname)?;
    crate::front::certs::prune(system, paths, &state).map_err(RegenerateError::Read)?;
    drop(certificates);
    outcome.certificates_issued = ensured.issued;
    // ACME hook point: certificates from the ACME CA would be installed here (crate::front::acme),
    // before the crt-list is rendered; `installed` must then be read again
    // (crate::front::certs::installed, which re-reads only the certificates that changed).
    let installed = ensured.installed;
    let joined = crate::cluster::enrol::Joined::load(system, paths);
    let sysctl = crate::containers::limits::read_current(system, paths);
    let inputs = Inputs {
        state: &state,
        clusters: &clusters,
        me,
        settings: &site,
        acme_listen: acme.listen,
        templates: &templates,
        certificates: &installed,
        cluster_identity,
        joined: joined.as_ref(),
        sysctl: &sysctl,
        datastore_time: store::written_at(system, paths),
    };
    let rendered = registry::render(MODULES, &inputs)?;
    let base = paths.host("/");
    let previous = apply::read_manifest(system, &base.join(MANIFEST), MODULES)
        .map_err(RegenerateError::Read)?;
    let mut plan = changeset::plan_modules(rendered, &base, &previous, system)
        .map_err(RegenerateError::Read)?;
    for (_, verdict) in registry::guard(&mut plan, system, paths) {
        match verdict {
            Verdict::Note(note) => outcome.notes.push(note),
            Verdict::Refuse(error) => {
                let all = outcome.haproxy_error.get_or_insert_with(String::new);
                if !all.is_empty() {
                    all.push('\n');
                }
                all.push_str(&error);
            }
            Verdict::Accept => {}
        }
    }
    let applied = apply::apply(system, &base, &plan, Path::new(MANIFEST))?;
    for (module, live) in applied.live {
        match live {
            registry::Live::Updated(done) => outcome.updated_live.push(format!("{module}: {done}")),
            registry::Live::Failed(why) => outcome.notes.push(format!("{module}: {why}")),
        }
    }
    // Homes are only ever created: never part of the plan, which also removes.
    let homes = crate::accounts::homes::ensure(system, paths, &state);
    outcome.homes_created = homes.created;
    outcome.notes.extend(homes.failed);
    // Host limits are only ever raised, the same way.
    let limits = crate::containers::limits::limits(
        crate::containers::limits::containers_of(&state, hostname),
        &sysctl,
    );
    let raised = crate::containers::limits::raise(system, paths, &limits);
    outcome.limits_raised = raised.raised;
    outcome.notes.extend(raised.failed);
    for (_, op) in plan.ops() {
        let list = match op {
            changeset::Op::Remove { .. } => &mut outcome.removed,
            _ => &mut outcome.written,
        };
        list.push(format!("/{}", op.path().display()));
    }
    let reloads = applied.reloads;
    if reloads.contains(&crate::system::Request::ReloadNetworkd) {
        outcome.bridges_missing = wait_for_bridges(system, &state, hostname, BRIDGE_WAIT);
    }
    outcome.unchanged = plan.unchanged();
    outcome.reloads = reloads.iter().map(ToString::to_string).collect();
    Ok(outcome)
}
/// How long to wait for systemd-networkd to make the bridges.
pub const BRIDGE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Wait until every bridge of this host's containers exists (systemd-networkd makes them
/// shortly after it reads its files), so that containers started next find theirs. Returns
/// those still missing when `timeout` ran out.
pub fn wait_for_bridges(
    system: &dyn System,
    state: &crate::model::State,
    hostname: &str,
    timeout: std::time::Duration,
) -> Vec<String> {
    let bridges = crate::containers::render::bridges(state, hostname);
    let start = system.monotonic();
    loop {
        let missing: Vec<String> = bridges
            .iter()
            .filter(|b| !system.interface_exists(b))
            .cloned()
            .collect();
        if missing.is_empty() || system.monotonic() - start >= timeout {
            return missing;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
