//! The order lock of a name in a cluster: a key held on a lease, kept alive while the order
//! runs. A host that dies stops renewing its lease, and the name is free again once the lease
//! expires ([`LEASE_TTL`]); a host that finishes frees it at once by revoking the lease.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a lease outlives the last keep-alive of its holder.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a holder renews its lease.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Keys held on leases, as the lock needs them (etcd in a cluster; a fake in tests).
pub trait Leases: Send + Sync {
    /// A new lease of `ttl`; its id.
    fn grant(&self, ttl: Duration) -> Result<i64, String>;
    /// Put `holder` at `key` on `lease` if `key` does not exist. `None`: it is ours now;
    /// else who holds it.
    fn claim(&self, key: &str, holder: &str, lease: i64) -> Result<Option<String>, String>;
    /// Renew `lease` for its ttl.
    fn keep_alive(&self, lease: i64) -> Result<(), String>;
    /// End `lease` now, deleting the keys on it.
    fn revoke(&self, lease: i64) -> Result<(), String>;
}

/// A held lock: its lease is renewed every [`KEEP_ALIVE`] until it is dropped, which revokes
/// the lease.
pub struct NameLock {
    leases: Arc<dyn Leases>,
    lease: i64,
    stop: Option<Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NameLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameLock")
            .field("lease", &self.lease)
            .finish()
    }
}

/// Take `key` for `holder`: `Ok(lock)`, or `Err(holder)` when another holds it. A lease that
/// could not be used is revoked before the answer.
pub fn try_lock(
    leases: Arc<dyn Leases>,
    key: &str,
    holder: &str,
    every: Duration,
) -> Result<Result<NameLock, String>, String> {
    let lease = leases.grant(LEASE_TTL)?;
    match leases.claim(key, holder, lease) {
        Ok(None) => {}
        Ok(Some(other)) => {
            let _ = leases.revoke(lease);
            return Ok(Err(other));
        }
        Err(e) => {
            let _ = leases.revoke(lease);
            return Err(e);
        }
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let renewing = leases.clone();
    let renewer = std::thread::spawn(move || {
        // A failed keep-alive is tried again at the next tick: the lease lasts three of them.
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            if let Err(e) = renewing.keep_alive(lease) {
                eprintln!("srvctl: keeping the order lock alive: {e}");
            }
        }
    });
    Ok(Ok(NameLock {
        leases,
        lease,
        stop: Some(stop),
        renewer: Some(renewer),
    }))
}

impl Drop for NameLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        if let Err(e) = self.leases.revoke(self.lease) {
            eprintln!("srvctl: freeing the order lock (it ends with its lease): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Leases on a clock that the test moves: a lease expires `ttl` after its last renewal.
    #[derive(Default)]
    struct Fake {
        now: Mutex<Duration>,
        leases: Mutex<BTreeMap<i64, Duration>>,
        keys: Mutex<BTreeMap<String, (String, i64)>>,
        renewals: Mutex<u32>,
    }

    impl Fake {
        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
            let now = *self.now.lock().unwrap();
            let mut leases = self.leases.lock().unwrap();
            leases.retain(|_, until| *until > now);
            self.keys
                .lock()
                .unwrap()
                .retain(|_, (_, lease)| leases.contains_key(lease));
        }
        fn holder(&self, key: &str) -> Option<String> {
            self.keys.lock().unwrap().get(key).map(|(h, _)| h.clone())
        }
    }

    impl Leases for Fake {
        fn grant(&self, ttl: Duration) -> Result<i64, String> {
            let mut leases = self.leases.lock().unwrap();
            let id = leases.keys().last().map_or(1, |l| l + 1);
            leases.insert(id, *self.now.lock().unwrap() + ttl);
            Ok(id)
        }
        fn claim(&self, key: &str, holder: &str, lease: i64) -> Result<Option<String>, String> {
            let mut keys = self.keys.lock().unwrap();
            if let Some((other, _)) = keys.get(key) {
                return Ok(Some(other.clone()));
            }
            keys.insert(key.to_owned(), (holder.to_owned(), lease));
            Ok(None)
        }
        fn keep_alive(&self, lease: i64) -> Result<(), String> {
            let now = *self.now.lock().unwrap();
            *self.renewals.lock().unwrap() += 1;
            match self.leases.lock().unwrap().get_mut(&lease) {
                Some(until) => {
                    *until = now + LEASE_TTL;
                    Ok(())
                }
                None => Err(format!("lease {lease} expired")),
            }
        }
        fn revoke(&self, lease: i64) -> Result<(), String> {
            self.leases.lock().unwrap().remove(&lease);
            self.keys.lock().unwrap().retain(|_, (_, l)| *l != lease);
            Ok(())
        }
    }

    const KEY: &str = "acme/lock/web.example.com";

    #[test]
    fn one_holder_at_a_time_and_dropping_frees_the_name() {
        let fake = Arc::new(Fake::default());
        let a = try_lock(fake.clone(), KEY, "h1", KEEP_ALIVE)
            .unwrap()
            .unwrap();
        assert_eq!(fake.holder(KEY).as_deref(), Some("h1"));
        let refused = try_lock(fake.clone(), KEY, "h2", KEEP_ALIVE).unwrap();
        assert_eq!(refused.unwrap_err(), "h1");
        assert_eq!(
            fake.leases.lock().unwrap().len(),
            1,
            "the refused host's lease is revoked"
        );
        drop(a);
        assert_eq!(fake.holder(KEY), None);
        assert!(fake.leases.lock().unwrap().is_empty());
        let b = try_lock(fake.clone(), KEY, "h2", KEEP_ALIVE).unwrap();
        assert!(b.is_ok());
    }

    #[test]
    fn a_live_holder_keeps_the_name_and_a_dead_one_loses_it_with_its_lease() {
        let fake = Arc::new(Fake::default());
        let lock = try_lock(fake.clone(), KEY, "h1", Duration::from_millis(5))
            .unwrap()
            .unwrap();
        // Renewals come in while the clock moves past the first ttl.
        for _ in 0..4 {
            let before = *fake.renewals.lock().unwrap();
            while *fake.renewals.lock().unwrap() == before {
                std::thread::sleep(Duration::from_millis(1));
            }
            fake.advance(LEASE_TTL / 2);
        }
        assert_eq!(fake.holder(KEY).as_deref(), Some("h1"), "kept alive");
        // The holder dies: no more renewals (its thread stops; the revoke never comes).
        let mut dead = std::mem::ManuallyDrop::new(lock);
        drop(dead.stop.take());
        dead.renewer.take().unwrap().join().unwrap();
        assert!(
            try_lock(fake.clone(), KEY, "h2", KEEP_ALIVE)
                .unwrap()
                .is_err()
        );
        fake.advance(LEASE_TTL);
        assert_eq!(fake.holder(KEY), None, "the lease expired");
        let taken = try_lock(fake.clone(), KEY, "h2", KEEP_ALIVE).unwrap();
        assert!(taken.is_ok());
        assert_eq!(fake.holder(KEY).as_deref(), Some("h2"));
    }
}
