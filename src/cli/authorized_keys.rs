//! `srvctl-authorized-keys`: the keys sshd may accept for a login, read from the datastore
//! (sshd's `AuthorizedKeysCommand`, run at every SSH login as root).
//!
//! `srvctl-authorized-keys NAME` prints the keys of host account NAME (`root`: the
//! operator's); `srvctl-authorized-keys --gateway LOGIN` prints the keys that cover the USER
//! part of a gateway login `USER_VE_VEUSER` ([`crate::accounts::keys::gateway_lines`]). One
//! key a line, each one re-encoded by the key parser; nothing (and exit status 0) for an
//! unknown or malformed name. It only reads.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::accounts::keys;
use crate::store;
use crate::system::Local;
use crate::system::paths::Paths;

/// srvctl-authorized-keys: print the SSH keys of an account for sshd.
#[derive(Debug, Parser)]
#[command(name = "srvctl-authorized-keys", version)]
pub(crate) struct Args {
    /// Read the datastore under DIR.
    #[arg(long, env = "SRVCTL_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// NAME is a gateway login USER_VE_VEUSER: print the keys that cover USER.
    #[arg(long)]
    gateway: bool,
    /// The login name sshd asks about (%u).
    name: String,
}

/// Run `srvctl-authorized-keys` with the process's arguments.
pub fn authorized_keys_main() -> ExitCode {
    let args = Args::parse();
    let paths = args.root.map(Paths::rooted).unwrap_or_else(Paths::system);
    let system = Local::new(true);
    let state = match store::read_accounts(&system, &paths) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("srvctl-authorized-keys: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lines = if args.gateway {
        keys::gateway_lines(&state, &args.name)
    } else {
        keys::account_lines(&state, &args.name)
    };
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("srvctl-authorized-keys: {e}");
            ExitCode::FAILURE
        }
    }
}
