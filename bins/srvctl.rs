//! `srvctl`: the long name of `sc`.

fn main() -> std::process::ExitCode {
    srvctl::cli::main()
}
