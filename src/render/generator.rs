//! What `srvctl-generator` writes into systemd's generator directory: the container units
//! that boot starts, their drop-ins, and the srvctl units they need.
//!
//! Containers start in batches of [`STAGGER_BATCH`]: each unit of a batch is ordered after
//! every unit of the previous batch, so a host with hundreds of containers starts them a few
//! at a time instead of all at once (which makes plain nspawn farms hit start timeouts).

use serde::Serialize;

use super::templates::{TemplateError, Templates};
use super::tree::Tree;
use crate::cluster::Clusters;
use crate::model::State;
use crate::names::ContainerName;

/// How many containers start at the same time at boot.
pub const STAGGER_BATCH: usize = 8;
/// Start timeout of a container unit, in seconds; the queue before it does not count.
pub const START_TIMEOUT_SECS: u32 = 300;
/// Where the distribution's units live (both Debian and Fedora, merged /usr).
const SYSTEM_UNITS: &str = "/usr/lib/systemd/system";

/// The unit name of a container.
pub fn container_unit(name: &ContainerName) -> String {
    format!("systemd-nspawn@{name}.service")
}

/// The unit name of a mesh tunnel: `server`, or `client-H` towards host H.
pub fn mesh_unit(instance: &str) -> String {
    format!("srvctl-mesh@{instance}.service")
}

#[derive(Serialize)]
struct DropIn<'a> {
    after: &'a [String],
    bridge: String,
    start_timeout: u32,
    memory_max: Option<&'a str>,
    cpu_weight: Option<u32>,
    tasks_max: Option<u32>,
}

/// Render the generator's output for `hostname`.
pub fn render(
    state: &State,
    clusters: &Clusters,
    hostname: &str,
    templates: &Templates,
) -> Result<Tree, TemplateError> {
    let mut tree = Tree::default();
    let wanted: Vec<_> = state
        .containers
        .iter()
        .filter(|(_, c)| c.host == hostname && c.settings.disabled != Some(true))
        .collect();
    let units: Vec<String> = wanted.iter().map(|(n, _)| container_unit(n)).collect();
    let template_link = format!("{SYSTEM_UNITS}/systemd-nspawn@.service");
    for (i, ((_, c), unit)) in wanted.iter().zip(&units).enumerate() {
        tree.link(format!("machines.target.wants/{unit}"), &template_link);
        let batch = i / STAGGER_BATCH;
        let after = match batch {
            0 => &[][..],
            b => &units[(b - 1) * STAGGER_BATCH..b * STAGGER_BATCH],
        };
        let s = &c.settings;
        let (bridge, _) = c.slot().expect("loaded containers have plan addresses");
        let drop_in = DropIn {
            after,
            bridge: bridge.interface(),
            start_timeout: START_TIMEOUT_SECS,
            memory_max: s.memory_max.as_deref(),
            cpu_weight: s.cpu_weight,
            tasks_max: s.tasks_max,
        };
        tree.file(
            format!("{unit}.d/50-srvctl.conf"),
            templates.render("nspawn-unit.conf", &drop_in)?,
        );
    }
    if !wanted.is_empty() {
        tree.link(
            "multi-user.target.wants/machines.target",
            format!("{SYSTEM_UNITS}/machines.target"),
        );
    }
    tree.link(
        "sysinit.target.wants/srvctl-regenerate.service",
        format!("{SYSTEM_UNITS}/srvctl-regenerate.service"),
    );
    for instance in super::mesh::instances(clusters, hostname) {
        let unit = mesh_unit(&instance);
        tree.link(
            format!("multi-user.target.wants/{unit}"),
            format!("{SYSTEM_UNITS}/srvctl-mesh@.service"),
        );
    }
    Ok(tree)
}
