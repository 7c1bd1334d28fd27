//! `srvctl-regenerate`: expand the datastore into this host's configuration (run by
//! srvctl-regenerate.service at boot and after every change, or by `sc regenerate`).

fn main() -> std::process::ExitCode {
    srvctl::cli::regenerate_main()
}
