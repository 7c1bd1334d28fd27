//! `srvctl-authorized-keys NAME` / `--gateway LOGIN`: sshd's AuthorizedKeysCommand, printing
//! the SSH keys the datastore holds for a login.

fn main() -> std::process::ExitCode {
    srvctl::cli::authorized_keys_main()
}
