//! Accounts of srvctl users as JSON user records in `/run/userdb`, read by nss-systemd.
//!
//! Why userdb and not sysusers.d: the records live in /run, so they are rebuilt from the
//! datastore at every boot and regenerate; removing a user removes its record and nothing else;
//! /etc/passwd is never edited; and the UID/GID come from the datastore, identical on every
//! host. sysusers.d only ever adds system accounts and never removes them.

use serde_json::json;

use crate::engine::tree::{Entry, Tree};
use crate::model::State;

/// Directory of the records.
pub const USERDB: &str = "run/userdb";

/// Add a user and a group record (plus the UID/GID links nss-systemd looks up) per account:
/// home `/home/NAME`, login shell `shell`.
pub fn render(tree: &mut Tree, state: &State, shell: &str) {
    for (name, u) in &state.users {
        let mut user = json!({
            "userName": name.as_str(),
            "uid": u.uid,
            "gid": u.gid,
            "homeDirectory": crate::accounts::homes::home_path(name),
            "shell": shell,
            "disposition": "regular",
        });
        if let Some(real) = &u.display_name {
            user["realName"] = json!(real);
        }
        let group = json!({ "groupName": name.as_str(), "gid": u.gid, "disposition": "regular" });
        for (kind, id, record) in [("user", u.uid, user), ("group", u.gid, group)] {
            let mut bytes = serde_json::to_vec_pretty(&record).expect("serialisable");
            bytes.push(b'\n');
            tree.insert(
                format!("{USERDB}/{name}.{kind}"),
                Entry::File { bytes, mode: 0o644 },
            );
            tree.link(format!("{USERDB}/{id}.{kind}"), format!("{name}.{kind}"));
        }
    }
}

/// The accounts module: the userdb records. nss-systemd reads them when asked, so they need
/// no reload.
pub struct Accounts;

impl crate::engine::registry::Module for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn render(
        &self,
        inputs: &crate::engine::registry::Inputs,
        tree: &mut Tree,
    ) -> Result<(), crate::engine::templates::TemplateError> {
        render(tree, inputs.state, inputs.settings.login_shell());
        Ok(())
    }

    fn owned_dirs(&self) -> &'static [&'static str] {
        &[USERDB]
    }

    fn reloads(&self, _changed: &[&std::path::Path]) -> Vec<crate::system::Request> {
        Vec::new()
    }
}
