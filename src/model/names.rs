//! Identifiers that can only be built valid: container names and account names.
//!
//! Every name that reaches a generated file, a unit name or a path goes through one of these
//! types, so no input (newlines, quotes, `../`, a leading `-`, huge values) can inject a line or
//! escape a directory.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} name is empty")]
    Empty {
        /// What kind of name it was.
        kind: &'static str,
    },
    /// The name is longer than allowed.
    #[error("{kind} name is too long ({len} characters; at most {max})")]
    TooLong {
        /// What kind of name it was.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character that is not allowed.
    #[error("{kind} name {shown} is invalid: {why}")]
    Invalid {
        /// What kind of name it was.
        kind: &'static str,
        /// The name, escaped for display.
        shown: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Quote a string for an error message so control characters stay visible and on one line.
pub fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    let mut out = format!("{cut:?}");
    if cut.len() < s.len() {
        out.push('…');
    }
    out
}

/// Longest container name: systemd limits machine names to 64 characters.
pub const CONTAINER_NAME_MAX: usize = 64;
/// Longest account name: what useradd and userdb accept portably.
pub const ACCOUNT_NAME_MAX: usize = 31;

/// Refuse an empty name or one longer than `max` characters.
fn check_length(kind: &'static str, raw: &str, max: usize) -> Result<(), NameError> {
    let len = raw.chars().count();
    match len {
        0 => Err(NameError::Empty { kind }),
        len if len > max => Err(NameError::TooLong { kind, len, max }),
        _ => Ok(()),
    }
}

/// The error for `raw` being an invalid name of `kind`, given why.
fn invalid<'a>(kind: &'static str, raw: &'a str) -> impl Fn(&'static str) -> NameError + 'a {
    move |why| NameError::Invalid {
        kind,
        shown: shown(raw),
        why,
    }
}

/// Refuse `raw` unless it is shaped like a Linux login name of `kind`: at most `max`
/// characters, lower-case letters, digits and `-`, starting with a letter.
fn check_login_shape(kind: &'static str, raw: &str, max: usize) -> Result<(), NameError> {
    let invalid = invalid(kind, raw);
    check_length(kind, raw, max)?;
    if !raw.as_bytes()[0].is_ascii_lowercase() {
        return Err(invalid("it must start with a lower-case letter"));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("use only lower-case letters, digits and '-'"));
    }
    Ok(())
}

/// A container name: a DNS name (the site's domain, or e.g. `alpha.ve`), lower-case, usable as
/// a systemd machine name, a unit instance and a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    /// Validate and normalise (lower-case) a container name.
    pub fn new(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "container";
        let invalid = invalid(KIND, raw);
        check_length(KIND, raw, CONTAINER_NAME_MAX)?;
        let name = raw.to_ascii_lowercase();
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(invalid(
                "use only letters, digits, '-' and '.' (a DNS name such as example.com)",
            ));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(invalid("empty label (leading, trailing or double '.')"));
            }
            if label.len() > 63 {
                return Err(invalid("a DNS label is longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("a DNS label may not start or end with '-'"));
            }
        }
        if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(invalid("a name may not be all digits"));
        }
        Ok(Self(name))
    }
}

/// An account name: a reseller or a user, valid as a Linux user name on every host.
///
/// Lower-case letters, digits and `-`, starting with a letter. `_` is excluded because it
/// separates the parts of a `USER_VE_VEUSER` SSH login.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountName(String);

/// Well-known names of system accounts (Debian's and Fedora's base system, and the services
/// srvctl runs beside), sorted: never srvctl accounts. Names starting with `systemd-` or `_`
/// are system accounts too ([`is_system_account`]).
const SYSTEM_ACCOUNTS: &[&str] = &[
    "adm",
    "admin",
    "avahi",
    "backup",
    "bin",
    "bind",
    "chrony",
    "daemon",
    "dnsmasq",
    "dovecot",
    "dovenull",
    "etcd",
    "games",
    "gnats",
    "haproxy",
    "irc",
    "list",
    "lp",
    "mail",
    "man",
    "messagebus",
    "named",
    "news",
    "nobody",
    "nogroup",
    "ntp",
    "opendkim",
    "openvpn",
    "operator",
    "polkitd",
    "postfix",
    "proxy",
    "root",
    "sshd",
    "staff",
    "sudo",
    "sync",
    "sys",
    "systemd",
    "tss",
    "users",
    "uucp",
    "wheel",
    "www-data",
];

/// Whether `name` is a well-known system account name (see [`SYSTEM_ACCOUNTS`]).
pub fn is_system_account(name: &str) -> bool {
    SYSTEM_ACCOUNTS.binary_search(&name).is_ok()
        || name.starts_with("systemd-")
        || name.starts_with('_')
}

impl AccountName {
    /// Validate an account name.
    pub fn new(raw: &str) -> Result<Self, NameError> {
        const KIND: &str = "account";
        check_login_shape(KIND, raw, ACCOUNT_NAME_MAX)?;
        if is_system_account(raw) {
            return Err(invalid(KIND, raw)("the name is reserved for the system"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// Longest login name inside a container: what useradd accepts portably.
pub const CONTAINER_LOGIN_MAX: usize = 32;

/// A login name inside a container (the VEUSER of a `USER_VE_VEUSER` SSH login): `root`,
/// `www` or an account added with `sc NAME add-user`. Lower-case letters, digits and `-`,
/// starting with a letter, at most 32 characters: a POSIX login name without `_`, which
/// separates the parts of the gateway login.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerLogin(String);

impl ContainerLogin {
    /// Validate a login name.
    pub fn new(raw: &str) -> Result<Self, NameError> {
        check_login_shape("container login", raw, CONTAINER_LOGIN_MAX)?;
        Ok(Self(raw.to_owned()))
    }
}

macro_rules! name_traits {
    ($t:ty) => {
        impl $t {
            /// The name as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                <$t>::new(&raw).map_err(serde::de::Error::custom)
            }
        }
        impl std::str::FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                <$t>::new(s)
            }
        }
    };
}
name_traits!(ContainerName);
name_traits!(AccountName);
name_traits!(ContainerLogin);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn container_names_are_lower_cased() {
        assert_eq!(
            ContainerName::new("Web.Example.COM").unwrap().as_str(),
            "web.example.com"
        );
    }

    #[test]
    fn hostile_container_names_are_refused() {
        let long = "a".repeat(300);
        for bad in [
            "", "bad name", "a\nb", "../x", "-rf", "a/b", "a..b", ".a", "a.", "x-.y", "a'b",
            "a\"b", "1.2.3.4", &long,
        ] {
            assert!(ContainerName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn account_names() {
        assert!(AccountName::new("bob").is_ok());
        assert!(AccountName::new("bob-2").is_ok());
        for bad in [
            "",
            "Bob",
            "2bob",
            "bo_b",
            "root",
            "a b",
            "a\n",
            &"a".repeat(32),
        ] {
            assert!(AccountName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn container_logins() {
        for good in ["root", "www", "deploy-2", &"a".repeat(32)] {
            assert!(ContainerLogin::new(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "Www",
            "2x",
            "a_b",
            "_a",
            "-a",
            "a b",
            "a\n",
            "a/b",
            "a:b",
            &"a".repeat(33),
        ] {
            assert!(ContainerLogin::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn system_accounts_are_sorted_for_the_lookup() {
        assert!(SYSTEM_ACCOUNTS.windows(2).all(|w| w[0] < w[1]));
        for name in SYSTEM_ACCOUNTS {
            assert!(is_system_account(name), "{name}");
        }
        assert!(is_system_account("systemd-network") && !is_system_account("bob"));
    }

    #[test]
    fn error_line_is_single_line() {
        let e = ContainerName::new("a\nb").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    proptest! {
        #[test]
        fn valid_container_names_are_safe_everywhere(s in "\\PC{0,80}") {
            if let Ok(n) = ContainerName::new(&s) {
                let n = n.as_str();
                prop_assert!(n.len() <= CONTAINER_NAME_MAX);
                prop_assert!(!n.contains('/') && !n.contains("..") && !n.starts_with('-'));
                prop_assert!(n.bytes().all(|b| b.is_ascii_graphic()));
            }
        }

        #[test]
        fn valid_account_names_are_safe_everywhere(s in "\\PC{0,40}") {
            if let Ok(n) = AccountName::new(&s) {
                let n = n.as_str();
                prop_assert!(n.len() <= ACCOUNT_NAME_MAX);
                prop_assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
    }
}
