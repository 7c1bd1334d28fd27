//! The tera templates of every generated file: built in, and overridable by a file of the
//! same name in `/etc/srvctl/templates/`.

use std::path::Path;

use serde::Serialize;

use crate::system::System;

/// The built-in templates, by name (the file names under `templates/` of the source tree).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "container.nspawn",
        include_str!("../../templates/container.nspawn"),
    ),
    (
        "container-host0.network",
        include_str!("../../templates/container-host0.network"),
    ),
    (
        "bridge.netdev",
        include_str!("../../templates/bridge.netdev"),
    ),
    (
        "bridge.network",
        include_str!("../../templates/bridge.network"),
    ),
    (
        "masquerade.nft",
        include_str!("../../templates/masquerade.nft"),
    ),
    (
        "nspawn-unit.conf",
        include_str!("../../templates/nspawn-unit.conf"),
    ),
    (
        "nspawn-defaults.conf",
        include_str!("../../templates/nspawn-defaults.conf"),
    ),
    (
        "start-batch.target",
        include_str!("../../templates/start-batch.target"),
    ),
    (
        "mesh-server.conf",
        include_str!("../../templates/mesh-server.conf"),
    ),
    (
        "mesh-client.conf",
        include_str!("../../templates/mesh-client.conf"),
    ),
    ("hosts", include_str!("../../templates/hosts")),
    (
        "etcd.conf.yml",
        include_str!("../../templates/etcd.conf.yml"),
    ),
    ("haproxy.cfg", include_str!("../../templates/haproxy.cfg")),
    ("error.html", include_str!("../../templates/error.html")),
];

/// A template failed to parse or render.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct TemplateError {
    name: String,
    #[source]
    source: tera::Error,
}

/// The parsed templates.
pub struct Templates {
    tera: tera::Tera,
}

impl Templates {
    /// The built-in templates, each replaced by `override_dir/NAME` when that file exists.
    pub fn load(system: &dyn System, override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        for (name, text) in BUILT_IN {
            let custom = override_dir
                .and_then(|d| system.read(&d.join(name)).ok().flatten())
                .and_then(|bytes| String::from_utf8(bytes).ok());
            tera.add_raw_template(name, custom.as_deref().unwrap_or(text))
                .map_err(|source| TemplateError {
                    name: (*name).into(),
                    source,
                })?;
        }
        Ok(Self { tera })
    }

    /// Render template `name` with `data`.
    pub fn render(&self, name: &str, data: &impl Serialize) -> Result<String, TemplateError> {
        let err = |source| TemplateError {
            name: name.into(),
            source,
        };
        let ctx = tera::Context::from_serialize(data).map_err(err)?;
        self.tera.render(name, &ctx).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    #[test]
    fn built_ins_parse_and_overrides_apply() {
        let system = Recording::default();
        assert!(Templates::load(&system, None).is_ok());
        let dir = Path::new("/etc/srvctl/templates");
        let custom = b"custom {{ entries | length }}";
        system
            .write(&dir.join("hosts"), custom, 0o644, false)
            .unwrap();
        let t = Templates::load(&system, Some(dir)).unwrap();
        let out = t
            .render("hosts", &serde_json::json!({"entries": [1, 2]}))
            .unwrap();
        assert_eq!(out, "custom 2");
    }
}
