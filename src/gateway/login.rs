//! The login name of the SSH gateway: `USER_CONTAINER_LOGIN`, e.g.
//! `bob_bob-site.example.com_www`.
//!
//! Account names and container names cannot hold `_`, and neither can container logins, so the
//! name splits unambiguously at its first and its last `_`. Each part is validated with the
//! model's name types; the container part must already be lower-case, so that a login has one
//! spelling only and the name a user record answers for is exactly the name asked for.

use std::fmt;

use crate::model::Owner;
use crate::model::names::{ContainerLogin, ContainerName, NameError, shown};

/// A well-formed gateway login: who authenticates, into which container, as which account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// USER: the srvctl account whose keys open the session (`root`: the operator).
    pub user: Owner,
    /// VE: the container.
    pub container: ContainerName,
    /// VEUSER: the account inside the container.
    pub login: ContainerLogin,
}

/// Why a name is not a gateway login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Not three parts separated by `_`.
    #[error(
        "{0} is no gateway login: log in as USER_CONTAINER_LOGIN, e.g. bob_bob-site.example.com_www"
    )]
    Shape(String),
    /// A part is not a valid name.
    #[error("gateway login {login}: {source}")]
    Part {
        /// The whole login, escaped for display.
        login: String,
        /// What is wrong with the part.
        source: NameError,
    },
    /// The container part is not written in lower case.
    #[error("gateway login {0}: write the container name in lower case")]
    NotLowerCase(String),
}

impl Login {
    /// Parse `USER_CONTAINER_LOGIN`.
    pub fn parse(raw: &str) -> Result<Self, LoginError> {
        let shape = || LoginError::Shape(shown(raw));
        let (user, rest) = raw.split_once('_').ok_or_else(shape)?;
        let (container, login) = rest.rsplit_once('_').ok_or_else(shape)?;
        let part = |source| LoginError::Part {
            login: shown(raw),
            source,
        };
        let user = Owner::parse(user).map_err(part)?;
        let name = ContainerName::new(container).map_err(part)?;
        if name.as_str() != container {
            return Err(LoginError::NotLowerCase(shown(raw)));
        }
        Ok(Self {
            user,
            container: name,
            login: ContainerLogin::new(login).map_err(part)?,
        })
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.user, self.container, self.login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_parts_split_at_the_first_and_last_underscore() {
        let login = Login::parse("bob_bob-site.example.com_www").unwrap();
        assert_eq!(login.user.to_string(), "bob");
        assert_eq!(login.container.as_str(), "bob-site.example.com");
        assert_eq!(login.login.as_str(), "www");
        assert_eq!(login.to_string(), "bob_bob-site.example.com_www");
        let operator = Login::parse("root_alpha.ve_root").unwrap();
        assert_eq!(operator.user, Owner::Operator);
    }

    #[test]
    fn hostile_and_malformed_logins_are_refused() {
        let long_user = format!("{}_web.ve_root", "a".repeat(32));
        let long_login = format!("bob_web.ve_{}", "a".repeat(33));
        for bad in [
            "",
            "bob",
            "bob_web.ve",
            "_web.ve_root",
            "bob_web.ve_",
            "bob__root",
            "bob_web_ve_root",
            "bob_Web.ve_root",
            "Bob_web.ve_root",
            "bob_web.ve_Root",
            "bob_web.ve_root\n",
            "bob\n_web.ve_root",
            "bob_web.ve/../x_root",
            "bob_-web.ve_root",
            "bob_web.ve_-x",
            "bob_web.ve_ro:ot",
            "bob_web ve_root",
            "bob_1.2.3.4_root",
            "www-data_web.ve_root",
            "systemd-x_web.ve_root",
            &long_user,
            &long_login,
        ] {
            assert!(Login::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_are_one_line_and_say_what_a_login_looks_like() {
        let e = Login::parse("bob\nx").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("USER_CONTAINER_LOGIN"), "{e}");
        let e = Login::parse("bob_Web.ve_root").unwrap_err().to_string();
        assert!(e.contains("lower case"), "{e}");
        let e = Login::parse("bob_web.ve_a b").unwrap_err().to_string();
        assert!(e.contains("container login name"), "{e}");
    }

    proptest! {
        #[test]
        fn a_parsed_login_prints_as_it_was_written(s in "\\PC{0,80}") {
            if let Ok(login) = Login::parse(&s) {
                prop_assert_eq!(login.to_string(), s);
            }
        }

        #[test]
        fn well_formed_parts_always_parse(
            user in "[a-z][a-z0-9-]{0,20}",
            container in "[a-z][a-z0-9]{0,10}\\.[a-z]{2,6}",
            login in "[a-z][a-z0-9-]{0,20}",
        ) {
            prop_assume!(!crate::model::names::is_system_account(&user) || user == "root");
            let raw = format!("{user}_{container}_{login}");
            let parsed = Login::parse(&raw).unwrap();
            prop_assert_eq!(parsed.login.as_str(), login.as_str());
        }
    }
}
