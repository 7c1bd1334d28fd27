//! The operator's host-wide settings, `/etc/srvctl/settings.json` (optional):
//!
//! ```json
//! { "company_domain": "company.net", "company_name": "Example Hosting", "login_shell": "/bin/bash" }
//! ```
//!
//! `company_domain` gives every container a preview name `<name-with-dashes>.<company_domain>`;
//! `company_name` brands the proxy's error pages; `operator_group` (optional) names a host group
//! whose members are operators of srvctl, like root ([`crate::access::Role`]); `login_shell` is
//! the accounts' shell (default [`DEFAULT_LOGIN_SHELL`]). Keys starting with `acme_` belong to the ACME
//! client ([`crate::front::acme`]), which reads and checks them itself. Any other key is an error, so a
//! typo does not pass silently. Errors name the file and the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::file::{self, FileError};
use crate::model::names::shown;
use crate::model::web::Domain;
use crate::system::System;
use crate::system::paths::Paths;

/// The settings file.
pub fn path(paths: &Paths) -> PathBuf {
    paths.host("/etc/srvctl/settings.json")
}

/// The accounts' login shell unless `login_shell` names another.
pub const DEFAULT_LOGIN_SHELL: &str = "/bin/bash";

/// What settings.json says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The domain of the preview names.
    pub company_domain: Option<Domain>,
    /// The name on the error pages.
    pub company_name: Option<String>,
    /// The host group whose members are operators.
    pub operator_group: Option<String>,
    /// The accounts' login shell, an absolute path.
    pub login_shell: Option<String>,
    /// Whether a site that redirects HTTP to HTTPS sends HSTS (`Strict-Transport-Security`,
    /// one year) over HTTPS: `"hsts": false` turns it off for every site.
    pub hsts: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            company_domain: None,
            company_name: None,
            operator_group: None,
            login_shell: None,
            hsts: true,
        }
    }
}

/// settings.json is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be read or is not a JSON object.
    #[error(transparent)]
    File(#[from] FileError),
    /// A field is wrong.
    #[error("{path}: field {field:?}: {msg}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        msg: String,
    },
}

/// The keys this module checks.
const KEYS: &[&str] = &[
    "company_domain",
    "company_name",
    "operator_group",
    "login_shell",
    "hsts",
];

/// Whether `name` can be a group name: a lower-case letter or `_`, then lower-case letters,
/// digits, `_` and `-`; at most 32 characters.
fn is_group_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.len() <= 32
}

impl Settings {
    /// The name on the error pages: `company_name`, else a neutral default.
    pub fn brand(&self) -> &str {
        self.company_name.as_deref().unwrap_or("This server")
    }

    /// The accounts' login shell: `login_shell`, else [`DEFAULT_LOGIN_SHELL`].
    pub fn login_shell(&self) -> &str {
        self.login_shell.as_deref().unwrap_or(DEFAULT_LOGIN_SHELL)
    }

    /// Read settings.json under `paths`; a missing file means the defaults.
    pub fn load(system: &dyn System, paths: &Paths) -> Result<Self, SettingsError> {
        let file = path(paths);
        match file::read(system, &file)? {
            Some(text) => Self::parse(&file, &text),
            None => Ok(Self::default()),
        }
    }

    /// Validate the text of settings.json; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SettingsError> {
        let fields = file::parse_object(path, text, "settings")?;
        let err = |field: &str, msg: String| SettingsError::Field {
            path: path.to_owned(),
            field: field.to_owned(),
            msg,
        };
        let mut out = Self::default();
        for (key, value) in &fields {
            if key.starts_with("acme_") {
                continue;
            }
            if key == "hsts" {
                match value {
                    Value::Bool(on) => out.hsts = *on,
                    Value::Null => {}
                    other => return Err(err(key, format!("must be true or false, not {other}"))),
                }
                continue;
            }
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                other => return Err(err(key, format!("must be a string, not {other}"))),
            };
            match key.as_str() {
                "company_domain" => {
                    out.company_domain =
                        Some(Domain::new(text).map_err(|e| err(key, e.to_string()))?)
                }
                "company_name" => {
                    if text.trim().is_empty()
                        || text.chars().count() > 100
                        || text.chars().any(char::is_control)
                    {
                        return Err(err(
                            key,
                            format!(
                                "{} is not printable text of 1 to 100 characters",
                                shown(text)
                            ),
                        ));
                    }
                    out.company_name = Some(text.clone());
                }
                "operator_group" => {
                    if !is_group_name(text) {
                        return Err(err(key, format!("{} is not a group name", shown(text))));
                    }
                    out.operator_group = Some(text.clone());
                }
                "login_shell" => {
                    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
                    if !text.starts_with('/') || text.len() > 256 || !text.chars().all(plain) {
                        return Err(err(
                            key,
                            format!(
                                "{} is not an absolute path of letters, digits and /._-+",
                                shown(text)
                            ),
                        ));
                    }
                    out.login_shell = Some(text.clone());
                }
                _ => {
                    return Err(err(
                        key,
                        format!(
                            "unknown setting; known: {} (and acme_* for the ACME client)",
                            KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse(Path::new("/etc/srvctl/settings.json"), text)
    }

    #[test]
    fn valid_and_default() {
        let s = parse(
            r#"{"company_domain": "Company.NET", "company_name": "Acme & Co", "acme_directory": "https://x", "operator_group": "srvctl-ops"}"#,
        )
        .unwrap();
        assert_eq!(s.operator_group.as_deref(), Some("srvctl-ops"));
        assert_eq!(s.company_domain.unwrap().as_str(), "company.net");
        assert_eq!(s.company_name.as_deref(), Some("Acme & Co"));
        assert_eq!(parse("{}").unwrap(), Settings::default());
        assert_eq!(Settings::default().brand(), "This server");
        assert_eq!(Settings::default().login_shell(), "/bin/bash");
        let zsh = parse(r#"{"login_shell": "/usr/bin/zsh"}"#).unwrap();
        assert_eq!(zsh.login_shell(), "/usr/bin/zsh");
        assert!(Settings::default().hsts);
        assert!(!parse(r#"{"hsts": false}"#).unwrap().hsts);
        assert!(parse(r#"{"hsts": "no"}"#).is_err());
    }

    #[test]
    fn errors_name_file_and_field() {
        for (text, field) in [
            (r#"{"company_domain": "not a domain"}"#, "company_domain"),
            (r#"{"company_domain": 7}"#, "company_domain"),
            (r#"{"company_name": "a\nb"}"#, "company_name"),
            (r#"{"login_shell": "bash"}"#, "login_shell"),
            (r#"{"login_shell": "/bin/sh -c x"}"#, "login_shell"),
            (r#"{"login_shell": "/bin/sh\n"}"#, "login_shell"),
            (r#"{"compnay_name": "x"}"#, "compnay_name"),
            (r#"{"operator_group": "Wheel"}"#, "operator_group"),
            (r#"{"operator_group": "ops\nx"}"#, "operator_group"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains("/etc/srvctl/settings.json") && e.contains(&format!("{field:?}")),
                "{e}"
            );
        }
        assert!(parse("[1]").is_err());
        assert!(parse("{").is_err());
    }
}
