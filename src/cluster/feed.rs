//! The sync service's [`Feed`] over etcd: the cluster store refreshes the cache, one watch
//! stream follows `doc/head` (every commit puts it), `regenerate`, the certificate
//! renewals and the cluster's ACME certificates (`acme/head`), and the live state goes to
//! `live/<host>`.

use std::time::Duration;

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions, WatchStream};

use super::sync::{Feed, LiveReport, Refreshed, Wakeup};
use super::{keys, renew};
use crate::store::Etcd;

/// The key `sc regenerate all-hosts` puts, below the cluster's prefix.
pub const REGENERATE: &str = "regenerate";
/// The prefix of the live reports, below the cluster's prefix: `live/<host>`.
pub const LIVE: &str = "live/";

/// `sc regenerate all-hosts`: ask the sync service of every host to run srvctl-regenerate.
/// Returns the revision of the request.
pub fn ask_all_hosts(
    conn: &super::etcd::Connection,
    by: &str,
    at: &str,
) -> Result<i64, super::etcd::ClusterError> {
    let key = format!("{}{REGENERATE}", conn.prefix());
    let value = serde_json::json!({ "by": by, "at": at }).to_string();
    let mut kv = conn.kv();
    let answer = conn.request("the request to regenerate", kv.put(key, value, None))?;
    Ok(answer.header().map_or(0, |h| h.revision()))
}

/// The sync service's view of the cluster datastore. After a failure it opens the store
/// afresh, so that a connection to a member that went away is not kept.
pub struct EtcdFeed<'s> {
    open: Box<dyn Fn() -> Etcd<'s> + 's>,
    store: Etcd<'s>,
    /// The revision to watch from once the stream is (re)made: just after the last refresh.
    watch_from: i64,
    stream: Option<WatchStream>,
}

impl<'s> EtcdFeed<'s> {
    /// A feed of the cluster store that `open` makes (again after each failure).
    pub fn new(open: impl Fn() -> Etcd<'s> + 's) -> Self {
        Self {
            store: open(),
            open: Box::new(open),
            watch_from: 0,
            stream: None,
        }
    }

    /// A watch of `doc/head`, `regenerate`, `acme/head` and the certificate renewals (`csr/`,
    /// `cert/`) from
    /// just after the last refresh.
    fn open_watch(&self) -> Result<WatchStream, String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let prefix = conn.prefix();
        let from = WatchOptions::new().with_start_revision(self.watch_from);
        let mut client = conn.client();
        let mut stream = conn
            .request(
                "the watch",
                client.watch(format!("{prefix}{}", keys::HEAD), Some(from.clone())),
            )
            .map_err(|e| e.to_string())?;
        for key in [REGENERATE, super::acme::HEAD] {
            conn.request(
                "the watch",
                stream.watch(format!("{prefix}{key}"), Some(from.clone())),
            )
            .map_err(|e| e.to_string())?;
        }
        for renewal in [renew::CSR, renew::CERT] {
            conn.request(
                "the watch",
                stream.watch(
                    format!("{prefix}{renewal}"),
                    Some(from.clone().with_prefix()),
                ),
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(stream)
    }

    /// Forget the connection and the watch after a failure.
    fn reset(&mut self, error: String) -> String {
        self.store = (self.open)();
        self.stream = None;
        error
    }
}

impl Feed for EtcdFeed<'_> {
    fn refresh(&mut self) -> Result<Refreshed, String> {
        let refreshed = match self.store.refresh() {
            Ok(r) => r,
            Err(e) => return Err(self.reset(e.to_string())),
        };
        self.watch_from = refreshed.read_at + 1;
        Ok(Refreshed {
            revision: refreshed.revision,
            changed: refreshed.changed,
        })
    }

    fn wait(&mut self, timeout: Duration) -> Result<Wakeup, String> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.open_watch().map_err(|e| self.reset(e))?,
        };
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let regenerate = format!("{}{REGENERATE}", conn.prefix());
        let answer = conn.block_on(async { tokio::time::timeout(timeout, stream.message()).await });
        let wakeup = match answer {
            Err(_) => Wakeup::Quiet,
            Ok(Ok(Some(response))) if !response.canceled() => {
                let events = response.events();
                if events
                    .iter()
                    .filter_map(|e| e.kv())
                    .any(|kv| kv.key() == regenerate.as_bytes())
                {
                    Wakeup::Regenerate
                } else if events.is_empty() {
                    // The answer to the watch's creation, or progress: nothing changed.
                    Wakeup::Quiet
                } else {
                    Wakeup::Changed
                }
            }
            Ok(Ok(_)) => {
                return Err(self.reset(
                    "etcd ended the watch (its revision may be compacted); reading again".into(),
                ));
            }
            Ok(Err(e)) => return Err(self.reset(format!("the watch failed: {e}"))),
        };
        self.stream = Some(stream);
        Ok(wakeup)
    }

    fn publish(&mut self, live: &LiveReport) -> Result<(), String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let key = format!("{}{LIVE}{}", conn.prefix(), live.host);
        let value = serde_json::to_vec(live).expect("serialisable");
        let mut kv = conn.kv();
        conn.request("publishing the live state", kv.put(key, value, None))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn entries(&mut self, prefix: &str) -> Result<BTreeMap<String, String>, String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let full = format!("{}{prefix}", conn.prefix());
        let mut kv = conn.kv();
        let found = conn
            .request(
                "reading the certificate renewals",
                kv.get(full.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .map_err(|e| e.to_string())?;
        Ok(found
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = std::str::from_utf8(kv.key()).ok()?.strip_prefix(&full)?;
                let value = String::from_utf8_lossy(kv.value()).into_owned();
                Some((key.to_owned(), value))
            })
            .collect())
    }

    fn revision(&mut self, key: &str) -> Result<i64, String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let full = format!("{}{key}", conn.prefix());
        let mut kv = conn.kv();
        let found = conn
            .request(
                "reading a revision",
                kv.get(full, Some(GetOptions::new().with_keys_only())),
            )
            .map_err(|e| e.to_string())?;
        Ok(found.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let mut kv = conn.kv();
        let put = kv.put(format!("{}{key}", conn.prefix()), value, None);
        conn.request("a certificate request or answer", put)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn put_while(
        &mut self,
        key: &str,
        value: &str,
        guard: &str,
        expected: &str,
    ) -> Result<bool, String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let (full, guard) = (
            format!("{}{key}", conn.prefix()),
            format!("{}{guard}", conn.prefix()),
        );
        let txn = Txn::new()
            .when([Compare::value(guard, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(full, value, None)]);
        let mut kv = conn.kv();
        conn.request("a certificate answer", kv.txn(txn))
            .map(|answer| answer.succeeded())
            .map_err(|e| e.to_string())
    }

    fn delete(&mut self, key: &str) -> Result<(), String> {
        let conn = self.store.connection().map_err(|e| e.to_string())?;
        let mut kv = conn.kv();
        let delete = kv.delete(format!("{}{key}", conn.prefix()), None);
        conn.request("removing a certificate request", delete)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
