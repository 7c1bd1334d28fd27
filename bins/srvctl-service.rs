//! `srvctl-service`: the privileged service that runs `sc` for callers who are not root.

fn main() -> std::process::ExitCode {
    srvctl::cli::service_main()
}
