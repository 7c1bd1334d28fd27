//! `srvctl-generator`: the systemd system generator of srvctl (see systemd.generator(7)).
//!
//! Called with three output directories; writes into the first (normal priority) only, reads
//! only the local datastore, never touches the network, and never fails the boot: problems are
//! logged and skipped.

fn main() -> std::process::ExitCode {
    srvctl::engine::generator::main()
}
