//! The sync service, `srvctl-sync`: keeps this host's cache of the cluster datastore current
//! and this host's configuration with it.
//!
//! It watches the cluster's records in etcd; when they change it refreshes the local cache
//! (the document the generator and srvctl-regenerate read at boot) and has systemd re-run the
//! generator, srvctl-regenerate and `machines.target` (which starts the containers of this host
//! that are wanted and not running). It publishes the live state of this host's containers
//! for `sc status` on the other hosts, and writes its own state to [`STATUS_FILE`] for
//! `sc cluster status` and for readers that mark the cache stale.
//!
//! While etcd is unreachable it keeps running from the cache, says so in the status file and
//! in systemd's status line, and tries again every few seconds: a member that comes back
//! catches up by itself. The loop talks to etcd through a [`Feed`], so it is tested with a
//! fake one.

use crate::system::journal::{
    self,
    Priority::{Error, Notice, Warning},
};
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::cluster::Clusters;
use crate::ops::Services;
use crate::ops::follow_up::{self, REGENERATE_UNIT};
use crate::ops::views::run_state;
use crate::system::paths::Paths;
use crate::system::{Request, System};

/// The sync service's unit.
pub const UNIT: &str = "srvctl-sync.service";
/// Where the sync service writes its state (volatile: a reboot starts afresh).
pub const STATUS_FILE: &str = "/run/srvctl/sync.json";
/// The longest the loop waits for a change before it looks again (and pets the watchdog).
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to wait before trying an unreachable cluster again.
pub const RETRY: Duration = Duration::from_secs(1);
/// How long to wait after a broken watch before the next round (which reads again).
pub const REWATCH: Duration = Duration::from_millis(100);
/// How often the live state is published even when it did not change, so that readers can
/// tell a live host from a silent one.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// A live report older than this is not believed.
pub const LIVE_FRESH: Duration = Duration::from_secs(45);

/// What the sync loop needs of the cluster datastore.
pub trait Feed {
    /// Bring the local cache up to date with the cluster.
    fn refresh(&mut self) -> Result<Refreshed, String>;
    /// Wait until something the loop acts on changes after the last refresh, at most
    /// `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<Wakeup, String>;
    /// Publish the live state of this host's containers.
    fn publish(&mut self, live: &LiveReport) -> Result<(), String>;
    /// Every key below `prefix` (below the cluster's prefix) and its value, keyed by the rest
    /// of the key after `prefix`.
    fn entries(&mut self, prefix: &str) -> Result<BTreeMap<String, String>, String>;
    /// The etcd revision at which `key` (below the cluster's prefix) was last written (0: it
    /// does not exist).
    fn revision(&mut self, key: &str) -> Result<i64, String>;
    /// Put `value` at `key` (below the cluster's prefix).
    fn put(&mut self, key: &str, value: &str) -> Result<(), String>;
    /// Put `value` at `key` only while `guard` still holds `expected`, in one transaction;
    /// whether it was put.
    fn put_while(
        &mut self,
        key: &str,
        value: &str,
        guard: &str,
        expected: &str,
    ) -> Result<bool, String>;
    /// Delete `key` (below the cluster's prefix).
    fn delete(&mut self, key: &str) -> Result<(), String>;
}

/// The outcome of [`Feed::refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// The etcd revision of the document now in the cache.
    pub revision: i64,
    /// Whether the cached document changed.
    pub changed: bool,
}

/// Why [`Feed::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// The records changed.
    Changed,
    /// `sc regenerate all-hosts` asked every host to regenerate.
    Regenerate,
    /// Nothing happened within the time.
    Quiet,
}

/// The live state of one host's containers, as its sync service last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveReport {
    /// The host.
    pub host: String,
    /// When it was seen (RFC 3339).
    pub at: String,
    /// The etcd revision of the host's cache.
    pub revision: i64,
    /// Container name → `running`, `starting`, `stopping`, `stopped`, `failed`.
    pub containers: BTreeMap<String, String>,
    /// Mesh tunnel (`server`, `client-H`) → the same words.
    #[serde(default)]
    pub mesh: BTreeMap<String, String>,
}

/// The sync service's state, as [`STATUS_FILE`] holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Whether the last exchange with etcd succeeded.
    pub connected: bool,
    /// The etcd revision of the cached document (0 before the first refresh).
    pub revision: i64,
    /// When the cache was last confirmed current (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_at: Option<String>,
    /// When this status was written (RFC 3339).
    pub updated: String,
    /// Why etcd is not reachable, while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Read the sync service's state, if it runs (or ran since boot).
pub fn read_status(system: &dyn System, paths: &Paths) -> Option<SyncStatus> {
    let bytes = system.read(&paths.host(STATUS_FILE)).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// The sync loop of one host.
pub struct Sync<'a> {
    env: Services<'a>,
    system: &'a dyn System,
    paths: &'a Paths,
    clusters: &'a Clusters,
    host: String,
    status: SyncStatus,
    /// What the last renewal round logged (not logged again while it repeats).
    renewal_log: Vec<String>,
    published: Option<(LiveReport, Duration)>,
    ready: bool,
    certificates: super::acme::install::Installer,
}

impl<'a> Sync<'a> {
    /// The loop of host `host` of `clusters`, acting through `env` (its store is the cluster
    /// datastore).
    pub fn new(env: Services<'a>, clusters: &'a Clusters, host: &str) -> Self {
        Self {
            env,
            system: env.system,
            paths: env.paths,
            clusters,
            host: host.to_owned(),
            renewal_log: Vec::new(),
            status: SyncStatus {
                connected: false,
                revision: 0,
                current_at: None,
                updated: String::new(),
                error: None,
            },
            published: None,
            ready: false,
            certificates: super::acme::install::Installer::default(),
        }
    }

    /// Run rounds until `stop` says so.
    pub fn serve(&mut self, feed: &mut dyn Feed, stop: &dyn Fn() -> bool) {
        let mut regenerate = false;
        while !stop() {
            match self.round(feed, regenerate) {
                Some(_) => {
                    regenerate = match feed.wait(WAIT) {
                        Ok(wakeup) => wakeup == Wakeup::Regenerate,
                        Err(e) => {
                            // The next round's refresh tells what is wrong, in etcd's terms.
                            journal::log(Warning, "srvctl-sync", &e.to_string());
                            std::thread::sleep(REWATCH);
                            false
                        }
                    };
                }
                None => {
                    regenerate = false;
                    std::thread::sleep(RETRY);
                }
            }
        }
        self.system.notify("STOPPING=1");
    }

    /// One round: refresh the cache, converge if it changed (or `regenerate` was asked),
    /// publish the live state, write the status, then renew host identities
    /// ([`super::renew`]), install the cluster's ACME certificates ([`super::acme::install`])
    /// and the DNS transfer key ([`super::dns_key`]). Returns the cached revision, or `None`
    /// when etcd could not be reached.
    pub fn round(&mut self, feed: &mut dyn Feed, regenerate: bool) -> Option<i64> {
        let refreshed = match feed.refresh() {
            Ok(r) => r,
            Err(e) => {
                self.disconnected(e);
                return None;
            }
        };
        if refreshed.changed || regenerate {
            self.converge();
        }
        let now = self.system.now().to_string();
        self.status = SyncStatus {
            connected: true,
            revision: refreshed.revision,
            current_at: Some(now.clone()),
            updated: now,
            error: None,
        };
        if let Err(e) = self.publish(feed) {
            self.disconnected(e);
            return None;
        }
        self.tell(&format!(
            "STATUS=cache current at etcd revision {}",
            refreshed.revision
        ));
        self.renew(feed);
        self.install_certificates(feed);
        self.install_transfer_key(feed);
        Some(refreshed.revision)
    }

    /// Bring this host in line with the cached document: the generator and srvctl-regenerate,
    /// the containers placed here from another host ([`provisions`]), then every container
    /// that is wanted and not running (`machines.target`).
    fn converge(&self) {
        self.ask(Request::DaemonReload);
        self.ask(Request::Start(REGENERATE_UNIT.into()));
        match self.env.store.load() {
            Ok(state) => {
                for steps in provisions(self.env.paths, self.env.system, &state, &self.host) {
                    if let Err(e) = follow_up::perform(&self.env, &steps) {
                        journal::log(Error, "srvctl-sync", &e.to_string());
                    }
                }
            }
            Err(e) => journal::log(Error, "srvctl-sync", &e.to_string()),
        }
        self.ask(Request::Start("machines.target".into()));
    }

    /// One round of certificate renewal; a failure is logged and tried again next round.
    fn renew(&mut self, feed: &mut dyn Feed) {
        let Some(me) = self.clusters.host(&self.host) else {
            return;
        };
        let renewed = super::renew::round(self.system, self.paths, self.clusters, me, feed)
            .unwrap_or_else(|e| super::renew::Renewed {
                log: vec![format!("renewing the host certificate: {e}")],
                restarts: Vec::new(),
            });
        for line in renewed.log.iter().filter(|l| !self.renewal_log.contains(l)) {
            journal::log(Notice, "srvctl-sync", line);
        }
        self.renewal_log = renewed.log;
        for request in renewed.restarts {
            self.ask(request);
        }
    }

    /// Install the cluster's ACME certificates that changed; haproxy picks them up with the
    /// regenerate that follows.
    fn install_certificates(&mut self, feed: &mut dyn Feed) {
        let state = match self.env.store.load() {
            Ok(s) => s,
            Err(e) => return journal::log(Error, "srvctl-sync", &e.to_string()),
        };
        let installed = match self
            .certificates
            .round(self.system, self.paths, &state, feed)
        {
            Ok(i) => i,
            Err(e) => {
                let said = format!("the cluster's certificates: {e}");
                return journal::log(Error, "srvctl-sync", &said);
            }
        };
        for e in &installed.errors {
            journal::log(Error, "srvctl-sync", e);
        }
        for name in &installed.names {
            let said = format!("installed the cluster's certificate of {name}");
            journal::log(Notice, "srvctl-sync", &said);
        }
        if !installed.names.is_empty() {
            self.ask(Request::Start(REGENERATE_UNIT.into()));
        }
    }

    /// Make or install the cluster's DNS transfer key on a DNS host; regenerate applies the
    /// named.conf fragment that includes it.
    fn install_transfer_key(&mut self, feed: &mut dyn Feed) {
        let Some(me) = self.clusters.host(&self.host) else {
            return;
        };
        match super::dns_key::round(self.system, self.paths, self.clusters, me, feed) {
            Ok(false) => {}
            Ok(true) => {
                journal::log(
                    Notice,
                    "srvctl-sync",
                    "installed the cluster's DNS transfer key",
                );
                self.ask(Request::Start(REGENERATE_UNIT.into()));
            }
            Err(e) => {
                let said = format!("the cluster's DNS transfer key: {e}");
                journal::log(Error, "srvctl-sync", &said);
            }
        }
    }

    fn ask(&self, request: Request) {
        if let Err(e) = self.system.systemd(&request) {
            journal::log(Error, "srvctl-sync", &e.to_string());
        }
    }

    fn publish(&mut self, feed: &mut dyn Feed) -> Result<(), String> {
        let mut report = LiveReport {
            host: self.host.clone(),
            at: String::new(),
            revision: self.status.revision,
            containers: self.unit_words("systemd-nspawn@"),
            mesh: self.unit_words("srvctl-mesh@"),
        };
        let now = self.system.monotonic();
        let due = match &self.published {
            Some((last, at)) => *last != report || now.saturating_sub(*at) >= HEARTBEAT,
            None => true,
        };
        if due {
            let unstamped = report.clone();
            report.at = self.system.now().to_string();
            feed.publish(&report)?;
            self.published = Some((unstamped, now));
        }
        Ok(())
    }

    /// The instances of the template units `PREFIX…@.service` and their states.
    fn unit_words(&self, prefix: &str) -> BTreeMap<String, String> {
        let units = self
            .system
            .unit_states(&format!("{prefix}*"))
            .unwrap_or_default();
        units
            .into_iter()
            .filter_map(|u| {
                let instance = u.name.strip_prefix(prefix)?.strip_suffix(".service")?;
                Some((instance.to_owned(), run_state(&u.active).to_owned()))
            })
            .collect()
    }

    fn disconnected(&mut self, error: String) {
        self.status.connected = false;
        self.status.updated = self.system.now().to_string();
        let line = format!(
            "STATUS=etcd unreachable, serving from the cache: {}",
            error.replace('\n', " ")
        );
        self.status.error = Some(error);
        self.tell(&line);
    }

    /// Write the status file and tell systemd (ready after the first round, whatever its
    /// outcome: the host runs from its cache either way).
    fn tell(&mut self, status_line: &str) {
        let path = self.paths.host(STATUS_FILE);
        let mut bytes = serde_json::to_vec_pretty(&self.status).expect("serialisable");
        bytes.push(b'\n');
        if let Err(e) = self.system.write(&path, &bytes, 0o644, false) {
            journal::log(Warning, "srvctl-sync", &format!("{}: {e}", path.display()));
        }
        let ready = if self.ready { "" } else { "READY=1\n" };
        self.ready = true;
        self.system
            .notify(&format!("{ready}WATCHDOG=1\n{status_line}"));
    }
}

/// The steps that clone and start each container that `sc add-ve --host` placed on `host`
/// from another host and that has no root filesystem here yet, one list per container.
pub fn provisions(
    paths: &Paths,
    system: &dyn System,
    state: &crate::model::State,
    host: &str,
) -> Vec<Vec<follow_up::Step>> {
    state
        .containers
        .iter()
        .filter(|(_, c)| c.host == host && c.provision && !c.destroying)
        .filter(|(name, _)| {
            system
                .kind(&crate::containers::rootfs::machine_dir(paths, name))
                .is_none()
        })
        .map(|(name, c)| {
            let image = c
                .settings
                .image
                .as_deref()
                .unwrap_or(crate::containers::image::DEFAULT_IMAGE);
            follow_up::added_container(name, image, &c.rootfs_identity(name), true)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
