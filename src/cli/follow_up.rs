//! What `sc` does after a change has been written: make or remove the container's root
//! filesystem, re-run the generator (daemon-reload), expand the configuration
//! (srvctl-regenerate), and start or stop the container.

use crate::failure::FailureKind;
use std::time::Instant;

use super::Failure;
use super::output::Report;
use crate::names::ContainerName;
use crate::paths::Paths;
use crate::render::generator::container_unit;
use crate::rootfs;
use crate::system::{Request, System};

/// One step after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Clone the container's root filesystem from its image, unless it has one.
    Provision {
        /// The container.
        name: ContainerName,
        /// Its image.
        image: String,
    },
    /// Remove the container's root filesystem.
    RemoveRootfs(ContainerName),
    /// Start the container's unit if it has a root filesystem.
    StartContainer(ContainerName),
    /// Ask systemd.
    Systemd(Request),
}

fn regenerate() -> Step {
    Step::Systemd(Request::Start(super::regenerate::UNIT.into()))
}

/// Look for ACME certificates now rather than at the next timer run (in the background).
fn certificates() -> Step {
    Step::Systemd(Request::Trigger("srvctl-certificates.service".into()))
}

/// The steps that follow `report`.
pub fn steps(report: &Report) -> Vec<Step> {
    match report {
        Report::Container(c) => vec![
            Step::Provision {
                name: c.name.clone(),
                image: c.image.clone(),
            },
            Step::Systemd(Request::DaemonReload),
            regenerate(),
            Step::StartContainer(c.name.clone()),
            certificates(),
        ],
        Report::Removed(r) if r.kind == "container" => {
            let name = ContainerName::new(&r.name).expect("removed, so valid");
            vec![
                Step::Systemd(Request::Stop(container_unit(&name))),
                Step::RemoveRootfs(name),
                Step::Systemd(Request::DaemonReload),
                regenerate(),
            ]
        }
        Report::Set { .. } | Report::Import(_) => {
            vec![Step::Systemd(Request::DaemonReload), regenerate()]
        }
        Report::Front { .. } => vec![regenerate(), certificates()],
        Report::Reseller(_) | Report::User(_) | Report::Removed(_) => vec![regenerate()],
    }
}

/// Perform `steps` in order; notes for the operator go to stderr.
pub fn perform(system: &dyn System, paths: &Paths, steps: &[Step]) -> Result<(), Failure> {
    for step in steps {
        match step {
            Step::Provision { name, image } => provision(system, paths, name, image)?,
            Step::RemoveRootfs(name) => {
                rootfs::remove_container(system, paths, name).map_err(|e| {
                    Failure::new(
                        FailureKind::System,
                        format!("removing the root filesystem of {name}: {e}"),
                    )
                })?
            }
            Step::StartContainer(name) => {
                if rootfs::machine_dir(paths, name).is_dir() {
                    system.systemd(&Request::Start(container_unit(name)))?;
                }
            }
            Step::Systemd(request) => system.systemd(request)?,
        }
    }
    Ok(())
}

/// Make the root filesystem of `name` from `image` unless it exists.
pub fn provision(
    system: &dyn System,
    paths: &Paths,
    name: &ContainerName,
    image: &str,
) -> Result<(), Failure> {
    let dest = rootfs::machine_dir(paths, name);
    if dest.exists() {
        return Ok(());
    }
    let source = crate::image::image_dir(paths, image);
    if !source.is_dir() {
        eprintln!(
            "sc: note: image {image} is not built ({}); run `sc regenerate rootfs {image}`, then `sc {name} start`",
            source.display()
        );
        return Ok(());
    }
    let start = Instant::now();
    let method = rootfs::clone(system, &source, &dest)
        .and_then(|m| rootfs::personalise(system, &dest, name).map(|()| m))
        .map_err(|e| {
            let _ = rootfs::remove(system, &dest);
            Failure::new(
                FailureKind::System,
                format!("creating the root filesystem of {name}: {e}"),
            )
        })?;
    eprintln!(
        "sc: {name}: root filesystem from image {image} by {method} in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
