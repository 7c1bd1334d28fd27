//! srvctl-sync run on a farm, and waiting for what it does.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::Farm;

/// The sync service's binary.
pub const SYNC: &str = env!("CARGO_BIN_EXE_srvctl-sync");

/// A running srvctl-sync of one farm, killed when dropped; what it prints on stderr (the
/// systemd requests it would make) is kept.
pub struct SyncService(Child);

impl SyncService {
    /// Start it on `farm`.
    pub fn start(farm: &Farm) -> Self {
        let child = farm
            .command_of(SYNC, &[])
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn srvctl-sync");
        Self(child)
    }

    /// Stop it and return what it printed.
    pub fn stop(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut out = String::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            let _ = stderr.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for SyncService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `check` holds, at most `limit`; how long it took.
pub fn until(limit: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}
