//! The kinds of failure. Every refusal and error of srvctl falls into one kind, which scripts
//! read from the exit status and, under `--json`, from the `kind` of the error object:
//!
//! ```json
//! { "error": { "kind": "not-found", "exit_code": 3, "message": "no container named web.example.com" } }
//! ```
//!
//! The kinds and their exit statuses are stable: a new kind may be added, an existing one never
//! changes its name or number. The man page lists them ([`FailureKind::ALL`]).

use serde::Serialize;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Something failed that fits no other kind.
    Failed,
    /// The command line is wrong: an unknown command, option or field.
    Usage,
    /// The record does not exist (or is outside the caller's scope).
    NotFound,
    /// The record or the name exists already, or the name belongs to someone else.
    Exists,
    /// A value is invalid: a name, a setting, a domain, a redirect.
    Invalid,
    /// The caller may not do this (e.g. not root).
    Permission,
    /// A range of the address plan (reseller ids, user indexes, container numbers) is full.
    Exhausted,
    /// The record is still in use (a user owning containers, a reseller with users).
    InUse,
    /// The hand-written configuration (clusters.json, settings.json, a srvctl 3 datastore)
    /// is wrong or unreadable.
    Config,
    /// The datastore cannot be read or written.
    Datastore,
    /// The machine did not do what was asked (a systemd job, a root filesystem, a program), or
    /// something on it stands in the way (a leftover root filesystem, an image not built).
    System,
    /// The cluster datastore cannot be reached (no quorum, no member reachable, a certificate
    /// not accepted): changes are refused, reads answer from the local cache.
    Unavailable,
    /// `sc get`: the field is known but not set.
    Unset,
    /// A hook of /etc/srvctl/hooks refused the command (a before hook failed, ran out of time
    /// or is not safe to run): nothing was changed.
    Hook,
}

impl FailureKind {
    /// Every kind, in the order the man page lists them.
    pub const ALL: &'static [FailureKind] = &[
        Self::Failed,
        Self::Usage,
        Self::NotFound,
        Self::Exists,
        Self::Invalid,
        Self::Permission,
        Self::Exhausted,
        Self::InUse,
        Self::Config,
        Self::Datastore,
        Self::System,
        Self::Unavailable,
        Self::Hook,
        Self::Unset,
    ];

    /// The exit status of a command that failed this way.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Failed => 1,
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Exists => 4,
            Self::Invalid => 5,
            Self::Permission => 6,
            Self::Exhausted => 7,
            Self::InUse => 8,
            Self::Config => 9,
            Self::Datastore => 10,
            Self::System => 11,
            Self::Unavailable => 12,
            Self::Hook => 13,
            Self::Unset => 100,
        }
    }

    /// The stable name of the kind, as in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Usage => "usage",
            Self::NotFound => "not-found",
            Self::Exists => "exists",
            Self::Invalid => "invalid",
            Self::Permission => "permission",
            Self::Exhausted => "exhausted",
            Self::InUse => "in-use",
            Self::Config => "config",
            Self::Datastore => "datastore",
            Self::System => "system",
            Self::Unavailable => "unavailable",
            Self::Hook => "hook",
            Self::Unset => "unset",
        }
    }

    /// What the kind means, in a few words (for the man page).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Failed => "a failure of no other kind",
            Self::Usage => "wrong command line: unknown command, option or field",
            Self::NotFound => "no such record (or not yours)",
            Self::Exists => "the record or name exists, or belongs to another",
            Self::Invalid => "an invalid name, setting, domain or redirect",
            Self::Permission => "the caller may not do this",
            Self::Exhausted => "a range of the address plan is full",
            Self::InUse => "the record is still in use",
            Self::Config => "clusters.json, settings.json or an import source is wrong",
            Self::Datastore => "the datastore cannot be read or written",
            Self::System => "the machine did not do what was asked, or stands in the way",
            Self::Unavailable => "the cluster datastore is unreachable or has no quorum",
            Self::Unset => "sc get: the field is known but not set",
            Self::Hook => "a before hook of /etc/srvctl/hooks refused the command",
        }
    }
}

/// An error that knows its kind.
pub trait Classify {
    /// The kind of this failure.
    fn kind(&self) -> FailureKind;
}

impl Classify for crate::model::names::NameError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

impl Classify for crate::model::settings::SettingError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

impl Classify for crate::ops::OpError {
    fn kind(&self) -> FailureKind {
        use crate::ops::OpError;
        match self {
            OpError::Name(_) | OpError::Setting(_) | OpError::Key(_) | OpError::Dns(_) => {
                FailureKind::Invalid
            }
            OpError::Exists { .. } => FailureKind::Exists,
            OpError::NotFound { .. } => FailureKind::NotFound,
            OpError::Exhausted(_) => FailureKind::Exhausted,
            OpError::UnknownHost(_) => FailureKind::Config,
            OpError::InUse(_) | OpError::Destroying(_) | OpError::Running(_) => FailureKind::InUse,
            OpError::Front(e) => e.kind(),
            OpError::Import(e) => e.kind(),
            OpError::Store(e) => e.kind(),
            OpError::Machine(_) => FailureKind::System,
            OpError::Claim(e) => e.kind(),
            OpError::Denied(_) => FailureKind::Permission,
            OpError::Hook(_) => FailureKind::Hook,
        }
    }
}

impl Classify for crate::ops::hooks::HookError {
    fn kind(&self) -> FailureKind {
        FailureKind::Hook
    }
}

impl Classify for crate::ops::custom::CustomError {
    fn kind(&self) -> FailureKind {
        match self {
            crate::ops::custom::CustomError::Untrusted { .. } => FailureKind::Permission,
            _ => FailureKind::Invalid,
        }
    }
}

impl Classify for crate::accounts::keys::KeyArgumentError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

impl Classify for crate::model::web::WebError {
    fn kind(&self) -> FailureKind {
        FailureKind::Invalid
    }
}

impl Classify for crate::ops::FollowUpError {
    fn kind(&self) -> FailureKind {
        match self {
            crate::ops::FollowUpError::Release { .. } => FailureKind::Datastore,
            _ => FailureKind::System,
        }
    }
}

impl Classify for crate::front::routes::FrontError {
    fn kind(&self) -> FailureKind {
        use crate::front::routes::FrontError;
        match self {
            FrontError::Name(_) | FrontError::Invalid(_) => FailureKind::Invalid,
            FrontError::NotFound(_) => FailureKind::NotFound,
            FrontError::Refused(_) => FailureKind::Exists,
            FrontError::Claim(e) => e.kind(),
        }
    }
}

impl Classify for crate::store::StoreError {
    fn kind(&self) -> FailureKind {
        match self {
            crate::store::StoreError::Unavailable(_) => FailureKind::Unavailable,
            _ => FailureKind::Datastore,
        }
    }
}

impl Classify for crate::config::cluster::ClusterError {
    fn kind(&self) -> FailureKind {
        FailureKind::Config
    }
}

impl Classify for crate::config::site::SettingsError {
    fn kind(&self) -> FailureKind {
        FailureKind::Config
    }
}

impl Classify for crate::ops::import_v3::ImportError {
    fn kind(&self) -> FailureKind {
        match self {
            crate::ops::import_v3::ImportError::File { .. } => FailureKind::Config,
            crate::ops::import_v3::ImportError::Claim { .. } => FailureKind::Exists,
        }
    }
}

impl Classify for crate::model::claims::ClaimError {
    fn kind(&self) -> FailureKind {
        FailureKind::Exists
    }
}

impl Classify for crate::containers::image::ImageError {
    fn kind(&self) -> FailureKind {
        match self {
            crate::containers::image::ImageError::Unknown(_) => FailureKind::Invalid,
            crate::containers::image::ImageError::Step(_) => FailureKind::System,
        }
    }
}

impl Classify for crate::containers::boot::NotBooted {
    fn kind(&self) -> FailureKind {
        FailureKind::System
    }
}

impl Classify for crate::system::systemd::SystemdError {
    fn kind(&self) -> FailureKind {
        FailureKind::System
    }
}

impl Classify for crate::engine::regenerate::RegenerateError {
    fn kind(&self) -> FailureKind {
        use crate::engine::regenerate::RegenerateError;
        match self {
            RegenerateError::Store(_) => FailureKind::Datastore,
            RegenerateError::Cluster(_)
            | RegenerateError::UnknownHost(_)
            | RegenerateError::Template(_)
            | RegenerateError::Settings(_)
            | RegenerateError::Acme(_) => FailureKind::Config,
            RegenerateError::Pki(_)
            | RegenerateError::Certs(_)
            | RegenerateError::Read(_)
            | RegenerateError::Apply(_) => FailureKind::System,
        }
    }
}

impl Classify for crate::front::acme::AcmeError {
    fn kind(&self) -> FailureKind {
        FailureKind::System
    }
}

impl Classify for std::io::Error {
    fn kind(&self) -> FailureKind {
        FailureKind::System
    }
}

impl Classify for serde_json::Error {
    fn kind(&self) -> FailureKind {
        FailureKind::Failed
    }
}

impl Classify for crate::cluster::etcd::ClusterError {
    fn kind(&self) -> FailureKind {
        use crate::cluster::etcd::ClusterError;
        match self {
            ClusterError::NotInCluster(_) | ClusterError::Identity { .. } => FailureKind::Config,
            ClusterError::Runtime(_) => FailureKind::System,
            _ => FailureKind::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_exit_codes_are_unique() {
        let mut names: Vec<_> = FailureKind::ALL.iter().map(|k| k.name()).collect();
        let mut codes: Vec<_> = FailureKind::ALL.iter().map(|k| k.exit_code()).collect();
        names.sort_unstable();
        names.dedup();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(names.len(), FailureKind::ALL.len());
        assert_eq!(codes.len(), FailureKind::ALL.len());
    }

    #[test]
    fn the_serialised_kind_is_its_name() {
        for kind in FailureKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.name())
            );
        }
    }
}
