//! The manual pages of srvctl (`sc man --dir DIR`): sc(1), one page for each of its commands
//! (`sc-add-ve(1)`, `sc-cluster-join(1)`, …), and one for each program systemd, sshd or the
//! generator machinery runs (`srvctl-sync(8)`, `srvctl-generator(8)`, …), all from the same
//! clap definitions that parse their command lines, so a page never disagrees with its program.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Failure;
use super::args::Cli;
use crate::system::System;

/// The programs besides sc, with their command lines: section 8 (system administration).
fn programs() -> Vec<clap::Command> {
    vec![
        super::regenerate::Args::command(),
        super::sync::Args::command(),
        super::service::Args::command(),
        super::authorized_keys::Args::command(),
        crate::gateway::Args::command(),
        crate::engine::generator::Args::command(),
    ]
}

/// sc's own page: clap's sections, then the exit statuses.
pub fn write_sc(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(Cli::command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    man.render_extra_section(out)?;
    out.write_all(super::exit_status_section().as_bytes())?;
    man.render_version_section(out)
}

/// Write every page into `dir` (which must exist); the files there afterwards, in order.
pub fn write_all(system: &dyn System, dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let io = |e: std::io::Error| {
        Failure::new(
            crate::failure::FailureKind::System,
            format!("{}: {e}", dir.display()),
        )
    };
    // sc and every command of it, each a page of its own (sc-cluster-join.1, …); sc's own
    // page is then the one with the exit statuses.
    clap_mangen::generate_to(Cli::command(), dir).map_err(io)?;
    let mut page = Vec::new();
    write_sc(&mut page).map_err(io)?;
    system
        .write(&dir.join("sc.1"), &page, 0o644, false)
        .map_err(io)?;
    for program in programs() {
        clap_mangen::Man::new(program)
            .section("8")
            .generate_to(dir)
            .map_err(io)?;
    }
    let mut written: Vec<PathBuf> = system
        .list_dir(dir)
        .map_err(io)?
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|p| p.extension().is_some_and(|e| e == "1" || e == "8"))
        .collect();
    written.sort();
    Ok(written)
}
