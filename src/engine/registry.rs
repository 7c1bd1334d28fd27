//! The module registry: every area of generated configuration srvctl-regenerate keeps on a
//! host (containers, accounts, the host mesh, the `/etc/hosts` block, the HTTPS front) is one
//! [`Module`], and [`MODULES`] lists them all, in one place.
//!
//! Render, plan, apply and regenerate loop over the registry and know no area by name: a new
//! area (DNS, mail, an SSH gateway) is one new file holding its `impl Module` and one line in
//! [`MODULES`]. docs/architecture.md describes the flow and lists the modules; a test keeps that
//! list in step with this one.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::cluster::{Clusters, Host};
use crate::config::site::Settings;
use crate::engine::changeset::{Changes, Plan};
use crate::engine::templates::{TemplateError, Templates};
use crate::engine::tree::Tree;
use crate::front::certs::CertMeta;
use crate::model::State;
use crate::system::paths::Paths;
use crate::system::{Request, System};

/// Everything a module's render step reads: the datastore and the hand-written configuration,
/// already loaded, so rendering touches nothing.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// The datastore.
    pub state: &'a State,
    /// clusters.json.
    pub clusters: &'a Clusters,
    /// This host.
    pub me: &'a Host,
    /// settings.json.
    pub settings: &'a Settings,
    /// Where the ACME challenge responder listens (`acme_listen`), which the proxy forwards
    /// challenges to.
    pub acme_listen: std::net::SocketAddr,
    /// The templates (built in or overridden).
    pub templates: &'a Templates,
    /// The certificates installed for the containers the front serves (every container of the
    /// cluster but those being destroyed) and the default one, by name.
    pub certificates: &'a BTreeMap<String, CertMeta>,
    /// Whether this host holds its cluster identity (`cluster/host.crt`): the mesh and the
    /// etcd member need it.
    pub cluster_identity: bool,
    /// The membership this host's etcd member joined a running cluster with, if it was added
    /// to one ([`crate::cluster::enrol`]).
    pub joined: Option<&'a crate::cluster::enrol::Joined>,
    /// The host's current values of the kernel settings srvctl keeps floors for
    /// ([`crate::containers::limits`]).
    pub sysctl: &'a crate::containers::limits::Current,
    /// When the datastore was last written, in seconds since the epoch (0 when it does not
    /// exist): a number that grows with every change of the data, the DNS zones' serial.
    pub datastore_time: u32,
}

/// What a module's guard decided about the module's planned changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply them.
    Accept,
    /// Apply them, and tell the operator something (e.g. the checker is not installed).
    Note(String),
    /// Apply none of them: the module's old files stay and nothing of it reloads. The text
    /// says why.
    Refuse(String),
}

/// What a module's [`Module::update_live`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// The running service took the changes: it is not reloaded. The text says what changed.
    Updated(String),
    /// It could not take them: the module's reloads follow. The text says why.
    Failed(String),
}

/// One area of generated configuration.
pub trait Module: Sync {
    /// The module's name, as docs/architecture.md lists it.
    fn name(&self) -> &'static str;

    /// Add the files this module wants on the host to `tree` (paths relative to the host's
    /// root). Pure: reads only `inputs`.
    fn render(&self, inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError>;

    /// The paths (relative to the host's root) this module owns: directories it may write and
    /// remove in, or single files it owns whole. Apply refuses any change of the module outside
    /// them, and no two modules' paths overlap.
    fn owned_dirs(&self) -> &'static [&'static str];

    /// The reloads that changes at `changed` (paths this module owns) need.
    fn reloads(&self, changed: &[&Path]) -> Vec<Request>;

    /// The reloads that the removal of the files at `removed` (paths this module owns) needs.
    /// The default: those of [`Module::reloads`], as for any change.
    fn removal_reloads(&self, removed: &[&Path]) -> Vec<Request> {
        self.reloads(removed)
    }

    /// The bytes to write at `path` in place of the `rendered` ones, given the `live` file
    /// there (if any): for a file carrying a version that must change only with the rest of
    /// the file and must always grow (a zone's SOA serial), which render alone cannot know.
    /// Pure. `None` (the default): the rendered bytes.
    fn settle(&self, path: &Path, rendered: &[u8], live: Option<&[u8]>) -> Option<Vec<u8>> {
        let _ = (path, rendered, live);
        None
    }

    /// Decide whether the module's planned `changes` (of its rendered `tree`) may be applied.
    /// Most modules have nothing to check.
    fn guard(&self, system: &dyn System, paths: &Paths, tree: &Tree, changes: &Changes) -> Verdict {
        let _ = (system, paths, tree, changes);
        Verdict::Accept
    }

    /// Bring the module's running service to its planned `changes` without a reload, when it
    /// can; called before they are written, so the old files are still in place under `base`.
    /// `None` (the default) when it has no such way or the changes need a reload anyway: then
    /// the module's [`Module::reloads`] follow, as they do after [`Live::Failed`].
    fn update_live(&self, system: &dyn System, base: &Path, changes: &Changes) -> Option<Live> {
        let _ = (system, base, changes);
        None
    }

    /// Whether `path` lies in one of [`Module::owned_dirs`].
    fn owns(&self, path: &Path) -> bool {
        self.owned_dirs().iter().any(|d| path.starts_with(d))
    }
}

/// Every module, in the order regenerate renders, checks and applies them.
pub static MODULES: &[&dyn Module] = &[
    &crate::containers::render::Containers,
    &crate::containers::nat::Nat,
    &crate::containers::limits::Limits,
    &crate::accounts::userdb::Accounts,
    &crate::mesh::openvpn::Mesh,
    &crate::mesh::hosts_file::HostsFile,
    &crate::cluster::member::Etcd,
    &crate::front::guard::Front,
    &crate::dns::Dns,
    &crate::mail::Mail,
];

/// The module of `modules` that owns `path`, if any.
pub fn owner(modules: &[&'static dyn Module], path: &Path) -> Option<&'static dyn Module> {
    modules.iter().copied().find(|m| m.owns(path))
}

/// Render every module of `modules`, each into its own tree.
pub fn render(
    modules: &[&'static dyn Module],
    inputs: &Inputs,
) -> Result<Vec<(&'static dyn Module, Tree)>, TemplateError> {
    modules
        .iter()
        .map(|&module| {
            let mut tree = Tree::default();
            module.render(inputs, &mut tree)?;
            Ok((module, tree))
        })
        .collect()
}

/// Run the guard of every module on its part of `plan`; a refused part is left out whole (its
/// old files stay, nothing of it reloads). Returns the verdicts other than [`Verdict::Accept`],
/// with the module's name.
pub fn guard(plan: &mut Plan, system: &dyn System, paths: &Paths) -> Vec<(&'static str, Verdict)> {
    let mut said = Vec::new();
    for part in &mut plan.parts {
        let verdict = part.module.guard(system, paths, &part.tree, &part.changes);
        if matches!(verdict, Verdict::Refuse(_)) {
            part.refuse();
        }
        if verdict != Verdict::Accept {
            said.push((part.module.name(), verdict));
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = MODULES.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODULES.len());
    }

    #[test]
    fn no_two_modules_own_overlapping_paths() {
        let all: Vec<(&str, &Path)> = MODULES
            .iter()
            .flat_map(|m| m.owned_dirs().iter().map(|d| (m.name(), Path::new(*d))))
            .collect();
        for (i, (a, da)) in all.iter().enumerate() {
            assert!(
                crate::engine::tree::is_contained(da),
                "{a} owns a path that is not plain and relative: {da:?}"
            );
            for (b, db) in &all[i + 1..] {
                assert!(
                    !da.starts_with(db) && !db.starts_with(da),
                    "{a} ({da:?}) and {b} ({db:?}) overlap"
                );
            }
        }
    }

    #[test]
    fn the_architecture_document_lists_every_module() {
        let doc = include_str!("../../docs/architecture.md");
        let listed: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        let registered: Vec<&str> = MODULES.iter().map(|m| m.name()).collect();
        assert_eq!(
            listed, registered,
            "the module table of docs/architecture.md differs from MODULES"
        );
        for module in MODULES {
            for dir in module.owned_dirs() {
                assert!(
                    doc.contains(&format!("`/{dir}`")),
                    "docs/architecture.md does not name `/{dir}` of {}",
                    module.name()
                );
            }
        }
    }

    /// A module for the tests: owns `run/test`, renders what it is given, reloads `test.service`
    /// on any change, and refuses its changes when told to.
    struct Fixed {
        name: &'static str,
        dir: &'static [&'static str],
        files: &'static [(&'static str, &'static str)],
        refuse: bool,
        /// Whether its running service takes its changes without a reload.
        live: bool,
    }

    impl Module for Fixed {
        fn name(&self) -> &'static str {
            self.name
        }
        fn render(&self, _inputs: &Inputs, tree: &mut Tree) -> Result<(), TemplateError> {
            for (path, text) in self.files {
                tree.file(*path, (*text).to_owned());
            }
            Ok(())
        }
        fn owned_dirs(&self) -> &'static [&'static str] {
            self.dir
        }
        fn reloads(&self, changed: &[&Path]) -> Vec<Request> {
            (!changed.is_empty())
                .then(|| Request::Reload(format!("{}.service", self.name)))
                .into_iter()
                .collect()
        }
        fn update_live(&self, _: &dyn System, _: &Path, _: &Changes) -> Option<Live> {
            self.live
                .then(|| Live::Updated(format!("{} took it", self.name)))
        }
        fn guard(&self, _: &dyn System, _: &Paths, _: &Tree, _: &Changes) -> Verdict {
            if self.refuse {
                Verdict::Refuse(format!("{} is broken", self.name))
            } else {
                Verdict::Accept
            }
        }
    }

    static GOOD: Fixed = Fixed {
        name: "good",
        dir: &["run/good"],
        files: &[("run/good/a", "new a\n")],
        refuse: false,
        live: false,
    };
    static REFUSED: Fixed = Fixed {
        name: "refused",
        dir: &["run/refused"],
        files: &[("run/refused/b", "new b\n")],
        refuse: true,
        live: false,
    };
    static STRAY: Fixed = Fixed {
        name: "stray",
        dir: &["run/stray"],
        files: &[("run/stray/ok", "x\n"), ("etc/passwd", "evil\n")],
        refuse: false,
        live: false,
    };

    static LIVE: Fixed = Fixed {
        name: "live",
        dir: &["run/live"],
        files: &[("run/live/c", "new c\n")],
        refuse: false,
        live: true,
    };

    #[test]
    fn a_module_updated_live_is_written_but_not_reloaded() {
        let sys = crate::system::Recording::default();
        run(&sys, &[&GOOD, &LIVE]).unwrap();
        let read = |p: &str| sys.read(&Path::new("/r").join(p)).unwrap();
        assert_eq!(read("run/live/c").as_deref(), Some(&b"new c\n"[..]));
        assert_eq!(
            *sys.requests.borrow(),
            [Request::Reload("good.service".into())]
        );
    }

    /// Render, plan, guard and apply `modules` under `/r` with empty inputs.
    fn run(
        sys: &crate::system::Recording,
        modules: &[&'static dyn Module],
    ) -> Result<Vec<(&'static str, Verdict)>, crate::engine::apply::ApplyError> {
        let state = State::default();
        let clusters = Clusters::default();
        let me = Host {
            name: "h1.test".into(),
            cluster: "c".into(),
            host_ip: std::net::Ipv4Addr::new(192, 0, 2, 1),
            host_ip6: None,
            hostnet: crate::addr::plan::HostNet::new(1).unwrap(),
            gateway: None,
            prefix: None,
            dns1: None,
            dns2: None,
            ca: true,
            dns: None,
            extra: BTreeMap::new(),
        };
        let settings = Settings::default();
        let templates = Templates::load(&crate::system::Recording::default(), None).unwrap();
        let certificates = BTreeMap::new();
        let inputs = Inputs {
            state: &state,
            clusters: &clusters,
            me: &me,
            settings: &settings,
            acme_listen: crate::front::acme::DEFAULT_LISTEN.parse().unwrap(),
            templates: &templates,
            certificates: &certificates,
            cluster_identity: false,
            joined: None,
            sysctl: &Default::default(),
            datastore_time: 0,
        };
        let base = Path::new("/r");
        let manifest = base.join("run/m");
        let previous = crate::engine::apply::read_manifest(sys, &manifest, modules).unwrap();
        let rendered = render(modules, &inputs).unwrap();
        let mut plan =
            crate::engine::changeset::plan_modules(rendered, base, &previous, sys).unwrap();
        let said = guard(&mut plan, sys, &Paths::rooted(base));
        let applied = crate::engine::apply::apply(sys, base, &plan, Path::new("run/m"))?;
        assert_eq!(applied.reloads, *sys.requests.borrow());
        Ok(said)
    }

    #[test]
    fn apply_refuses_a_change_outside_the_modules_paths() {
        let sys = crate::system::Recording::default();
        let err = run(&sys, &[&GOOD, &STRAY]).unwrap_err();
        assert!(
            matches!(&err, crate::engine::apply::ApplyError::NotOwned { module: "stray", path }
                if path == Path::new("etc/passwd")),
            "{err}"
        );
        // Refused before anything was written, by any module.
        assert!(sys.writes.borrow().is_empty(), "{:?}", sys.writes.borrow());
        assert!(sys.requests.borrow().is_empty());
    }

    #[test]
    fn a_refused_guard_keeps_that_modules_files_and_the_others_apply() {
        let sys = crate::system::Recording::default();
        let old = |p: &str, text: &str| {
            sys.write(&Path::new("/r").join(p), text.as_bytes(), 0o644, false)
                .unwrap()
        };
        old("run/good/a", "old a\n");
        old("run/refused/b", "old b\n");
        old("run/refused/gone", "old\n");
        old("run/m", "run/good/a\nrun/refused/b\nrun/refused/gone\n");
        let said = run(&sys, &[&GOOD, &REFUSED]).unwrap();
        assert_eq!(
            said,
            [("refused", Verdict::Refuse("refused is broken".into()))]
        );
        let read = |p: &str| sys.read(&Path::new("/r").join(p)).unwrap();
        assert_eq!(read("run/good/a").as_deref(), Some(&b"new a\n"[..]));
        assert_eq!(read("run/refused/b").as_deref(), Some(&b"old b\n"[..]));
        assert_eq!(read("run/refused/gone").as_deref(), Some(&b"old\n"[..]));
        assert_eq!(
            *sys.requests.borrow(),
            [Request::Reload("good.service".into())]
        );
        // The refused module's old files stay in the manifest, so a later run still owns them.
        assert_eq!(
            read("run/m").as_deref(),
            Some(&b"run/good/a\nrun/refused/b\nrun/refused/gone\n"[..])
        );
    }
}
