use std::collections::VecDeque;

use super::*;
use crate::ops::Audit;
use crate::store::Memory;
use crate::system::Recording;
use crate::system::systemd::UnitState;

struct Quiet;

impl Audit for Quiet {
    fn record(&self, _outcome: &str) {}
}

fn env<'a>(system: &'a Recording, paths: &'a Paths, store: &'a Memory) -> Services<'a> {
    Services {
        store,
        system,
        paths,
        audit: &Quiet,
        live_systemd: true,
    }
}

/// A feed that answers from scripts, records what was published and keeps the keys put
/// below the cluster's prefix.
#[derive(Default)]
pub(crate) struct Scripted {
    pub(crate) refreshes: VecDeque<Result<Refreshed, String>>,
    pub(crate) published: Vec<LiveReport>,
    pub(crate) keys: BTreeMap<String, String>,
    /// The revision of each key, as the puts made them.
    pub(crate) revisions: BTreeMap<String, i64>,
    /// Keys another host deletes right after this one's next read of entries.
    pub(crate) deleted_after_read: Vec<String>,
}

impl Feed for Scripted {
    fn refresh(&mut self) -> Result<Refreshed, String> {
        self.refreshes.pop_front().expect("a scripted refresh")
    }
    fn wait(&mut self, _timeout: Duration) -> Result<Wakeup, String> {
        Ok(Wakeup::Quiet)
    }
    fn publish(&mut self, live: &LiveReport) -> Result<(), String> {
        self.published.push(live.clone());
        Ok(())
    }
    fn entries(&mut self, prefix: &str) -> Result<BTreeMap<String, String>, String> {
        let found = self
            .keys
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
            .collect();
        for key in std::mem::take(&mut self.deleted_after_read) {
            self.keys.remove(&key);
        }
        Ok(found)
    }
    fn revision(&mut self, key: &str) -> Result<i64, String> {
        Ok(self.revisions.get(key).copied().unwrap_or(0))
    }
    fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.keys.insert(key.to_owned(), value.to_owned());
        let next = self.revisions.values().max().copied().unwrap_or(0) + 1;
        self.revisions.insert(key.to_owned(), next);
        Ok(())
    }
    fn put_while(
        &mut self,
        key: &str,
        value: &str,
        guard: &str,
        expected: &str,
    ) -> Result<bool, String> {
        let holds = self.keys.get(guard).is_some_and(|v| v == expected);
        if holds {
            self.put(key, value)?;
        }
        Ok(holds)
    }
    fn delete(&mut self, key: &str) -> Result<(), String> {
        self.keys.remove(key);
        Ok(())
    }
}

fn refreshed(revision: i64, changed: bool) -> Result<Refreshed, String> {
    Ok(Refreshed { revision, changed })
}

fn converge_requests() -> Vec<Request> {
    vec![
        Request::DaemonReload,
        Request::Start(REGENERATE_UNIT.into()),
        Request::Start("machines.target".into()),
    ]
}

fn system() -> Recording {
    Recording {
        units: vec![UnitState {
            name: "systemd-nspawn@web.example.com.service".into(),
            active: "active".into(),
            sub: "running".into(),
            since_usec: 0,
        }],
        ..Recording::default()
    }
}

#[test]
fn a_changed_document_reruns_the_generator_regenerate_and_machines_target() {
    let system = system();
    let paths = Paths::rooted("/r");
    let mut feed = Scripted {
        refreshes: [refreshed(7, true)].into(),
        ..Scripted::default()
    };
    let store = Memory::default();
    let clusters = Clusters::default();
    let mut sync = Sync::new(env(&system, &paths, &store), &clusters, "h1.test");
    assert_eq!(sync.round(&mut feed, false), Some(7));
    assert_eq!(*system.requests.borrow(), converge_requests());
    let status = read_status(&system, &paths).expect("a status file");
    assert!(status.connected);
    assert_eq!(status.revision, 7);
    assert_eq!(status.error, None);
    let notes = system.notifications.borrow();
    assert!(notes[0].starts_with("READY=1\nWATCHDOG=1\n"), "{notes:?}");
}

#[test]
fn an_unchanged_document_asks_nothing_of_systemd_unless_regenerate_was_asked() {
    let system = system();
    let paths = Paths::rooted("/r");
    let mut feed = Scripted {
        refreshes: [refreshed(7, false), refreshed(7, false)].into(),
        ..Scripted::default()
    };
    let store = Memory::default();
    let clusters = Clusters::default();
    let mut sync = Sync::new(env(&system, &paths, &store), &clusters, "h1.test");
    sync.round(&mut feed, false);
    assert!(system.requests.borrow().is_empty());
    sync.round(&mut feed, true);
    assert_eq!(*system.requests.borrow(), converge_requests());
}

#[test]
fn an_unreachable_cluster_is_reported_and_the_service_is_still_ready() {
    let system = system();
    let paths = Paths::rooted("/r");
    let mut feed = Scripted {
        refreshes: [
            refreshed(3, false),
            Err("no quorum (1 of 3 etcd members reachable)".into()),
        ]
        .into(),
        ..Scripted::default()
    };
    let store = Memory::default();
    let clusters = Clusters::default();
    let mut sync = Sync::new(env(&system, &paths, &store), &clusters, "h1.test");
    sync.round(&mut feed, false);
    assert_eq!(sync.round(&mut feed, false), None);
    let status = read_status(&system, &paths).unwrap();
    assert!(!status.connected);
    assert_eq!(status.revision, 3, "the cache still holds revision 3");
    assert!(status.current_at.is_some());
    assert!(status.error.unwrap().contains("no quorum"));
    let notes = system.notifications.borrow();
    assert_eq!(notes.iter().filter(|n| n.contains("READY=1")).count(), 1);
    assert!(notes[1].contains("STATUS=etcd unreachable, serving from the cache"));
}

#[test]
fn the_live_state_is_published_once_until_it_changes() {
    let system = system();
    let paths = Paths::rooted("/r");
    let mut feed = Scripted {
        refreshes: [refreshed(1, false), refreshed(1, false)].into(),
        ..Scripted::default()
    };
    let store = Memory::default();
    let clusters = Clusters::default();
    let mut sync = Sync::new(env(&system, &paths, &store), &clusters, "h1.test");
    sync.round(&mut feed, false);
    sync.round(&mut feed, false);
    assert_eq!(
        feed.published.len(),
        1,
        "the same state is not published twice"
    );
    let first = &feed.published[0];
    assert_eq!(first.host, "h1.test");
    assert_eq!(first.containers["web.example.com"], "running");
}

#[test]
fn containers_placed_here_from_another_host_are_cloned_and_started_once() {
    let system = Recording::default();
    let paths = Paths::rooted("/r");
    let doc = |host: &str, provision: bool| {
        let text = format!(
            r#"{{"schema_version": 1, "containers": {{"web.example.com": {{"user": "root",
              "host": "{host}", "ip": "10.16.0.2", "created": "2026-01-01T00:00:00Z",
              "created_by": "root", "provision": {provision}}}}}}}"#
        );
        crate::model::State::from_json(text.as_bytes()).unwrap()
    };
    let name = crate::model::names::ContainerName::new("web.example.com").unwrap();
    let steps = provisions(&paths, &system, &doc("h1.test", true), "h1.test");
    assert_eq!(steps.len(), 1);
    assert!(
        matches!(&steps[0][0], follow_up::Step::Provision { name: n, image, .. }
        if *n == name && image == "debian")
    );
    assert!(steps[0].contains(&follow_up::Step::StartContainer(name.clone())));
    assert!(provisions(&paths, &system, &doc("h2.test", true), "h1.test").is_empty());
    assert!(provisions(&paths, &system, &doc("h1.test", false), "h1.test").is_empty());
    system
        .create_dir(
            &crate::containers::rootfs::machine_dir(&paths, &name),
            0o700,
        )
        .unwrap();
    assert!(
        provisions(&paths, &system, &doc("h1.test", true), "h1.test").is_empty(),
        "a container with a root filesystem is not cloned again"
    );
}
