//! The `sc` program: parse, check privilege, run one command, print, audit.

mod args;
mod authorized_keys;
mod bulk;
mod certificates;
mod client;
mod cluster;
mod container;
mod install;
mod manuals;
mod output;
mod regenerate;
mod service;
mod sync;
mod tools;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use args::{Cli, Command};
use args::{NewKind, PutKind};
pub use authorized_keys::authorized_keys_main;
pub use regenerate::regenerate_main;
pub use service::service_main;
pub use sync::sync_main;

use crate::access::Caller;
use crate::accounts::keys;
use crate::config::cluster::{Clusters, Host};
use crate::failure::{Classify, FailureKind};
use crate::ops::audit::{self, AuditRecord};
use crate::ops::views::{self, Kind};
use crate::ops::{self, Change, Context, FollowUpError, Services};
use crate::store;
use crate::system::paths::Paths;
use crate::system::{Local, System};
use output::Output;

/// A failure, printed as one line on stderr (and under `--json` as an error object on
/// stdout), with the exit status of its kind.
#[derive(Debug)]
pub struct Failure {
    kind: FailureKind,
    message: String,
    code: u8,
    /// The report of the change that was committed before this failure (a step that follows
    /// it failed), for the error object under `--json`.
    committed: Option<serde_json::Value>,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: kind.exit_code(),
            committed: None,
        }
    }

    /// A failure already reported (e.g. by a program whose exit code is passed through).
    fn silent(code: u8) -> Self {
        Self {
            kind: FailureKind::Failed,
            message: String::new(),
            code,
            committed: None,
        }
    }

    /// A failed write to stdout. A reader that went away (`sc status | head -1`) ends the
    /// command quietly with the status of a process killed by SIGPIPE; any other error is
    /// reported.
    fn from_stdout(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Self::silent(128 + 13)
        } else {
            Self::from(e)
        }
    }

    /// Print `text` and a newline on stdout.
    fn print(text: &str) -> Result<(), Self> {
        writeln!(std::io::stdout(), "{text}").map_err(Self::from_stdout)
    }

    /// The same failure, its message prefixed with `context`.
    fn context(self, context: &str) -> Self {
        Self {
            message: format!("{context}{}", self.message),
            ..self
        }
    }

    /// The same failure, after the change that made `report` was committed.
    fn after_commit(self, report: Option<serde_json::Value>) -> Self {
        Self {
            committed: report,
            ..self
        }
    }

    /// Report the failure and turn it into the exit status: one line on stderr, and under
    /// `json` the error object on stdout.
    fn exit(self, program: &str, json: bool) -> ExitCode {
        ExitCode::from(self.report(program, json))
    }

    /// [`Failure::exit`], as the number.
    fn report(self, program: &str, json: bool) -> u8 {
        if self.message.is_empty() {
            return self.code;
        }
        let message = self.message.replace('\n', " ");
        if json {
            let mut object = serde_json::json!({ "error": {
                "kind": self.kind,
                "exit_code": self.code,
                "message": message,
            }});
            if let Some(report) = self.committed {
                object["error"]["committed"] = report;
            }
            // The error line on stderr says it all if stdout is gone.
            let _ = Self::print(&format!("{object:#}"));
        }
        eprintln!("{program}: error: {message}");
        self.code
    }

    /// The audit outcome of a command that ended this way.
    fn outcome(result: &Result<(), Self>) -> String {
        match result {
            Ok(()) => "ok".into(),
            Err(f) => f.audit_outcome(),
        }
    }

    /// The audit outcome of a command that failed this way.
    fn audit_outcome(&self) -> String {
        if self.message.is_empty() {
            format!("exit {}", self.code)
        } else {
            format!("error: {}", self.message.replace('\n', " "))
        }
    }
}

impl<E: std::fmt::Display + Classify> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

/// Who runs the command, on which host, when, and the machine it runs on.
struct Invocation<'s> {
    system: &'s dyn System,
    paths: Paths,
    hostname: String,
    caller: Caller,
    now: String,
    argv: Vec<String>,
    /// The client's terminal type, for a shell it opens through the service (`None` when `sc`
    /// runs directly: its programs inherit `TERM`).
    term: Option<String>,
    /// Whether the command came through the privileged service, which never opens a path its
    /// caller names.
    through_service: bool,
    /// Whether the command was audited already (a request through the service is audited
    /// once, whatever it was).
    audited: std::cell::Cell<bool>,
}

impl<'s> Invocation<'s> {
    fn detect(system: &'s dyn System, paths: Paths, argv: Vec<String>, caller: Caller) -> Self {
        Self {
            system,
            paths,
            hostname: system.hostname(),
            caller,
            now: system.now().to_string(),
            argv,
            term: None,
            through_service: false,
            audited: std::cell::Cell::new(false),
        }
    }

    fn clusters(&self) -> Result<Clusters, Failure> {
        Ok(Clusters::load(self.system, &self.paths.clusters())?)
    }

    /// The datastore of this host ([`store::open`]: the cluster's through etcd, or the local
    /// document); a host without clusters.json is a single host.
    fn store(&self) -> Result<Box<dyn store::Store + 's>, Failure> {
        let clusters = match self.system.kind(&self.paths.clusters()) {
            None => Clusters::default(),
            Some(_) => self.clusters()?,
        };
        Ok(store::open(
            self.system,
            &self.paths,
            &clusters,
            &self.hostname,
        ))
    }

    /// The machine (systemd requests are only printed under a scratch root).
    fn system(&self) -> &'s dyn System {
        self.system
    }

    fn audit(&self, outcome: &str) {
        self.audited.set(true);
        let record = AuditRecord {
            time: &self.now,
            user: &self.caller.name,
            host: &self.hostname,
            command: &self.argv,
            outcome,
        };
        append_audit(self.system, &self.paths, &record);
    }

    /// Audit the end of a request through the service, unless the command audited itself.
    fn audit_request(&self, result: &Result<(), Failure>) {
        if !self.audited.get() {
            self.audit(&Failure::outcome(result));
        }
    }
}

/// Audit a request through the service that was refused before it ran: `argv` from `peer`
/// (named by its account, or else by the host's user database), now, on this host.
fn audit_refusal(
    system: &dyn System,
    paths: &Paths,
    peer: &crate::system::socket::Peer,
    argv: &[String],
    refusal: &Failure,
) {
    let user = service::caller(system, paths, peer)
        .map(|c| c.name)
        .unwrap_or_else(|_| crate::access::login_name(peer.uid));
    let record = AuditRecord {
        time: &system.now().to_string(),
        user: &user,
        host: &system.hostname(),
        command: argv,
        outcome: &refusal.audit_outcome(),
    };
    append_audit(system, paths, &record);
}

/// Append `record` to the audit log; a log that cannot be written is a warning.
fn append_audit(system: &dyn System, paths: &Paths, record: &AuditRecord<'_>) {
    if let Err(e) = audit::append(system, paths, record) {
        eprintln!("sc: warning: cannot append to the audit log: {e}");
    }
}

impl ops::Audit for Invocation<'_> {
    fn record(&self, outcome: &str) {
        self.audit(outcome);
    }
}

/// The caller of `sc` run directly by real UID `uid`: an operator (root, or anyone on a
/// scratch root of its own). Root's sudo caller (`SUDO_USER`) is the name audited; for anyone
/// else the variable means nothing.
fn local_caller(system: &dyn System, uid: u32) -> Caller {
    if uid != 0 {
        return Caller::operator(uid, &crate::access::login_name(uid));
    }
    match system.env("SUDO_USER").and_then(|u| u.into_string().ok()) {
        Some(u) if crate::model::names::AccountName::new(&u).is_ok() || u == "root" => {
            Caller::operator(0, &u)
        }
        _ => Caller::operator_root(),
    }
}

/// Run `sc` with the process's arguments: as root (or on a scratch root) right here, else as
/// a request to the privileged service.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let json = wants_json(&argv);
    let uid = nix::unistd::getuid().as_raw();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(_) if argv.len() <= 1 => return help_instead_of_nothing(&argv, uid),
        // The help of sc lists the custom commands of whoever runs it.
        Err(e) if is_top_help(&e) => {
            return usage_error(help_with_custom_commands(&argv, uid), "sc", json);
        }
        Err(e) => return usage_error(e, "sc", json),
    };
    let paths = rooted(cli.root.clone());
    // The one machine of this run: systemd requests are only printed under a scratch root.
    let system = Local::new(paths.root().is_some());
    let includes = tools::Includes::of(&system, &paths, uid);
    if let (Command::Container(words), Some(includes)) = (&cli.command, &includes)
        && let Some(result) = includes.run(&system, &paths, &words[0], &words[1..])
    {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => f.exit("sc", cli.json),
        };
    }
    let args: Vec<String> = argv.into_iter().skip(1).collect();
    if paths.root().is_none()
        && !nix::unistd::geteuid().is_root()
        && !cli.command.is_self_description()
        && !cli.command.runs_as_caller()
    {
        return ExitCode::from(client::request(&system, &args, cli.json));
    }
    let caller = local_caller(&system, uid);
    let inv = Invocation::detect(&system, paths, args, caller);
    let mut out = Output::new(cli.json);
    let result = run(&cli, &inv, &mut out);
    match out.finish(result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("sc", cli.json),
    }
}

/// The paths of this run: under `root` when one is given.
fn rooted(root: Option<PathBuf>) -> Paths {
    root.map(Paths::rooted).unwrap_or_else(Paths::system)
}

/// The value of `--root DIR` or `--root=DIR` before any `--` or command words, for finding
/// the custom commands that `sc --help` lists before the command line is parsed.
fn root_argument(argv: &[String]) -> Option<PathBuf> {
    let mut words = argv.iter().skip(1).take_while(|a| *a != "--");
    while let Some(word) = words.next() {
        if word == "--root" {
            return words.next().map(PathBuf::from);
        }
        if let Some(dir) = word.strip_prefix("--root=") {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

/// Whether clap answered with a help text (`sc --help`, `sc help`, `sc CMD --help`).
fn is_top_help(e: &clap::Error) -> bool {
    e.kind() == clap::error::ErrorKind::DisplayHelp
}

/// `sc` with no arguments at all: the text of `sc --help` (custom commands included) on
/// stderr, and the exit status of a usage failure (2), as clap's `arg_required_else_help`
/// does (which does not fire when `SRVCTL_ROOT` is set, as it counts the variable as an
/// argument).
fn help_instead_of_nothing(argv: &[String], uid: u32) -> ExitCode {
    let program = argv.first().map_or("sc", String::as_str);
    let asked = [program.to_owned(), "--help".to_owned()];
    eprint!("{}", help_with_custom_commands(&asked, uid).render());
    ExitCode::from(FailureKind::Usage.exit_code())
}

/// Clap's answer to `argv` (a request for help) with the custom commands of user `uid`,
/// found where `--root` says, added to the help of `sc`.
fn help_with_custom_commands(argv: &[String], uid: u32) -> clap::Error {
    let system = Local::new(true);
    let root = root_argument(argv).or_else(|| system.env("SRVCTL_ROOT").map(PathBuf::from));
    let section = tools::Includes::of(&system, &rooted(root), uid)
        .map(|i| i.help_section(&system))
        .unwrap_or_default();
    let mut command = Cli::command();
    if !section.is_empty() {
        let help = format!(
            "{}{section}",
            command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
        );
        command = command.after_help(help);
    }
    match command.try_get_matches_from(argv) {
        Err(e) => e,
        Ok(_) => unreachable!("the same command line asks for help again"),
    }
}

/// Run one request of the privileged service: `args` (without the program name) for the
/// peer the kernel reported, on the machine of this service. Everything it prints goes to the
/// standard streams (the client's). Every request is audited once, refusals too.
fn serve(
    system: &dyn System,
    paths: Paths,
    peer: &crate::system::socket::Peer,
    args: Vec<String>,
    term: Option<String>,
) -> u8 {
    let argv: Vec<String> = std::iter::once("sc".to_owned())
        .chain(args.iter().cloned())
        .collect();
    let json = wants_json(&argv);
    let caller = match service::caller(system, &paths, peer) {
        Ok(caller) => caller,
        Err(f) => {
            audit_refusal(system, &paths, peer, &args, &f);
            return f.report("sc", json);
        }
    };
    let inv = Invocation {
        term,
        through_service: true,
        ..Invocation::detect(system, paths, args, caller)
    };
    let (result, json) = match Cli::try_parse_from(&argv) {
        Err(e) => match usage(e, "sc") {
            Ok(code) => return code,
            Err(f) => (Err(f), json),
        },
        Ok(cli) if cli.root.is_some() => (
            Err(Failure::new(
                FailureKind::Permission,
                "--root is not accepted through the srvctl service; a scratch tree is run as `sc --root DIR` by its owner",
            )),
            cli.json,
        ),
        Ok(cli) => {
            let mut out = Output::new(cli.json);
            let result = run(&cli, &inv, &mut out);
            (out.finish(result), cli.json)
        }
    };
    inv.audit_request(&result);
    let code = match result {
        Ok(()) => 0,
        Err(f) => f.report("sc", json),
    };
    let _ = std::io::stdout().flush();
    code
}

/// Whether a command line that did not parse asked for JSON: `--json` before any `--`.
fn wants_json(argv: &[String]) -> bool {
    argv.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Clap's help and version go out whole; its errors as one usage failure.
fn usage_error(e: clap::Error, program: &str, json: bool) -> ExitCode {
    match usage(e, program) {
        Ok(code) => ExitCode::from(code),
        Err(f) => f.exit(program, json),
    }
}

/// Print clap's help or version and give the exit status, or turn its error into a usage
/// failure.
fn usage(e: clap::Error, program: &str) -> Result<u8, Failure> {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return Ok(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    Err(Failure::new(
        FailureKind::Usage,
        format!("{first} (see '{program} --help')"),
    ))
}

fn run(cli: &Cli, inv: &Invocation, out: &mut Output) -> Result<(), Failure> {
    if inv.through_service
        && (cli.command.runs_as_caller()
            || matches!(
                cli.command,
                Command::ExecFunction { .. } | Command::UpdateInstall { .. }
            ))
    {
        return Err(Failure::new(
            FailureKind::Permission,
            "this command runs as its caller in sc itself, never through the srvctl service \
             (exec-function, update-install: run it as root)",
        ));
    }
    if let Command::Man { dir: Some(dir) } = &cli.command {
        let written = manuals::write_all(inv.system(), dir)?;
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        return out.list(&names);
    }
    if cli.command.is_self_description() {
        return describe(&cli.command);
    }
    match &cli.command {
        Command::Diagnose => tools::diagnose(inv, out),
        Command::ExecFunction { command } => tools::exec_function(inv, command),
        Command::UpdateInstall { dry_run, hostname } => {
            install::update_install(inv, out, *dry_run, hostname.as_deref())
        }
        Command::Ls { dir } => tools::ls(inv.system(), out, dir.as_deref()),
        Command::Customize { name, print } => {
            let includes = tools::Includes::of(inv.system(), &inv.paths, inv.caller.uid);
            tools::customize(inv.system(), includes.as_ref(), out, name, *print)
        }
        Command::Get { kind, name, field } => get(inv, out, *kind, name, field),
        Command::Out { kind, name } => {
            let fields = record_fields(inv, *kind, name)?;
            out.shell(*kind, &fields)
        }
        Command::Status => {
            let live = if inv.paths.root().is_some() {
                None
            } else {
                container::live_states(inv.system(), None)?
            };
            let elsewhere = match live {
                Some(_) => cluster_reports(inv),
                None => None,
            };
            out.status(&views::status(
                &inv.caller.visible(store::read(inv.system(), &inv.paths)?),
                &inv.hostname,
                &live,
                elsewhere.as_ref(),
            ))
        }
        Command::Names { kind } => {
            let state = inv.caller.visible(store::read(inv.system(), &inv.paths)?);
            let names: Vec<String> = match kind {
                args::NewKind::Container => {
                    state.containers.keys().map(|n| n.to_string()).collect()
                }
                args::NewKind::User => state.users.keys().map(|n| n.to_string()).collect(),
                args::NewKind::Reseller => state.resellers.keys().map(|n| n.to_string()).collect(),
            };
            out.list(&names)
        }
        Command::ExecAll { command } => bulk::exec_all(inv, out, command),
        Command::AllContainers { action } => {
            let action = match action {
                args::PowerAction::Start => container::Action::Start,
                args::PowerAction::Stop => container::Action::Stop,
                args::PowerAction::Restart => container::Action::Restart,
            };
            bulk::all_containers(inv, out, &action)
        }
        Command::Version => out.versions(&ops::versions::versions(inv.system(), &inv.paths)),
        Command::Certificates { action: None } => certificates::list(inv, cli.json),
        Command::Certificates {
            action: Some(args::CertificatesAction::Renew { name, force }),
        } => {
            crate::access::operator_only(&inv.caller, "certificates renew")?;
            certificates::renew(inv, cli.json, name.as_deref(), *force)
        }
        Command::Cluster { action } => cluster::run(inv, out, cli.json, action),
        Command::Regenerate { what: None } => {
            crate::access::operator_only(&inv.caller, "regenerate")?;
            regenerate::sc_regenerate(inv.system(), &inv.paths, out)
        }
        Command::Regenerate {
            what: Some(args::RegenerateWhat::AllHosts),
        } => {
            crate::access::operator_only(&inv.caller, "regenerate all-hosts")?;
            let clusters = inv.clusters()?;
            if !crate::cluster::is_replicated(&clusters, &inv.hostname) {
                return regenerate::sc_regenerate(inv.system(), &inv.paths, out);
            }
            let conn = crate::cluster::etcd::Connection::open(
                inv.system(),
                &inv.paths,
                &clusters,
                &inv.hostname,
            )?;
            let revision = crate::cluster::feed::ask_all_hosts(&conn, &inv.hostname, &inv.now)?;
            out.value(&format!(
                "asked every host of cluster {} to regenerate (etcd revision {revision})",
                conn.cluster()
            ))
        }
        Command::Regenerate {
            what: Some(args::RegenerateWhat::Rootfs { image }),
        } => {
            crate::access::operator_only(&inv.caller, "regenerate rootfs")?;
            regenerate::rootfs(inv, out, image.as_deref())
        }
        Command::Container(args) => {
            let (name, action) = container::parse(args)?;
            container::act(inv, out, &name, action)
        }
        Command::Publickeys { user } => {
            let state = store::read(inv.system(), &inv.paths)?;
            crate::access::keys_of(&inv.caller, &state, user.as_deref())?;
            out.keys(&keys::list(
                &state,
                inv.caller.key_owner(),
                user.as_deref(),
            )?)
        }
        Command::AddPublickey { args } => {
            let (account, arg) = args::user_and_argument(args);
            let key = keys::read_key_argument(arg, inv.system(), inv.caller.uid == 0)?;
            let change = Change::AddPublicKey { account, key: &key };
            self::change(inv, out, false, None, &change)
        }
        Command::ImportV3 { dir, dry_run } => {
            let clusters = inv.clusters()?;
            let change = Change::Import {
                dir,
                clusters: &clusters,
            };
            self::change(inv, out, *dry_run, None, &change)
        }
        other => {
            let clusters = needs_clusters(other).then(|| inv.clusters()).transpose()?;
            let host = match clusters.as_ref() {
                Some(c) => placement_host(c, &inv.hostname, other)?,
                None => None,
            };
            self::change(inv, out, false, host, &request(other))
        }
    }
}

fn needs_clusters(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::AddVe { .. }
            | Command::New {
                kind: NewKind::Container,
                ..
            }
    )
}

/// The change a datastore command asks for.
fn request(cmd: &Command) -> Change<'_> {
    match cmd {
        Command::AddReseller { name }
        | Command::New {
            kind: NewKind::Reseller,
            name,
            ..
        } => Change::AddReseller { name },
        Command::AddUser { name, reseller }
        | Command::New {
            kind: NewKind::User,
            name,
            reseller,
            ..
        } => Change::AddUser {
            name,
            reseller: reseller.as_deref(),
        },
        Command::AddVe { name, placement }
        | Command::New {
            kind: NewKind::Container,
            name,
            placement,
            ..
        } => Change::AddContainer {
            name,
            owner: placement.user.as_deref(),
            image: placement.image.as_deref(),
            start: !placement.no_start,
        },
        Command::DestroyVe { name, force } => Change::DestroyContainer {
            name,
            force: *force,
        },
        Command::Del {
            kind: NewKind::Container,
            name,
        } => Change::DestroyContainer { name, force: false },
        Command::DestroyUser { name }
        | Command::Del {
            kind: NewKind::User,
            name,
        } => Change::DestroyUser { name },
        Command::DestroyReseller { name }
        | Command::Del {
            kind: NewKind::Reseller,
            name,
        } => Change::DestroyReseller { name },
        Command::RemovePublickey { args } => {
            let (account, which) = args::user_and_argument(args);
            Change::RemovePublicKey { account, which }
        }
        Command::Put {
            kind,
            name,
            key,
            value,
        } => {
            let value = value.as_deref();
            match kind {
                PutKind::Container => Change::PutContainer { name, key, value },
                PutKind::User => Change::PutUser { name, key, value },
            }
        }
        Command::Get { .. }
        | Command::Out { .. }
        | Command::Status
        | Command::Names { .. }
        | Command::Version
        | Command::ExecAll { .. }
        | Command::AllContainers { .. }
        | Command::Regenerate { .. }
        | Command::Certificates { .. }
        | Command::Cluster { .. }
        | Command::Container(_)
        | Command::ImportV3 { .. }
        | Command::Publickeys { .. }
        | Command::AddPublickey { .. }
        | Command::Completion { .. }
        | Command::Ls { .. }
        | Command::Diagnose
        | Command::ExecFunction { .. }
        | Command::UpdateInstall { .. }
        | Command::Customize { .. }
        | Command::Man { .. } => {
            unreachable!("read-only commands are dispatched in run()")
        }
    }
}

/// On a host that uses the cluster datastore, what the other hosts last reported of their containers. When the
/// cluster cannot be asked, says on stderr that the view is this host's cache (stale) and
/// leaves the other hosts' containers `unknown`. `None` on a host alone.
fn cluster_reports(inv: &Invocation) -> Option<views::Elsewhere> {
    let clusters = inv.clusters().ok()?;
    if !crate::cluster::uses_datastore(inv.system(), &inv.paths, &clusters, &inv.hostname) {
        return None;
    }
    let now = inv.system().now();
    let sync = crate::cluster::sync::read_status(inv.system(), &inv.paths);
    let stale = |why: &str| {
        let cache = sync
            .as_ref()
            .and_then(|s| {
                s.current_at
                    .as_ref()
                    .map(|at| format!(" (current at {at}, revision {})", s.revision))
            })
            .unwrap_or_default();
        eprintln!("sc: stale: {why}; this is {}'s cache{cache}", inv.hostname);
        Some(views::Elsewhere {
            reports: Default::default(),
            now,
        })
    };
    if let Some(sync) = &sync
        && !sync.connected
    {
        return stale(
            sync.error
                .as_deref()
                .unwrap_or("the cluster datastore is unreachable"),
        );
    }
    let read =
        crate::cluster::etcd::Connection::open(inv.system(), &inv.paths, &clusters, &inv.hostname)
            .and_then(|conn| crate::cluster::live::read(&conn));
    match read {
        Ok(reports) => Some(views::Elsewhere { reports, now }),
        Err(e) => stale(&e.to_string()),
    }
}

/// The host a command places its container on: `--host H` of `sc add-ve`, which must be a host
/// of this host's cluster, else this host.
fn placement_host<'c>(
    clusters: &'c Clusters,
    hostname: &str,
    command: &Command,
) -> Result<Option<&'c Host>, Failure> {
    let me = clusters.host(hostname);
    let chosen = match command {
        Command::AddVe { placement, .. }
        | Command::New {
            kind: NewKind::Container,
            placement,
            ..
        } => placement.host.as_deref(),
        _ => None,
    };
    let Some(chosen) = chosen else {
        return Ok(me);
    };
    match (me, clusters.host(chosen)) {
        (Some(me), Some(host)) if host.cluster == me.cluster => Ok(Some(host)),
        (Some(me), _) => Err(Failure::new(
            FailureKind::NotFound,
            format!(
                "--host {}: not a host of cluster {} in clusters.json",
                crate::model::names::shown(chosen),
                me.cluster
            ),
        )),
        (None, _) => Ok(None),
    }
}

/// Run `change` in the datastore's transaction, print what it did (under `--json`, once the
/// command ends: [`Output::finish`]), then (unless `dry_run`) perform the steps that follow
/// it.
fn change(
    inv: &Invocation,
    out: &mut Output,
    dry_run: bool,
    host: Option<&Host>,
    change: &Change<'_>,
) -> Result<(), Failure> {
    let reserved = crate::model::claims::Reserved::load(inv.system(), &inv.paths);
    let store = inv.store()?;
    let env = Services {
        store: &*store,
        system: inv.system(),
        paths: &inv.paths,
        audit: inv,
        live_systemd: inv.paths.root().is_none(),
    };
    let ctx = Context {
        host,
        hostname: &inv.hostname,
        caller: &inv.caller,
        now: &inv.now,
        reserved: &reserved,
        accounts: crate::model::claims::host_accounts(&inv.paths),
    };
    let done = ops::transaction::run(&env, &ctx, change, dry_run)?;
    out.report(&done.report)?;
    if dry_run {
        return Ok(());
    }
    ops::follow_up::perform(&env, &done.steps).map_err(|e| match e {
        FollowUpError::NotStarted { .. } => Failure::from(e),
        e => Failure::from(e).context("the datastore is updated, but "),
    })?;
    if let Some(call) = &done.hook {
        warn_after_hooks(
            "sc",
            &ops::hooks::after(inv.system(), &inv.paths, &inv.hostname, call),
        );
    }
    Ok(())
}

/// Report the failures of after hooks: warnings, the change stays.
fn warn_after_hooks(program: &str, failures: &[ops::hooks::HookError]) {
    for failure in failures {
        eprintln!("{program}: warning: {failure}; the change stays");
    }
}

/// The fields of a record. The outer error is a datastore or clusters.json that cannot be
/// read; the inner one says the record is not there (or its name is invalid).
fn lookup(
    inv: &Invocation,
    kind: Kind,
    name: &str,
) -> Result<Result<views::Fields, ops::OpError>, Failure> {
    let state = inv.caller.visible(store::read(inv.system(), &inv.paths)?);
    let clusters = if kind == Kind::Host {
        inv.clusters()?
    } else {
        Clusters::default()
    };
    Ok(views::fields(&state, &clusters, kind, name))
}

fn record_fields(inv: &Invocation, kind: Kind, name: &str) -> Result<views::Fields, Failure> {
    Ok(lookup(inv, kind, name)??)
}

fn get(
    inv: &Invocation,
    out: &mut Output,
    kind: Kind,
    name: &str,
    field: &str,
) -> Result<(), Failure> {
    if field == "exist" || field == "exists" {
        return match lookup(inv, kind, name)? {
            Ok(_) => out.value("true"),
            Err(ops::OpError::NotFound { .. } | ops::OpError::Name(_)) => out.value("false"),
            Err(e) => Err(e.into()),
        };
    }
    let fields = record_fields(inv, kind, name)?;
    match fields.iter().find(|(k, _)| k == field) {
        Some((_, v)) => out.value(v),
        None if views::known_fields(kind).contains(&field) => Err(Failure::new(
            FailureKind::Unset,
            format!("{field:?} is not set for {name}"),
        )),
        None => Err(Failure::new(
            FailureKind::Usage,
            format!(
                "{} has no field {}; known fields: {}",
                crate::model::names::shown(name),
                crate::model::names::shown(field),
                views::known_fields(kind).join(", ")
            ),
        )),
    }
}

/// Appended to clap's bash completion: where a command takes the name of a record, the names
/// the caller may see (`sc names KIND`, through the service for anyone but root) are offered
/// besides clap's words.
const BASH_NAMES: &str = r#"
# The names of records where a command takes one, from `sc names KIND`.
_sc_with_names() {
    local cur=${COMP_WORDS[COMP_CWORD]} kind=
    case "$COMP_CWORD:${COMP_WORDS[1]}" in
        1:*) kind=container ;;
        2:destroy-ve | 2:destroy-container) kind=container ;;
        2:destroy-user | 2:add-publickey | 2:publickeys | 2:remove-publickey) kind=user ;;
        2:destroy-reseller) kind=reseller ;;
        3:get | 3:out | 3:put | 3:del) kind=${COMP_WORDS[2]} ;;
    esac
    _sc "$@"
    case "$kind" in
        container | user | reseller)
            local IFS=$'\n'
            COMPREPLY+=($(compgen -W "$("${COMP_WORDS[0]}" names "$kind" 2>/dev/null)" -- "$cur"))
            ;;
    esac
}
complete -F _sc_with_names -o bashdefault -o default sc srvctl
"#;

fn describe(cmd: &Command) -> Result<(), Failure> {
    let mut app = Cli::command();
    let mut stdout = std::io::stdout();
    match cmd {
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut app, "sc", &mut stdout);
            if *shell == clap_complete::Shell::Bash {
                stdout.write_all(BASH_NAMES.as_bytes())?;
            }
        }
        _ => manuals::write_sc(&mut stdout)?,
    }
    stdout.flush()?;
    Ok(())
}

/// The man page's EXIT STATUS section (roff): every failure kind with its status.
fn exit_status_section() -> String {
    let mut roff = String::from(
        ".SH \"EXIT STATUS\"\nEvery refused command prints one line on stderr; under \\fB\\-\\-json\\fR \
         it also prints {\"error\": {\"kind\", \"exit_code\", \"message\"}} on stdout. \
         \\fBsc NAME exec\\fR passes the command's own exit status through.\n.TP\n\\fB0\\fR\nsuccess\n",
    );
    for kind in FailureKind::ALL {
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR {}\n{}\n",
            kind.exit_code(),
            kind.name().replace('-', "\\-"),
            kind.meaning()
        ));
    }
    roff
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::{Clock, Recording};

    #[test]
    fn the_audit_record_takes_clock_caller_host_and_log_from_the_system() {
        let system = Recording {
            environment: [("SUDO_USER".into(), "alice".into())].into(),
            hostname: "h1.test".into(),
            ..Recording::default()
        };
        let paths = Paths::rooted("/r");
        let caller = local_caller(&system, 0);
        let inv = Invocation::detect(&system, paths.clone(), vec!["add-ve".into()], caller);
        inv.audit("ok");
        let log = system.read(&paths.audit_log()).unwrap().expect("audit log");
        let record: serde_json::Value = serde_json::from_slice(&log).unwrap();
        assert_eq!(record["time"], Clock::START.to_string());
        assert_eq!(record["user"], "alice");
        assert_eq!(record["host"], "h1.test");
        assert_eq!(record["command"], serde_json::json!(["add-ve"]));
    }

    #[test]
    fn sudo_user_names_only_roots_caller() {
        let system = Recording {
            environment: [("SUDO_USER".into(), "alice".into())].into(),
            ..Recording::default()
        };
        assert_eq!(local_caller(&system, 0).name, "alice");
        let other = local_caller(&system, 4242);
        assert_eq!(other.uid, 4242);
        assert_ne!(other.name, "alice");
    }
}
