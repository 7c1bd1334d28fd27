//! `sc diagnose`: a first-aid report of this host, one finding per check, each problem with a
//! hint that says how to fix it. The host is healthy when no finding is a problem.
//!
//! Every check is a small function of [`checks`] over a [`Probe`]: the machine
//! ([`System`]: files, units, programs, free space, clock) and a resolver for the host's DNS
//! records, so tests plant faults in the recording system and a fixed resolver.

pub mod checks;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::front::acme::Resolver;
use crate::system::System;
use crate::system::paths::Paths;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// All is well.
    Ok,
    /// For the operator's information (versions, uptime, a check not made).
    Info,
    /// Worth a look, not yet a fault.
    Warning,
    /// A fault: the host is not healthy.
    Problem,
}

impl Level {
    /// Its word in the report.
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Problem => "PROBLEM",
        }
    }
}

/// One finding of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check: `versions`, `units`, `containers`, `certificates`, ...
    pub check: &'static str,
    /// How bad it is.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// How to fix it (problems and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    /// A finding without hint.
    pub fn new(check: &'static str, level: Level, message: impl Into<String>) -> Self {
        Self {
            check,
            level,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning or problem with its hint.
    pub fn fault(
        check: &'static str,
        level: Level,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            hint: Some(hint.into()),
            ..Self::new(check, level, message)
        }
    }
}

/// What the checks look at.
pub struct Probe<'a> {
    /// The machine.
    pub system: &'a dyn System,
    /// Where srvctl's files are.
    pub paths: &'a Paths,
    /// This host's name.
    pub hostname: &'a str,
    /// Whether systemd is there to ask (not under a scratch root).
    pub live_systemd: bool,
    /// The resolver that answers for the host's DNS records (none when this host is not in
    /// clusters.json, which the settings check reports).
    pub dns: Option<&'a dyn Resolver>,
}

/// The report: every finding, in the order of the checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether no finding is a problem.
    pub healthy: bool,
    /// The findings.
    pub findings: Vec<Finding>,
}

/// Run every check.
pub fn diagnose(probe: &Probe<'_>) -> Report {
    let findings: Vec<Finding> = checks::ALL.iter().flat_map(|check| check(probe)).collect();
    Report {
        healthy: findings.iter().all(|f| f.level != Level::Problem),
        findings,
    }
}
