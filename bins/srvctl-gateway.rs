//! `srvctl-gateway`: the SSH gateway's user database (`srvctl-gateway userdb`, run by
//! srvctl-gateway-userdb.socket) and its session program (`srvctl-gateway session`, sshd's
//! ForceCommand on port 2222).

fn main() -> std::process::ExitCode {
    srvctl::gateway::main()
}
