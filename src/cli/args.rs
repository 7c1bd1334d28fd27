//! The command line of `sc` / `srvctl`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ops::views::Kind;

/// srvctl: containers for microsites on systemd-nspawn.
///
/// `sc` edits the datastore under /var/lib/srvctl and asks systemd to act on it. Every listing
/// and every change can answer in JSON (--json), errors too; the exit status says the kind of
/// failure (`sc man` lists them); --root runs everything on a scratch tree.
#[derive(Debug, Parser)]
#[command(
    name = "sc",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Container actions (srvctl 3 style):\n  \
        sc NAME [status|start|stop|restart|enable|disable|kill|shell]   also ? + - ! for status, \
        start, stop, restart\n  \
        sc NAME exec CMD...                    run CMD inside; its exit code is passed through\n  \
        sc NAME shell|exec|sftp --login LOGIN  as an account inside (default root)\n  \
        sc NAME users, sc NAME add-user LOGIN  the accounts inside; add one (home, owner's keys)\n  \
        sc NAME http-redirect|https-redirect [none|http|https|URL]\n  \
        sc NAME alias|altname add|remove DOMAIN, sc NAME aliases|altnames\n  \
        sc NAME dns [list], sc NAME dns add|remove [--name LABEL] TYPE VALUE\n    \
        the site's own DNS records (A, AAAA, CNAME, MX, TXT, CAA; LABEL relative to NAME, \
        default @)\n\n\
        Names: every name a site answers for (its name, www. of it, its aliases and altnames and \
        their www., its preview name under the company domain) belongs to one container. No \
        container takes a cluster host's name, the company domain, localhost or an sc word \
        (status, ls, version, ...); no account takes a system account's name (root, www-data, \
        systemd-*, ...) or one the host already has. A hand-edited datastore record that \
        breaks a rule is set aside, reported and never used."
)]
pub struct Cli {
    /// Re-root every path srvctl reads or writes under DIR; makes no systemd call.
    #[arg(long, global = true, env = "SRVCTL_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Record kinds that `sc new` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewKind {
    /// A container.
    Container,
    /// A user account.
    User,
    /// A reseller.
    Reseller,
}

/// Record kinds that `sc put` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PutKind {
    /// A container.
    Container,
    /// A user account.
    User,
}

/// Where a new container goes and who owns it.
#[derive(Debug, Clone, Args)]
pub struct Placement {
    /// Owner of the container (default: the operator, root).
    #[arg(long, short, value_name = "USER")]
    pub user: Option<String>,
    /// Image its root filesystem is cloned from (default: debian). It must be built
    /// (`sc regenerate rootfs IMAGE`) unless --no-start is given.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Only add the record: no root filesystem is cloned and the container is not started
    /// (later: `sc NAME start`).
    #[arg(long)]
    pub no_start: bool,
    /// The cluster host it lives on (default: this host). On another host, that host's
    /// srvctl-sync clones its root filesystem and starts it.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a reseller: the lowest free reseller id of 1..15, and an account of the same name.
    AddReseller {
        /// Account name: lower-case letters, digits and '-'; not a system account's name.
        name: String,
    },
    /// Add a user account under a reseller (default: the operator).
    AddUser {
        /// Account name: lower-case letters, digits and '-'; not a system account's name.
        name: String,
        /// The reseller, by name or id.
        #[arg(long, short, value_name = "RESELLER")]
        reseller: Option<String>,
    },
    /// Add a container on this host (record, root filesystem from the image, started) and print
    /// its name and address. Exits non-zero when the container does not start (the record
    /// stays: retry with `sc NAME start`, or `sc destroy-ve NAME`).
    #[command(visible_alias = "add-container")]
    AddVe {
        /// The container's name: the site's domain, or e.g. alpha.ve; none of its names (www.,
        /// preview) may be another site's, a cluster host's or an sc word.
        name: String,
        #[command(flatten)]
        placement: Placement,
    },
    /// Remove a container: its root filesystem and generated files, then its record; its
    /// address is free again. A running container is refused unless --force is given (then it
    /// is stopped first). Interrupted, it leaves the record marked as being destroyed: run it
    /// again to finish.
    #[command(visible_alias = "destroy-container")]
    DestroyVe {
        /// The container.
        name: String,
        /// Destroy it even while it runs: stop it first.
        #[arg(long)]
        force: bool,
    },
    /// Remove a user account that owns no container.
    DestroyUser {
        /// The user.
        name: String,
    },
    /// Remove a reseller that has no users and no containers.
    DestroyReseller {
        /// The reseller.
        name: String,
    },
    /// Add an SSH public key to an account (default: your own; as root, the operator's) and
    /// print its SHA256 fingerprint. KEY is the key text (`ssh-ed25519 AAAA… comment`, one
    /// argument), a file holding it (a .pub file), or `-` for standard input. One key, no
    /// options (command=…), no second line. sshd reads the keys from the datastore.
    #[command(override_usage = "sc add-publickey [OPTIONS] [USER] KEY|FILE|-")]
    AddPublickey {
        /// The account (optional), then the key.
        #[arg(num_args = 1..=2, required = true, value_name = "[USER] KEY|FILE|-")]
        args: Vec<String>,
    },
    /// List the SSH public keys of an account (default: your own; as root, the operator's):
    /// fingerprint, type, comment, when added.
    Publickeys {
        /// The account.
        user: Option<String>,
    },
    /// Remove the SSH public keys of an account (default: your own) whose fingerprint or
    /// comment is given.
    #[command(override_usage = "sc remove-publickey [OPTIONS] [USER] FINGERPRINT|COMMENT")]
    RemovePublickey {
        /// The account (optional), then the fingerprint or comment.
        #[arg(
            num_args = 1..=2,
            required = true,
            value_name = "[USER] FINGERPRINT|COMMENT"
        )]
        args: Vec<String>,
    },
    /// Print one field of a record, bare (exit 100 when the field is not set, 2 when records of
    /// that kind have no such field).
    Get {
        /// Kind of record.
        kind: Kind,
        /// Its name.
        name: String,
        /// The field, e.g. ip, bridge, uid; `exist` prints true or false.
        field: String,
    },
    /// Print a record as key='value' lines that a shell can source safely.
    Out {
        /// Kind of record.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// Set a field of a container or user; without VALUE, reset it.
    Put {
        /// Kind of record.
        kind: PutKind,
        /// Its name.
        name: String,
        /// The field; `sc put container x help` lists them.
        key: String,
        /// The new value.
        value: Option<String>,
    },
    /// Create a record (srvctl 3 verb): `sc new container|user|reseller NAME`.
    New {
        /// Kind of record.
        kind: NewKind,
        /// Its name.
        name: String,
        #[command(flatten)]
        placement: Placement,
        /// The reseller of a new user.
        #[arg(long, short, value_name = "RESELLER")]
        reseller: Option<String>,
    },
    /// Delete a record (srvctl 3 verb): `sc del container|user|reseller NAME`.
    Del {
        /// Kind of record.
        kind: NewKind,
        /// Its name.
        name: String,
    },
    /// One row per container: name, owner, reseller, host, address, live state and since when.
    Status,
    /// List every file under DIR (default: the current directory), recursively, oldest first
    /// and newest last: modification time (UTC), size, path. Symbolic links are listed, never
    /// followed. Runs as you, on your files.
    Ls {
        /// The directory.
        dir: Option<PathBuf>,
    },
    /// A first-aid report of this host (operator only): versions and settings, uptime and
    /// kernel, srvctl's failed units, containers that should run and don't, certificates
    /// missing or expiring within 14 days and failing ACME orders, `haproxy -c` of the front's
    /// configuration, set-aside datastore records, free space where containers live, the host
    /// name's forward and reverse DNS records, NTP sync. Each problem comes with a fix; the exit
    /// status is 1 when any finding is a problem.
    Diagnose,
    /// Set this host up for srvctl (root only, never through the srvctl service); safe to run
    /// again at any time, and a run on a host set up already changes nothing. It installs the
    /// distribution's packages srvctl needs that are missing (apt-get install --no-upgrade on
    /// Debian, dnf install on Fedora; nothing else is upgraded), names the host (--hostname,
    /// only while it has no name), raises the host limits many containers need, opens the
    /// ports srvctl serves (in firewalld where it runs, else in srvctl's own nftables table
    /// loaded by srvctl-firewall.service), disables the distribution's postfix and opendkim
    /// units, which srvctl's replace, and enables srvctl's units. SELinux is left as it
    /// is (a run fails if it stopped enforcing). Each step says what it found and did; the
    /// exit status is 1 when a step failed.
    UpdateInstall {
        /// Only list the steps that would change something.
        #[arg(long)]
        dry_run: bool,
        /// The host's name (a DNS name, as in clusters.json), set only while it has none.
        #[arg(long, value_name = "NAME")]
        hostname: Option<String>,
    },
    /// Run CMD with srvctl's context in its environment (operator only, never through the
    /// srvctl service): SRVCTL_HOST, SRVCTL_CLUSTER, SRVCTL_HOSTNET, SRVCTL_HOST_IP,
    /// SRVCTL_ROOT, SRVCTL_CONFIG_DIR, SRVCTL_CLUSTERS, SRVCTL_SETTINGS, SRVCTL_STATE_DIR,
    /// SRVCTL_DATASTORE, SRVCTL_AUDIT_LOG, SRVCTL_VERSION and SRVCTL_SETTING_<KEY> for each
    /// value of settings.json. CMD's exit status is passed through.
    ExecFunction {
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Create a custom command NAME (from a commented template, unless it exists) and open it
    /// in $VISUAL or $EDITOR on a terminal: /root/srvctl-includes/NAME.sh for root,
    /// ~/srvctl-includes/NAME.sh for a user. `sc NAME ARGS…` runs it with bash, as you, with
    /// the context of `sc exec-function`; `sc --help` lists yours with their `# description:`
    /// line. NAME: lower-case letters, digits, '-' and '_', no word of sc.
    Customize {
        /// The custom command's name.
        name: String,
        /// Only create it and print its path; open no editor.
        #[arg(long)]
        print: bool,
    },
    /// Import a srvctl 3 datastore (users.json, containers.json, hosts.json in DIR).
    ImportV3 {
        /// Directory of the srvctl 3 datastore, e.g. /var/srvctl3/datastore.
        dir: PathBuf,
        /// Report what would be imported without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Expand the datastore into this host's configuration now (srvctl-regenerate), or build
    /// a base image: `sc regenerate rootfs [debian|fedora]`.
    Regenerate {
        /// What to regenerate instead of the configuration.
        #[command(subcommand)]
        what: Option<RegenerateWhat>,
    },
    /// List this host's site certificates (source, expiry, next action, last error), or
    /// `sc certificates renew [NAME] [--force]`: obtain ACME certificates that are due now.
    Certificates {
        /// What to do instead of listing.
        #[command(subcommand)]
        action: Option<CertificatesAction>,
    },
    /// The cluster's trust root (operator only): a host's certificate request, signed by the
    /// CA host, accepted by the host; no key ever leaves its host.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Run CMD as root in every running container of this host that you may act on, one
    /// after the other (as `sc NAME exec CMD…`): each container's output lines and its exit
    /// code, prefixed with its name; the exit status is 1 when CMD failed in any of them.
    ExecAll {
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Start, stop or restart every container of this host that you may act on (start and
    /// restart: those not disabled), one line each; the exit status is 1 when any failed.
    AllContainers {
        /// What to do.
        action: PowerAction,
    },
    /// Print srvctl's version and the installed versions of the packages it drives (systemd,
    /// haproxy, openvpn, etcd, ...), as the package manager (dpkg or rpm) reports them.
    Version,
    /// The names of the records of KIND that you may see, one per line: what bash's
    /// completion offers where a command takes a name.
    #[command(hide = true)]
    Names {
        /// Kind of record.
        kind: NewKind,
    },
    /// Print a shell completion script (bash's also completes the names of containers, users
    /// and resellers that you may see).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print sc's manual page (roff); with `--dir DIR`, write into DIR the pages of sc, of
    /// each of its commands (sc-add-ve.1, …) and of srvctl's programs (srvctl-sync.8, …).
    Man {
        /// Write every page into this directory (it must exist) instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Act on one container: `sc NAME status|start|stop|restart|enable|disable|kill|shell`,
    /// `sc NAME exec CMD…`, `sc NAME sftp` (its sftp-server on this standard input and output);
    /// shell, exec and sftp take `--login LOGIN` (an account inside: root, www or one added
    /// with `sc NAME add-user LOGIN`; `sc NAME users` lists them); the shorthands `?`, `+`, `-`, `!` stand for status, start, stop,
    /// restart (also as `sc + NAME`). The web front: `sc NAME http-redirect|https-redirect
    /// [none|http|https|URL]` (no value: the default), `sc NAME alias|altname add|remove
    /// DOMAIN`, `sc NAME aliases|altnames`. The site's own DNS records: `sc NAME dns [list]`,
    /// `sc NAME dns add|remove [--name LABEL] TYPE VALUE`.
    #[command(external_subcommand)]
    Container(Vec<String>),
}

/// What `sc all-containers` does to each container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PowerAction {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
}

/// What `sc certificates` can do besides listing.
#[derive(Debug, Subcommand)]
pub enum CertificatesAction {
    /// Order ACME certificates that are due (no certificate, an internal one, or one in the
    /// renewal window its CA suggests, else within 30 days of expiry) for names that resolve
    /// to this host; progress on stderr.
    Renew {
        /// Only this container.
        name: Option<String>,
        /// Order even while a valid certificate exists or a back-off is running.
        #[arg(long)]
        force: bool,
    },
}

/// What `sc cluster` does. A new host joins with `sc cluster join` on it (over ssh to the CA
/// host, `"role": "ca"` in clusters.json), or in three steps by hand: `sc cluster request -o
/// h2.csr` on it, `sc cluster sign h2.csr > h2.pem` on the CA host, `sc cluster accept h2.pem`
/// on it. Either way its etcd member, sync service and mesh tunnels start at once.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// The members of the cluster, which one leads, the datastore's revision and how far each
    /// host's cache lags behind it, and every host's mesh tunnels (from its last report).
    Status,
    /// Make this host's key (once) and print its certificate request (CSR) for the CA host.
    /// On the CA host: make the cluster CA (once) and install this host's certificate directly.
    Request {
        /// Write the CSR to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// On the CA host: check a host's CSR against clusters.json (exactly the names of a host of
    /// this cluster: its fqdn and host_ip) and print its certificate and the cluster CA's.
    Sign {
        /// The CSR (PEM), or - for standard input.
        file: PathBuf,
    },
    /// Join the cluster in one step: make this host's key and CSR, have the CA host sign it
    /// over ssh (`ssh root@CA-HOST sc cluster sign -`: only the CSR and the signed certificate
    /// travel, no key leaves either host) and install the bundle as `accept` does.
    Join {
        /// Reach the CA host as this ssh destination (`user@host`, or a Host of ssh_config)
        /// instead of `root@` its name in clusters.json.
        #[arg(long, value_name = "DESTINATION")]
        via: Option<String>,
    },
    /// Install the bundle `sc cluster sign` printed for this host, once it is checked against
    /// this host's key, names and cluster CA; a wrong bundle changes nothing.
    Accept {
        /// The bundle (PEM), or - for standard input.
        file: PathBuf,
    },
}

/// What `sc regenerate` can build besides the configuration.
#[derive(Debug, Subcommand)]
pub enum RegenerateWhat {
    /// Ask every host of the cluster to expand the datastore now (each host's srvctl-sync runs
    /// srvctl-regenerate); on a host alone, the same as `sc regenerate`.
    AllHosts,
    /// Build (or rebuild) a base image that site containers are cloned from.
    Rootfs {
        /// debian (default) or fedora.
        image: Option<String>,
    },
}

/// The optional USER before the one required argument of `[USER] ARG` (clap gives 1 or 2).
pub fn user_and_argument(args: &[String]) -> (Option<&str>, &str) {
    match args {
        [user, arg] => (Some(user), arg),
        [arg] => (None, arg),
        _ => unreachable!("clap takes 1 or 2 arguments"),
    }
}

impl Command {
    /// Whether the command only prints something about srvctl itself and needs no privilege.
    pub fn is_self_description(&self) -> bool {
        matches!(self, Self::Completion { .. } | Self::Man { .. })
    }

    /// Whether the command acts on the caller's own files as the caller, so it runs in `sc`
    /// itself and never through the privileged service (`man --dir` writes files).
    pub fn runs_as_caller(&self) -> bool {
        matches!(
            self,
            Self::Ls { .. } | Self::Customize { .. } | Self::Man { dir: Some(_) }
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand (and nested subcommand) and each of its aliases, recursively.
    fn words(cmd: &clap::Command, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            out.push(sub.get_name().to_owned());
            out.extend(sub.get_all_aliases().map(str::to_owned));
            words(sub, out);
        }
    }

    #[test]
    fn every_subcommand_is_reserved_for_no_container() {
        let mut all = vec!["help".to_owned()];
        words(&Cli::command(), &mut all);
        assert!(all.len() > 20, "{all:?}");
        for word in &all {
            assert!(
                crate::model::claims::COMMAND_WORDS.contains(&word.as_str()),
                "sc word {word} is missing from claims::COMMAND_WORDS"
            );
        }
    }
}
