//! `srvctl-sync`: keep this host's cache of the cluster datastore current (run by
//! srvctl-sync.service on every host of a replicated cluster).

fn main() -> std::process::ExitCode {
    srvctl::cli::sync_main()
}
