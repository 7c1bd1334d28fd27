//! The fields an operator may set with `sc put`, each validated before it is stored.

use serde::{Deserialize, Serialize};

use crate::model::names::shown;

/// A value refused by `sc put`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// The key cannot be set.
    #[error("{key:?} cannot be set; settable keys: {keys}")]
    UnknownKey {
        /// The key given.
        key: String,
        /// The keys that can be set.
        keys: String,
    },
    /// The value is not valid for the key.
    #[error("invalid value {value} for {key}: expected {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value, escaped.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Per-container settings: backend ports, resource limits, enablement, image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSettings {
    /// Backend port for HTTP (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// Backend port for HTTPS (default 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_port: Option<u16>,
    /// systemd MemoryMax= of the container's unit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "size_on_load"
    )]
    pub memory_max: Option<String>,
    /// systemd CPUWeight= of the container's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    /// systemd TasksMax= of the container's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_max: Option<u32>,
    /// A disabled container is kept but not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Base image the root filesystem came from.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "image_on_load"
    )]
    pub image: Option<String>,
}

/// A text setting read from the datastore must pass the check `sc put` applies: a hand-edited
/// value such as `"512M\nExecStartPre=…"` would otherwise reach a unit file. A failure sets
/// the whole record aside.
fn checked_on_load<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &str,
    ok: fn(&str) -> bool,
) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(raw) if !ok(&raw) => Err(serde::de::Error::custom(format!(
            "invalid value {} for {key}",
            shown(&raw)
        ))),
        value => Ok(value),
    }
}

fn size_on_load<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_on_load(d, "memory_max", is_size)
}

fn image_on_load<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_on_load(d, "image", is_image)
}

/// Keys of [`ContainerSettings`] with what each expects.
pub const CONTAINER_KEYS: &[(&str, &str)] = &[
    ("http_port", "a port, 1..=65535"),
    ("https_port", "a port, 1..=65535"),
    ("memory_max", "a size such as 512M, 2G or infinity"),
    ("cpu_weight", "a weight, 1..=10000"),
    ("tasks_max", "a count, 1..=4194304"),
    ("disabled", "true or false"),
    ("image", "an image name: lower-case letters, digits, '-'"),
];

/// Keys of a user that can be set.
pub const USER_KEYS: &[(&str, &str)] = &[
    ("display_name", "printable text, at most 100 characters"),
    ("email", "an e-mail address"),
];

fn expected(
    keys: &[(&'static str, &'static str)],
    key: &str,
) -> Result<(&'static str, &'static str), SettingError> {
    keys.iter()
        .find(|(k, _)| *k == key)
        .copied()
        .ok_or_else(|| SettingError::UnknownKey {
            key: key.to_owned(),
            keys: keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
        })
}

fn parse<T: std::str::FromStr + PartialOrd>(
    key: &'static str,
    expect: &'static str,
    raw: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, SettingError> {
    raw.parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| bad(key, expect, raw))
}

fn bad(key: &'static str, expected: &'static str, raw: &str) -> SettingError {
    SettingError::BadValue {
        key,
        value: shown(raw),
        expected,
    }
}

fn checked(
    key: &'static str,
    expect: &'static str,
    raw: &str,
    ok: bool,
) -> Result<String, SettingError> {
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(bad(key, expect, raw))
    }
}

fn is_size(raw: &str) -> bool {
    if raw == "infinity" {
        return true;
    }
    let digits = raw.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(raw);
    !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_image(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 32
        && raw.as_bytes()[0].is_ascii_lowercase()
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_email(raw: &str) -> bool {
    let Some((local, domain)) = raw.split_once('@') else {
        return false;
    };
    raw.len() <= 254
        && !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'\\<>@,;:".contains(&b))
        && crate::model::names::ContainerName::new(domain).is_ok()
}

fn is_text(raw: &str) -> bool {
    raw.chars().count() <= 100 && !raw.chars().any(char::is_control)
}

impl ContainerSettings {
    /// Set `key` to `value`, or back to its default when `value` is `None`.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), SettingError> {
        let (key, expect) = expected(CONTAINER_KEYS, key)?;
        let port = |raw| parse::<u16>(key, expect, raw, 1..=u16::MAX);
        match (key, value) {
            ("http_port", v) => self.http_port = v.map(port).transpose()?,
            ("https_port", v) => self.https_port = v.map(port).transpose()?,
            ("memory_max", v) => {
                self.memory_max = v.map(|r| checked(key, expect, r, is_size(r))).transpose()?
            }
            ("cpu_weight", v) => {
                self.cpu_weight = v.map(|r| parse(key, expect, r, 1..=10_000)).transpose()?
            }
            ("tasks_max", v) => {
                self.tasks_max = v
                    .map(|r| parse(key, expect, r, 1..=4_194_304))
                    .transpose()?
            }
            ("disabled", v) => {
                self.disabled = v.map(|r| parse(key, expect, r, false..=true)).transpose()?
            }
            ("image", v) => {
                self.image = v
                    .map(|r| checked(key, expect, r, is_image(r)))
                    .transpose()?
            }
            _ => unreachable!("every key of CONTAINER_KEYS is handled"),
        }
        Ok(())
    }

    /// Check every value that is set the way [`ContainerSettings::set`] does (ranges,
    /// formats): the loader refuses what `sc put` refuses.
    pub fn check(&self) -> Result<(), SettingError> {
        let mut fresh = Self::default();
        for (key, value) in self.values() {
            fresh.set(key, Some(&value))?;
        }
        Ok(())
    }

    /// The settings that are set, as text, in the order of [`CONTAINER_KEYS`].
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let fields: [(&str, Option<String>); 7] = [
            ("http_port", self.http_port.map(|v| v.to_string())),
            ("https_port", self.https_port.map(|v| v.to_string())),
            ("memory_max", self.memory_max.clone()),
            ("cpu_weight", self.cpu_weight.map(|v| v.to_string())),
            ("tasks_max", self.tasks_max.map(|v| v.to_string())),
            ("disabled", self.disabled.map(|v| v.to_string())),
            ("image", self.image.clone()),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// Validate `value` for the user field `key` (`None` resets it): the field's name and the value
/// to store. [`crate::model::User::set`] stores it.
pub fn user_value(
    key: &str,
    value: Option<&str>,
) -> Result<(&'static str, Option<String>), SettingError> {
    let (key, expect) = expected(USER_KEYS, key)?;
    let ok: fn(&str) -> bool = match key {
        "display_name" => is_text,
        "email" => is_email,
        _ => unreachable!("every key of USER_KEYS is handled"),
    };
    let value = value.map(|r| checked(key, expect, r, ok(r))).transpose()?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_settings_validate_and_reset() {
        let mut s = ContainerSettings::default();
        s.set("http_port", Some("8080")).unwrap();
        s.set("memory_max", Some("512M")).unwrap();
        s.set("disabled", Some("true")).unwrap();
        assert_eq!(s.http_port, Some(8080));
        assert_eq!(s.values().len(), 3);
        for (k, v) in [
            ("http_port", "0"),
            ("http_port", "70000"),
            ("memory_max", "12X"),
            ("memory_max", "1\nMemoryMax=1"),
            ("cpu_weight", "0"),
            ("disabled", "yes"),
            ("image", "../x"),
        ] {
            let before = s.clone();
            assert!(s.set(k, Some(v)).is_err(), "{k}={v:?} accepted");
            assert_eq!(s, before);
        }
        assert!(matches!(
            s.set("nope", Some("1")),
            Err(SettingError::UnknownKey { .. })
        ));
        s.set("http_port", None).unwrap();
        assert_eq!(s.http_port, None);
    }

    #[test]
    fn hand_edited_settings_are_checked_on_load() {
        let load = |v: serde_json::Value| serde_json::from_value::<ContainerSettings>(v);
        assert_eq!(
            load(serde_json::json!({"memory_max": "512M", "image": "debian-13"}))
                .unwrap()
                .memory_max
                .as_deref(),
            Some("512M")
        );
        assert!(load(serde_json::json!({"memory_max": null})).is_ok());
        assert!(load(serde_json::json!({"memory_max": "512M\n[Service]"})).is_err());
        assert!(load(serde_json::json!({"image": "x\nBind=/"})).is_err());
    }

    #[test]
    fn checks_text_and_email() {
        assert!(is_email("a.b@example.com"));
        assert!(!is_email("a@b@c"));
        assert!(!is_email("a\n@example.com"));
        assert!(is_text("Bob Builder"));
        assert!(!is_text("Bob\nroot::0:0"));
    }
}
