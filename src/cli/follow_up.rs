//! What `sc` asks systemd after a change has been written: re-run the generator, expand the
//! configuration, and start or stop the container concerned.

use super::output::Report;
use crate::paths::Paths;
use crate::render::generator::container_unit;
use crate::system::Request;

/// Where systemd-nspawn@.service looks for a container's root filesystem.
pub fn machine_dir(paths: &Paths, name: &str) -> std::path::PathBuf {
    paths.host(&format!("/var/lib/machines/{name}"))
}

/// The requests that follow `report`, and notes for the operator.
pub fn requests(report: &Report, paths: &Paths) -> (Vec<Request>, Vec<String>) {
    let regenerate = Request::Start(super::regenerate::UNIT.into());
    let mut notes = Vec::new();
    let requests = match report {
        Report::Container(c) => {
            let mut r = vec![Request::DaemonReload, regenerate];
            if machine_dir(paths, c.name.as_str()).is_dir() {
                r.push(Request::Start(container_unit(&c.name)));
            } else {
                notes.push(format!(
                    "{} has no root filesystem yet ({}); it starts once one is there",
                    c.name,
                    machine_dir(paths, c.name.as_str()).display()
                ));
            }
            r
        }
        Report::Removed(r) if r.kind == "container" => {
            let name = crate::names::ContainerName::new(&r.name).expect("removed, so valid");
            vec![
                Request::Stop(container_unit(&name)),
                Request::DaemonReload,
                regenerate,
            ]
        }
        Report::Set { .. } | Report::Import(_) => vec![Request::DaemonReload, regenerate],
        Report::Reseller(_) | Report::User(_) | Report::Removed(_) => vec![regenerate],
    };
    (requests, notes)
}
