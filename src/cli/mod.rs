//! The `sc` program: parse, check privilege, run one command, print, audit.

mod args;
mod certificates;
mod container;
mod follow_up;
mod output;
mod regenerate;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use args::{Cli, Command};
use args::{NewKind, PutKind};
pub use regenerate::regenerate_main;

use crate::audit::{self, AuditRecord};
use crate::cluster::Clusters;
use crate::model::State;
use crate::ops::{self, Context};
use crate::paths::Paths;
use crate::store::{self, Writer};
use crate::system::Local;
use crate::views::{self, Kind};
use output::Output;

/// Exit status of `sc get` when the field is known but not set (srvctl 3's convention).
const EXIT_UNSET: u8 = 100;

/// A failure, printed as one line.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// A failure already reported (e.g. by a program whose exit code is passed through).
    fn silent(code: u8) -> Self {
        Self {
            message: String::new(),
            code,
        }
    }

    /// Print the failure as one line on stderr and turn it into the exit status.
    fn exit(self, program: &str) -> ExitCode {
        if self.message.is_empty() {
            return ExitCode::from(self.code);
        }
        eprintln!("{program}: error: {}", self.message.replace('\n', " "));
        ExitCode::from(self.code)
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            message: e.to_string(),
            code: 1,
        }
    }
}

/// Who runs the command, on which host, when.
struct Invocation {
    paths: Paths,
    hostname: String,
    caller: String,
    now: String,
    argv: Vec<String>,
}

impl Invocation {
    fn detect(cli: &Cli, argv: Vec<String>) -> Self {
        let paths = cli
            .root
            .clone()
            .map(Paths::rooted)
            .unwrap_or_else(Paths::system);
        let hostname = crate::system::hostname();
        Self {
            paths,
            hostname,
            caller: caller_name(),
            now: jiff::Timestamp::now().to_string(),
            argv,
        }
    }

    fn clusters(&self) -> Result<Clusters, Failure> {
        Ok(Clusters::load(&self.paths.clusters())?)
    }

    fn audit(&self, outcome: &str) {
        let record = AuditRecord {
            time: &self.now,
            user: &self.caller,
            host: &self.hostname,
            command: &self.argv,
            outcome,
        };
        if let Err(e) = audit::append(&self.paths, &record) {
            eprintln!("sc: warning: cannot append to the audit log: {e}");
        }
    }
}

/// The invoking user: the sudo caller when run through sudo, else the real user.
fn caller_name() -> String {
    if let Ok(u) = std::env::var("SUDO_USER")
        && (crate::names::AccountName::new(&u).is_ok() || u == "root")
    {
        return u;
    }
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Run `sc` with the process's arguments.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, "sc"),
    };
    let inv = Invocation::detect(&cli, argv.into_iter().skip(1).collect());
    let mut out = Output::new(cli.json);
    match run(&cli, &inv, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit("sc"),
    }
}

/// Clap's help and version go out whole; its errors as one line.
fn usage_error(e: clap::Error, program: &str) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
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
    eprintln!("{program}: error: {first} (see '{program} --help')");
    ExitCode::from(2)
}

fn run(cli: &Cli, inv: &Invocation, out: &mut Output) -> Result<(), Failure> {
    if cli.command.is_self_description() {
        return describe(&cli.command);
    }
    if inv.paths.root().is_none() && !nix::unistd::geteuid().is_root() {
        return Err(Failure::from(
            "srvctl changes system state and needs root: run it with sudo (or use --root DIR for a scratch tree)",
        ));
    }
    match &cli.command {
        Command::Get { kind, name, field } => get(inv, out, *kind, name, field),
        Command::Out { kind, name } => {
            let fields = record_fields(inv, *kind, name)?;
            out.shell(*kind, &fields)
        }
        Command::Status => {
            let live = if inv.paths.root().is_some() {
                None
            } else {
                container::live_states(&Local::new(false))?
            };
            out.status(&views::status(
                &store::read(&inv.paths)?,
                &inv.hostname,
                &live,
            ))
        }
        Command::Certificates { action: None } => certificates::list(inv, cli.json),
        Command::Certificates {
            action: Some(args::CertificatesAction::Renew { name, force }),
        } => certificates::renew(inv, cli.json, name.as_deref(), *force),
        Command::Regenerate { what: None } => regenerate::sc_regenerate(&inv.paths, out),
        Command::Regenerate {
            what: Some(args::RegenerateWhat::Rootfs { image }),
        } => regenerate::rootfs(inv, out, image.as_deref()),
        Command::Container(args) => {
            let (name, action) = container::parse(args)?;
            container::act(inv, out, &name, action)
        }
        Command::ImportV3 { dir, dry_run } => {
            let clusters = inv.clusters()?;
            change(inv, out, *dry_run, |state, ctx| {
                let report = crate::import_v3::import(state, &clusters, ctx, dir)?;
                Ok(output::Report::Import(report))
            })
        }
        other => {
            let clusters = needs_clusters(other).then(|| inv.clusters()).transpose()?;
            change(inv, out, false, |state, ctx| {
                let host = clusters.as_ref().and_then(|c| c.host(&inv.hostname));
                let ctx = Context {
                    host,
                    ..ctx.clone()
                };
                mutate(state, &ctx, other)
            })
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

fn mutate(state: &mut State, ctx: &Context<'_>, cmd: &Command) -> Result<output::Report, Failure> {
    use output::Report;
    Ok(match cmd {
        Command::AddReseller { name }
        | Command::New {
            kind: NewKind::Reseller,
            name,
            ..
        } => Report::Reseller(ops::add_reseller(state, ctx, name)?),
        Command::AddUser { name, reseller }
        | Command::New {
            kind: NewKind::User,
            name,
            reseller,
            ..
        } => Report::User(ops::add_user(state, ctx, name, reseller.as_deref())?),
        Command::AddVe { name, placement }
        | Command::New {
            kind: NewKind::Container,
            name,
            placement,
            ..
        } => {
            let mut added = ops::add_container(state, ctx, name, placement.user.as_deref())?;
            if let Some(image) = &placement.image {
                ops::put_container(state, added.name.as_str(), "image", Some(image))?;
                added.image = image.clone();
            }
            Report::Container(added)
        }
        Command::DestroyVe { name }
        | Command::Del {
            kind: NewKind::Container,
            name,
        } => Report::Removed(ops::destroy_container(state, name)?),
        Command::DestroyUser { name }
        | Command::Del {
            kind: NewKind::User,
            name,
        } => Report::Removed(ops::destroy_user(state, name)?),
        Command::DestroyReseller { name }
        | Command::Del {
            kind: NewKind::Reseller,
            name,
        } => Report::Removed(ops::destroy_reseller(state, name)?),
        Command::Put {
            kind,
            name,
            key,
            value,
        } => {
            let value = value.as_deref();
            match kind {
                PutKind::Container => ops::put_container(state, name, key, value)?,
                PutKind::User => ops::put_user(state, name, key, value)?,
            }
            Report::Set {
                name: name.clone(),
                key: key.clone(),
                value: value.map(str::to_owned),
            }
        }
        Command::Get { .. }
        | Command::Out { .. }
        | Command::Status
        | Command::Regenerate { .. }
        | Command::Certificates { .. }
        | Command::Container(_)
        | Command::ImportV3 { .. }
        | Command::Completion { .. }
        | Command::Man => {
            unreachable!("read-only commands are dispatched in run()")
        }
    })
}

/// Lock, load, apply `edit`, commit (unless `dry_run`), audit, print.
fn change(
    inv: &Invocation,
    out: &mut Output,
    dry_run: bool,
    edit: impl FnOnce(&mut State, &Context<'_>) -> Result<output::Report, Failure>,
) -> Result<(), Failure> {
    let reserved = crate::claims::Reserved::load(&inv.paths);
    let ctx = Context {
        host: None,
        hostname: &inv.hostname,
        caller: &inv.caller,
        now: &inv.now,
        reserved: &reserved,
        accounts: crate::claims::host_accounts(&inv.paths),
    };
    let result: Result<output::Report, Failure> = (|| {
        let (mut writer, mut state): (Writer, State) = Writer::lock(&inv.paths)?;
        let report = edit(&mut state, &ctx)?;
        if !dry_run {
            writer.commit(&state)?;
        }
        Ok(report)
    })();
    match result {
        Ok(report) => {
            out.report(&report)?;
            if dry_run {
                return Ok(());
            }
            inv.audit("ok");
            let system = Local::new(inv.paths.root().is_some());
            follow_up::perform(&system, &inv.paths, &follow_up::steps(&report))
                .map_err(|f| Failure::from(format!("the datastore is updated, but {}", f.message)))
        }
        Err(f) => {
            inv.audit(&format!("error: {}", f.message));
            Err(f)
        }
    }
}

/// The fields of a record. The outer error is a datastore or clusters.json that cannot be
/// read; the inner one says the record is not there (or its name is invalid).
fn lookup(
    inv: &Invocation,
    kind: Kind,
    name: &str,
) -> Result<Result<views::Fields, ops::OpError>, Failure> {
    let state = store::read(&inv.paths)?;
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
        None => Err(Failure {
            message: format!("{field:?} is not set for {name}"),
            code: EXIT_UNSET,
        }),
    }
}

fn describe(cmd: &Command) -> Result<(), Failure> {
    let mut app = Cli::command();
    let mut stdout = std::io::stdout();
    match cmd {
        Command::Completion { shell } => {
            clap_complete::generate(*shell, &mut app, "sc", &mut stdout)
        }
        _ => clap_mangen::Man::new(app).render(&mut stdout)?,
    }
    stdout.flush()?;
    Ok(())
}
