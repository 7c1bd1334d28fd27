//! The host limits that many containers hit, kept at srvctl's floors: the kernel settings
//! below, checked and raised (never lowered) by srvctl-regenerate at every run and at boot
//! before any container starts, and by `srvctl-regenerate --raise-limits` at install.
//!
//! A booted container is a whole systemd: its manager, journald, logind and every service
//! take inotify instances, which the kernel charges to the user that made the container's
//! user namespace (root on the host). With the kernel's default of 128, a host holds about
//! 16 containers and the 17th freezes early in its boot. The floors scale with the number of
//! this host's containers, counted as at least [`MIN_CONTAINERS`] so that a growing host does
//! not rewrite them at every `sc add-ve`:
//!
//! | key | floor for n containers | why |
//! |---|---|---|
//! | `fs.inotify.max_user_instances` | 64 · n | about 8 per booted container, 8 times over |
//! | `fs.inotify.max_user_watches` | 4096 · n | journald, logind and the site's own watchers |
//! | `kernel.pid_max` | 4194304 | every container's processes share the host's PIDs |
//! | `kernel.keys.maxkeys` | 2000 | per user: each service of a container takes a session keyring |
//! | `kernel.keys.maxbytes` | 2000000 | the bytes of those keys |
//! | `net.ipv4.neigh.default.gc_thresh1/2/3` | 4 · n, 16 · n, 32 · n | one neighbour per container on its bridge |
//! | `net.ipv6.neigh.default.gc_thresh1/2/3` | the same | the same, for IPv6 |
//!
//! A key whose value on the host is higher than the floor is left alone (the rendered file
//! says so); a key the host does not have (the neighbour tables outside the initial network
//! namespace) is skipped. The rendered `/run/sysctl.d/60-srvctl-limits.conf` holds the
//! floors srvctl keeps, so a restart of systemd-sysctl.service keeps them too; the values are
//! written into `/proc/sys` directly. Per-unit limits (tasks, open files) are in the drop-in
//! the generator writes for every container unit ([`crate::containers::units`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::registry::{Inputs, Module};
use crate::engine::templates::TemplateError;
use crate::engine::tree::Tree;
use crate::model::State;
use crate::system::paths::Paths;
use crate::system::{Fresh, Request, System};

/// The rendered sysctl.d file, relative to the host root.
pub const FILE: &str = "run/sysctl.d/60-srvctl-limits.conf";
/// The number of containers the floors are sized for at least.
pub const MIN_CONTAINERS: u64 = 256;

/// One kernel setting srvctl keeps a floor for.
struct Floor {
    /// The sysctl key.
    key: &'static str,
    /// The floor for a host with this many containers (at least [`MIN_CONTAINERS`]).
    value: fn(u64) -> u64,
}

const FLOORS: &[Floor] = &[
    Floor {
        key: "fs.inotify.max_user_instances",
        value: |n| 64 * n,
    },
    Floor {
        key: "fs.inotify.max_user_watches",
        value: |n| 4096 * n,
    },
    Floor {
        key: "kernel.pid_max",
        value: |_| 4_194_304,
    },
    Floor {
        key: "kernel.keys.maxkeys",
        value: |_| 2000,
    },
    Floor {
        key: "kernel.keys.maxbytes",
        value: |_| 2_000_000,
    },
    Floor {
        key: "net.ipv4.neigh.default.gc_thresh1",
        value: |n| 4 * n,
    },
    Floor {
        key: "net.ipv4.neigh.default.gc_thresh2",
        value: |n| 16 * n,
    },
    Floor {
        key: "net.ipv4.neigh.default.gc_thresh3",
        value: |n| 32 * n,
    },
    Floor {
        key: "net.ipv6.neigh.default.gc_thresh1",
        value: |n| 4 * n,
    },
    Floor {
        key: "net.ipv6.neigh.default.gc_thresh2",
        value: |n| 16 * n,
    },
    Floor {
        key: "net.ipv6.neigh.default.gc_thresh3",
        value: |n| 32 * n,
    },
];

/// The host's current values of the keys srvctl keeps floors for; a key the host does not
/// have is absent.
pub type Current = BTreeMap<&'static str, u64>;

/// What srvctl does with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The sysctl key.
    pub key: &'static str,
    /// srvctl's floor.
    pub floor: u64,
    /// The host's value, if it has the key.
    pub current: Option<u64>,
}

impl Limit {
    /// Whether srvctl holds this key at its floor: the host has it, and not above the floor.
    pub fn kept(&self) -> bool {
        self.current.is_some_and(|c| c <= self.floor)
    }
}

/// The floors for a host with `containers` containers, against the host's `current` values.
pub fn limits(containers: usize, current: &Current) -> Vec<Limit> {
    let n = (containers as u64).max(MIN_CONTAINERS);
    FLOORS
        .iter()
        .map(|f| Limit {
            key: f.key,
            floor: (f.value)(n),
            current: current.get(f.key).copied(),
        })
        .collect()
}

/// The number of containers of host `hostname`.
pub fn containers_of(state: &State, hostname: &str) -> usize {
    state
        .containers
        .values()
        .filter(|c| c.host == hostname)
        .count()
}

/// Where the value of `key` lives under `/proc/sys`.
fn proc_path(paths: &Paths, key: &str) -> PathBuf {
    paths.host("/proc/sys").join(key.replace('.', "/"))
}

/// Read the host's current values (under a scratch root there is no `/proc/sys`: none).
pub fn read_current(system: &dyn System, paths: &Paths) -> Current {
    FLOORS
        .iter()
        .filter_map(|f| {
            let bytes = system.read(&proc_path(paths, f.key)).ok()??;
            let value = std::str::from_utf8(&bytes).ok()?.trim().parse().ok()?;
            Some((f.key, value))
        })
        .collect()
}

/// What [`raise`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Raised {
    /// `key old → new` of every key raised.
    pub raised: Vec<String>,
    /// Keys that could not be raised, and why (e.g. `/proc/sys` is read-only in a container).
    pub failed: Vec<String>,
}

/// Write the floor of every key of `limits` whose host value is below it into `/proc/sys`.
/// Values are only ever raised, like homes are only ever created: never part of the plan.
pub fn raise(system: &dyn System, paths: &Paths, limits: &[Limit]) -> Raised {
    let mut done = Raised::default();
    for limit in limits {
        let Some(current) = limit.current.filter(|&c| c < limit.floor) else {
            continue;
        };
        let path = proc_path(paths, limit.key);
        let value = format!("{}\n", limit.floor);
        match system.write_fresh(&path, Fresh::File(value.as_bytes())) {
            Ok(()) => done
                .raised
                .push(format!("{} {current} → {}", limit.key, limit.floor)),
            Err(e) => done.failed.push(format!(
                "{} is {current}, below srvctl's floor {} ({e}); containers may fail to boot",
                limit.key, limit.floor
            )),
        }
    }
    done
}

/// The sysctl.d file of `limits`. It names no count of containers, so that it changes only
/// when a floor does (beyond [`MIN_CONTAINERS`]).
fn render_file(limits: &[Limit]) -> String {
    let mut text = format!(
        "# Generated by srvctl-regenerate: the floors of the host limits, sized for this host's \
         containers (at least {MIN_CONTAINERS}); changes here are overwritten.\n"
    );
    for limit in limits {
        match limit.current {
            _ if limit.kept() => text.push_str(&format!("{} = {}\n", limit.key, limit.floor)),
            Some(current) => text.push_str(&format!(
                "# {}: the host has {current}, above the floor {}: left alone\n",
                limit.key, limit.floor
            )),
            None => text.push_str(&format!("# {}: not on this host\n", limit.key)),
        }
    }
    text
}

/// The limits module: the sysctl.d file of the floors. Its values are written into
/// `/proc/sys` by regenerate ([`raise`]), so a change needs no reload.
pub struct Limits;

impl Module for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
        let containers = containers_of(inputs.state, &inputs.me.name);
        let limits = limits(containers, inputs.sysctl);
        tree.file(FILE, render_file(&limits));
        Ok(())
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[FILE]
    }

    fn reloads(&self, _changed: &[&Path]) -> Vec<Request> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    fn host(values: &[(&str, &str)]) -> (Recording, Paths) {
        let system = Recording::default();
        let paths = Paths::system();
        for (key, value) in values {
            system
                .write(&proc_path(&paths, key), value.as_bytes(), 0o644, false)
                .unwrap();
        }
        (system, paths)
    }

    fn value(system: &Recording, paths: &Paths, key: &str) -> String {
        let bytes = system.read(&proc_path(paths, key)).unwrap().unwrap();
        String::from_utf8(bytes).unwrap().trim().to_owned()
    }

    #[test]
    fn low_values_are_raised_higher_ones_kept_and_missing_keys_skipped() {
        let (system, paths) = host(&[
            ("fs.inotify.max_user_instances", "128\n"),
            ("kernel.pid_max", "4194304\n"),
            ("fs.inotify.max_user_watches", "99999999\n"),
            ("kernel.keys.maxkeys", "200\n"),
        ]);
        let current = read_current(&system, &paths);
        assert_eq!(current.len(), 4);
        let limits = limits(20, &current);
        let done = raise(&system, &paths, &limits);
        assert_eq!(
            done.raised,
            [
                "fs.inotify.max_user_instances 128 → 16384",
                "kernel.keys.maxkeys 200 → 2000"
            ]
        );
        assert!(done.failed.is_empty());
        assert_eq!(
            value(&system, &paths, "fs.inotify.max_user_instances"),
            "16384"
        );
        assert_eq!(
            value(&system, &paths, "fs.inotify.max_user_watches"),
            "99999999"
        );
        assert_eq!(value(&system, &paths, "kernel.pid_max"), "4194304");
        // The neighbour tables are not on this host: nothing is written there.
        assert!(
            system
                .read(&proc_path(&paths, "net.ipv4.neigh.default.gc_thresh3"))
                .unwrap()
                .is_none()
        );
        let file = render_file(&limits);
        assert!(
            file.contains("\nfs.inotify.max_user_instances = 16384\n"),
            "{file}"
        );
        assert!(file.contains("\nkernel.pid_max = 4194304\n"), "{file}");
        assert!(
            file.contains("# fs.inotify.max_user_watches: the host has 99999999, above"),
            "{file}"
        );
        assert!(
            file.contains("# net.ipv4.neigh.default.gc_thresh3: not on this host"),
            "{file}"
        );
        // Once raised, the next run renders the same file and raises nothing.
        let again = limits_after(&system, &paths, 20);
        assert_eq!(render_file(&again), file);
        assert!(raise(&system, &paths, &again).raised.is_empty());
    }

    fn limits_after(system: &Recording, paths: &Paths, containers: usize) -> Vec<Limit> {
        limits(containers, &read_current(system, paths))
    }

    #[test]
    fn floors_grow_with_the_containers_beyond_the_minimum() {
        let current = Current::new();
        let floor = |n: usize, key: &str| {
            limits(n, &current)
                .into_iter()
                .find(|l| l.key == key)
                .unwrap()
                .floor
        };
        let key = "fs.inotify.max_user_instances";
        assert_eq!(floor(0, key), floor(256, key));
        assert_eq!(floor(1000, key), 64_000);
        let gc = "net.ipv4.neigh.default.gc_thresh";
        assert!(floor(0, &format!("{gc}1")) < floor(0, &format!("{gc}2")));
        assert!(floor(0, &format!("{gc}2")) < floor(0, &format!("{gc}3")));
        // The kernel's default of 128 is what held a host to 16 containers.
        assert!(floor(0, key) >= 128 * 16);
    }
}
