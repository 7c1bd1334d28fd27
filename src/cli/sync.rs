//! `srvctl-sync`: the entry point of the sync service ([`crate::cluster::sync`]).

use crate::system::journal::{self, Priority};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::cluster::acme::challenge_lookup;
use crate::cluster::etcd::Connection;
use crate::cluster::feed::EtcdFeed;
use crate::cluster::sync::Sync;
use crate::config::cluster::Clusters;
use crate::front::acme::{AcmeSettings, Responder};
use crate::ops::audit::{self, AuditRecord};
use crate::ops::{Audit, Services};
use crate::store::Etcd;
use crate::system::paths::Paths;
use crate::system::{Local, System};

/// Keep this host's cache of the cluster datastore current and its configuration with it.
#[derive(Debug, Parser)]
#[command(name = "srvctl-sync", version)]
pub(crate) struct Args {
    /// Re-root every path under DIR; makes no systemd call.
    #[arg(long, env = "SRVCTL_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
}

/// Set by SIGTERM: the loop ends after its round.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// What the sync service changes on its own is audited as `srvctl-sync`.
struct SyncAudit<'a> {
    system: &'a dyn System,
    paths: &'a Paths,
    host: &'a str,
}

impl Audit for SyncAudit<'_> {
    fn record(&self, outcome: &str) {
        let record = AuditRecord {
            time: &self.system.now().to_string(),
            user: "srvctl-sync",
            host: self.host,
            command: &["srvctl-sync".to_owned()],
            outcome,
        };
        if let Err(e) = audit::append(self.system, self.paths, &record) {
            let said = format!("cannot append to the audit log: {e}");
            journal::log(Priority::Warning, "srvctl-sync", &said);
        }
    }
}

/// The HTTP-01 responder of this host on `acme_listen`, answering the cluster's challenge
/// tokens (whichever host orders), or `None` (said why) when it cannot listen.
fn challenge_responder(
    system: &dyn System,
    paths: &Paths,
    clusters: &Clusters,
    host: &str,
) -> Option<Responder> {
    let listen = match AcmeSettings::load(system, paths) {
        Ok(s) => s.listen,
        Err(e) => {
            let said = format!("no ACME challenge responder: {e}");
            journal::log(Priority::Error, "srvctl-sync", &said);
            return None;
        }
    };
    let rooted = paths.root().is_some();
    let (paths, clusters, host) = (paths.clone(), clusters.clone(), host.to_owned());
    let lookup =
        challenge_lookup(move || Connection::open(&Local::new(rooted), &paths, &clusters, &host));
    Responder::serving(listen, Some(lookup))
        .map_err(|e| {
            let said = format!("no ACME challenge responder on {listen}: {e}");
            journal::log(Priority::Error, "srvctl-sync", &said);
        })
        .ok()
}

/// Run the sync service until SIGTERM.
pub fn sync_main() -> ExitCode {
    let args = Args::parse();
    let paths = args.root.map(Paths::rooted).unwrap_or_else(Paths::system);
    let system = Local::new(paths.root().is_some());
    let host = system.hostname();
    let clusters = match Clusters::load(&system, &paths.clusters()) {
        Ok(c) => c,
        Err(e) => {
            journal::log(Priority::Error, "srvctl-sync", &e.to_string());
            return ExitCode::FAILURE;
        }
    };
    if !crate::cluster::is_replicated(&clusters, &host) {
        let said = format!(
            "{host} is not a host of a cluster of several hosts in clusters.json: nothing to sync"
        );
        journal::log(Priority::Error, "srvctl-sync", &said);
        return ExitCode::FAILURE;
    }
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_term),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let _ = nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGTERM, &action);
        let _ = nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGINT, &action);
    }
    let store = Etcd::new(&system, &paths, &clusters, &host);
    let audit = SyncAudit {
        system: &system,
        paths: &paths,
        host: &host,
    };
    let env = Services {
        store: &store,
        system: &system,
        paths: &paths,
        audit: &audit,
        live_systemd: paths.root().is_none(),
    };
    let _responder = challenge_responder(&system, &paths, &clusters, &host);
    let mut feed = EtcdFeed::new(|| Etcd::new(&system, &paths, &clusters, &host));
    Sync::new(env, &clusters, &host).serve(&mut feed, &|| STOP.load(Ordering::Relaxed));
    ExitCode::SUCCESS
}
