//! `sc`: the srvctl command line.

fn main() -> std::process::ExitCode {
    srvctl::cli::main()
}
