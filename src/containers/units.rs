//! What `srvctl-generator` writes into systemd's generator directory: the container units
//! that boot starts, the drop-ins with their limits (the defaults of every container unit:
//! boot timeout, tasks, open files; and each container's own), and the srvctl units they
//! need.
//!
//! Only a container that has its root filesystem under /var/lib/machines is wanted by
//! `machines.target`: one added with `sc add-ve --no-start` (or whose image was not built)
//! has none until `sc NAME start` clones it, and its unit would only fail at boot ("No image
//! for machine"). Its limits drop-in is written all the same, so that a start by hand before
//! the next daemon-reload runs it with its limits.
//!
//! Containers start in batches of [`STAGGER_BATCH`], so a host with hundreds of containers
//! starts them a few at a time instead of all at once (which makes plain nspawn farms hit start
//! timeouts). Each batch has a generated target, `srvctl-start-K.target`, ordered after every
//! container of batch K-1 and before every container of batch K; batch 0 waits for
//! srvctl-regenerate and for the bridges (srvctl-bridges.service). One small file per batch
//! instead of one per container keeps the generator fast: it runs on every daemon-reload.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};

use serde::Serialize;

use crate::config::cluster::Clusters;
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::Tree;
use crate::model::State;
use crate::model::names::ContainerName;

/// How many containers start at the same time at boot.
pub const STAGGER_BATCH: usize = 8;
/// How long a container may take to boot before its start job fails (`TimeoutStartSec=` of
/// every container unit; its start job ends when the container's systemd reports ready).
pub const BOOT_TIMEOUT: &str = "120s";
/// The tasks a container may run (the distributions' systemd-nspawn@.service says the same;
/// srvctl does not depend on it). A container's `tasks_max` setting overrides it.
pub const TASKS_MAX: u32 = 16384;
/// The open files of a container's processes (hard limit; the container's systemd raises
/// its services' soft limits itself).
pub const OPEN_FILES: u32 = 524_288;
/// Where the distribution's units live (both Debian and Fedora, merged /usr).
const SYSTEM_UNITS: &str = "/usr/lib/systemd/system";

/// The unit name of a container.
pub fn container_unit(name: &ContainerName) -> String {
    format!("systemd-nspawn@{name}.service")
}

#[derive(Serialize)]
struct Limits<'a> {
    memory_max: Option<&'a str>,
    cpu_weight: Option<u32>,
    tasks_max: Option<u32>,
}

#[derive(Serialize)]
struct Defaults {
    boot_timeout: &'static str,
    tasks_max: u32,
    open_files: u32,
}

#[derive(Serialize)]
struct Batch<'a> {
    number: usize,
    after: &'a [String],
    before: &'a [String],
}

/// The name of start batch `k`.
fn batch_target(k: usize) -> String {
    format!("srvctl-start-{k}.target")
}

/// The units of a replicated cluster's host, wanted once it holds its cluster identity: its
/// etcd member and the sync service that keeps the local cache of the datastore current.
pub const CLUSTER_UNITS: &[&str] = &[crate::cluster::member::UNIT, "srvctl-sync.service"];

/// Render the generator's output for `hostname`; `identity` says whether the host holds its
/// cluster identity (`cluster/host.crt`); `machines` are the names under /var/lib/machines
/// ([`crate::containers::rootfs::machine_names`]): only the containers among them are started
/// at boot.
pub fn render(
    state: &State,
    clusters: &Clusters,
    hostname: &str,
    identity: bool,
    machines: &BTreeSet<OsString>,
    templates: &Templates,
) -> Result<Tree, TemplateError> {
    let mut tree = Tree::default();
    let enabled: Vec<_> = state
        .containers
        .iter()
        .filter(|(_, c)| c.host == hostname && c.settings.disabled != Some(true))
        .collect();
    let units: Vec<String> = enabled
        .iter()
        .filter(|(n, _)| machines.contains(OsStr::new(n.as_str())))
        .map(|(n, _)| container_unit(n))
        .collect();
    let template_link = format!("{SYSTEM_UNITS}/systemd-nspawn@.service");
    for unit in &units {
        tree.link(format!("machines.target.wants/{unit}"), &template_link);
    }
    for (name, c) in &enabled {
        let unit = container_unit(name);
        let s = &c.settings;
        if s.memory_max.is_some() || s.cpu_weight.is_some() || s.tasks_max.is_some() {
            let limits = Limits {
                memory_max: s.memory_max.as_deref(),
                cpu_weight: s.cpu_weight,
                tasks_max: s.tasks_max,
            };
            tree.file(
                format!("{unit}.d/50-srvctl.conf"),
                templates.render("nspawn-unit.conf", &limits)?,
            );
        }
    }
    let first = &[
        String::from("srvctl-regenerate.service"),
        String::from("srvctl-bridges.service"),
    ];
    let batches: Vec<&[String]> = units.chunks(STAGGER_BATCH).collect();
    for (k, before) in batches.iter().enumerate() {
        let target = batch_target(k);
        let after = if k == 0 { &first[..] } else { batches[k - 1] };
        let batch = Batch {
            number: k,
            after,
            before,
        };
        tree.file(&target, templates.render("start-batch.target", &batch)?);
        tree.link(
            format!("machines.target.wants/{target}"),
            format!("../{target}"),
        );
    }
    if !enabled.is_empty() {
        let defaults = Defaults {
            boot_timeout: BOOT_TIMEOUT,
            tasks_max: TASKS_MAX,
            open_files: OPEN_FILES,
        };
        tree.file(
            "systemd-nspawn@.service.d/40-srvctl-defaults.conf",
            templates.render("nspawn-defaults.conf", &defaults)?,
        );
        tree.link(
            "multi-user.target.wants/machines.target",
            format!("{SYSTEM_UNITS}/machines.target"),
        );
    }
    tree.link(
        "sysinit.target.wants/srvctl-regenerate.service",
        format!("{SYSTEM_UNITS}/srvctl-regenerate.service"),
    );
    // The containers' masquerade, loaded once regenerate has rendered it.
    tree.link(
        format!("sysinit.target.wants/{}", crate::containers::nat::UNIT),
        format!("{SYSTEM_UNITS}/{}", crate::containers::nat::UNIT),
    );
    // Certificates are renewed twice a day (`sc certificates renew`).
    tree.link(
        "timers.target.wants/srvctl-certificates.timer",
        format!("{SYSTEM_UNITS}/srvctl-certificates.timer"),
    );
    if let Some(me) = clusters.host(hostname)
        && crate::cluster::member::runs_member(clusters, me, identity)
    {
        for unit in CLUSTER_UNITS {
            tree.link(
                format!("multi-user.target.wants/{unit}"),
                format!("{SYSTEM_UNITS}/{unit}"),
            );
        }
    }
    for instance in crate::mesh::openvpn::instances(clusters, hostname) {
        let unit = crate::mesh::openvpn::mesh_unit(&instance);
        tree.link(
            format!("multi-user.target.wants/{unit}"),
            format!("{SYSTEM_UNITS}/srvctl-mesh@.service"),
        );
    }
    Ok(tree)
}
