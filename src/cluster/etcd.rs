//! The connection of a host to the etcd members of its cluster: every member's client URL
//! (`https://HOST_IP:2379`), its own first, with the host's cluster identity as the client
//! certificate, on a current-thread tokio runtime of its own.
//!
//! Every request has a deadline ([`REQUEST_TIMEOUT`]): etcd answers some requests only once a
//! quorum is back, so without one a command would hang. A request that fails is explained in
//! one line by asking every member on its own whether it answers: no member, fewer than a
//! majority ([`ClusterError::NoQuorum`]), or a TLS handshake that was refused.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, KvClient, TlsOptions};
use tonic::Code;

use super::pki::{CA_CERT, HOST_CERT, HOST_KEY};
use crate::config::cluster::Clusters;
use crate::system::System;
use crate::system::paths::Paths;

/// How long connecting to a member may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The pause between tries of a read while etcd elects a leader.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How long a member may take to answer when a failed request is explained.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest response read: a range get of thousands of records is larger than tonic's
/// default of 4 MiB.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Why the cluster datastore cannot be reached; every message is one line naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This host is not in clusters.json.
    #[error("host {0} is not in clusters.json, so it has no cluster datastore")]
    NotInCluster(String),
    /// A file of the host's cluster identity cannot be read.
    #[error("the cluster TLS identity of this host is not usable: {path}: {why}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The runtime could not be started.
    #[error("cannot start the etcd client: {0}")]
    Runtime(io::Error),
    /// No member answers.
    #[error(
        "no etcd member of cluster {cluster} is reachable (tried {tried}): {cause}; changes are refused until one is back"
    )]
    Unreachable {
        /// The cluster.
        cluster: String,
        /// The members tried.
        tried: String,
        /// The first member's error.
        cause: String,
    },
    /// Fewer than a majority of the members answer.
    #[error(
        "the cluster datastore has no quorum ({reachable} of {total} etcd members reachable{names}); changes are refused until a majority is back"
    )]
    NoQuorum {
        /// How many answer.
        reachable: usize,
        /// How many there are.
        total: usize,
        /// `: ` and the names of those that answer, or nothing.
        names: String,
    },
    /// The TLS handshake failed: a certificate was not accepted.
    #[error(
        "the etcd members of cluster {cluster} refused the TLS connection (certificate not accepted): {cause}"
    )]
    Tls {
        /// The cluster.
        cluster: String,
        /// The handshake's error.
        cause: String,
    },
    /// A majority answers, but the request took too long.
    #[error("the cluster datastore did not answer {what} within {secs} s")]
    Timeout {
        /// The request.
        what: String,
        /// The deadline.
        secs: u64,
    },
    /// etcd answered with an error.
    #[error("the cluster datastore refused {what}: {cause}")]
    Refused {
        /// The request.
        what: String,
        /// etcd's error.
        cause: String,
    },
}

/// One etcd member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The host's fqdn (the member's name).
    pub name: String,
    /// Its client URL.
    pub endpoint: String,
}

/// A connection to the etcd members of this host's cluster.
pub struct Connection {
    runtime: tokio::runtime::Runtime,
    client: Client,
    options: ConnectOptions,
    cluster: String,
    prefix: String,
    members: Vec<Member>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("prefix", &self.prefix)
            .field("members", &self.members)
            .finish()
    }
}

impl Connection {
    /// Connect host `me` to its cluster, with the TLS identity under `paths` read through
    /// `system`. The client talks to one member: this host's own when it answers and knows a
    /// leader; otherwise every member is asked at once, and without a majority answering this
    /// is [`ClusterError::NoQuorum`] (or unreachable, or a refused certificate) at once.
    pub fn open(
        system: &dyn System,
        paths: &Paths,
        clusters: &Clusters,
        me: &str,
    ) -> Result<Self, ClusterError> {
        let hosts = super::members(clusters, me);
        let own = hosts
            .first()
            .ok_or_else(|| ClusterError::NotInCluster(me.to_owned()))?;
        let cluster = own.cluster.clone();
        let members: Vec<Member> = hosts
            .iter()
            .map(|h| Member {
                name: h.name.clone(),
                endpoint: super::member::client_url(h),
            })
            .collect();
        let options = ConnectOptions::new()
            .with_tls(tls(system, paths)?)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_require_leader(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        // This host's own member first; the others when it does not answer or has no leader.
        let own = runtime.block_on(answering(members[0].endpoint.clone(), options.clone()));
        let client = match own {
            Ok((client, state)) if state.leader != 0 => client,
            _ => {
                let answers = runtime.block_on(probe(&members, &options));
                let seen = answers
                    .iter()
                    .map(|a| a.as_ref().map(drop).map_err(Clone::clone));
                if let Some(e) = without_quorum(&cluster, &members, seen.collect()) {
                    return Err(e);
                }
                let mut reachable: Vec<_> = answers.into_iter().flatten().collect();
                // One that knows a leader, else (an election going on) the first that answers.
                let at = reachable
                    .iter()
                    .position(|(_, state)| state.leader != 0)
                    .unwrap_or(0);
                reachable.swap_remove(at).0
            }
        };
        Ok(Self {
            runtime,
            client,
            options,
            prefix: format!("/srvctl/{cluster}/"),
            cluster,
            members,
        })
    }

    /// Run a future on the connection's runtime, to the end.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The client (cheap to clone; its calls need `&mut`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The key-value client, reading responses of any size.
    pub fn kv(&self) -> KvClient {
        self.client()
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The prefix of every key of this cluster: `/srvctl/<cluster>/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The members, this host's first.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Every member's own state, in the order of [`Connection::members`].
    pub fn member_states(&self) -> Vec<Result<MemberState, String>> {
        let answers = self.runtime.block_on(probe(&self.members, &self.options));
        answers
            .into_iter()
            .map(|a| a.map(|(_, state)| state))
            .collect()
    }

    /// The datastore's revision: the mod_revision of `doc/head` (0: never written).
    pub fn head_revision(&self) -> Result<i64, ClusterError> {
        let key = format!("{}{}", self.prefix, super::keys::HEAD);
        let head = self.read("reading doc/head", |mut kv| {
            let key = key.clone();
            async move { kv.get(key, None).await }
        })?;
        Ok(head.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Run one request (`what`, for messages) with the request deadline; a failure is
    /// explained by asking every member whether it answers.
    pub fn request<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, ClusterError> {
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, request).await });
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.explain(what, Some(&e))),
            Err(_) => Err(self.explain(what, None)),
        }
    }

    /// Run an idempotent request (a read) made by `make`, again while etcd answers that it is
    /// unavailable for now (a leader election), until the request deadline; then as
    /// [`Connection::request`].
    pub fn read<T, F: Future<Output = Result<T, etcd_client::Error>>>(
        &self,
        what: &str,
        mut make: impl FnMut(KvClient) -> F,
    ) -> Result<T, ClusterError> {
        let attempts = async {
            loop {
                match make(self.kv()).await {
                    Err(etcd_client::Error::GRpcStatus(s)) if s.code() == Code::Unavailable => {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    other => return other,
                }
            }
        };
        self.request(what, attempts)
    }

    /// Why `what` failed (`error`: how; none: it took too long).
    fn explain(&self, what: &str, error: Option<&etcd_client::Error>) -> ClusterError {
        let answers = self.runtime.block_on(probe(&self.members, &self.options));
        let answers = answers.into_iter().map(|a| a.map(drop)).collect();
        if let Some(e) = without_quorum(&self.cluster, &self.members, answers) {
            return e;
        }
        match error {
            Some(e) => ClusterError::Refused {
                what: what.to_owned(),
                cause: one_line(e),
            },
            None => ClusterError::Timeout {
                what: what.to_owned(),
                secs: REQUEST_TIMEOUT.as_secs(),
            },
        }
    }
}

/// The error when fewer than a majority of the `members` of `cluster` answered (`answers`, in
/// their order): none answered (unreachable, or a refused TLS handshake), or too few.
fn without_quorum(
    cluster: &str,
    members: &[Member],
    answers: Vec<Result<(), String>>,
) -> Option<ClusterError> {
    let reachable: Vec<&str> = members
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_ok())
        .map(|(m, _)| m.name.as_str())
        .collect();
    if reachable.is_empty() {
        let errors: Vec<String> = answers.into_iter().filter_map(Result::err).collect();
        // A member that refuses this host's certificate after a TLS 1.3 handshake may show
        // it as a closed stream, depending on whether the client was writing or reading when
        // the alert came: one member's alert among the answers tells.
        if let Some(tls) = errors.iter().find(|e| is_tls(e)) {
            return Some(ClusterError::Tls {
                cluster: cluster.to_owned(),
                cause: tls.clone(),
            });
        }
        return Some(ClusterError::Unreachable {
            cluster: cluster.to_owned(),
            tried: names(members),
            cause: errors.into_iter().next().unwrap_or_default(),
        });
    }
    (reachable.len() * 2 <= members.len()).then(|| ClusterError::NoQuorum {
        reachable: reachable.len(),
        total: members.len(),
        names: format!(": {}", reachable.join(", ")),
    })
}

/// What a member says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberState {
    /// Its member id.
    pub id: u64,
    /// The member id of the leader it follows (0: none).
    pub leader: u64,
}

/// Ask every member, at once, for its status: as [`answering`], in the members' order.
async fn probe(
    members: &[Member],
    options: &ConnectOptions,
) -> Vec<Result<(Client, MemberState), String>> {
    let tasks: Vec<_> = members
        .iter()
        .map(|m| tokio::spawn(answering(m.endpoint.clone(), options.clone())))
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    answers
}

/// A client of the member at `endpoint` once it answered its status within
/// [`PROBE_TIMEOUT`], and what it said of itself (a leader of 0: it knows none); or why it
/// did not answer.
async fn answering(
    endpoint: String,
    options: ConnectOptions,
) -> Result<(Client, MemberState), String> {
    let status = async {
        let mut client = Client::connect([endpoint], Some(options)).await?;
        // A member without a leader answers, with an error that says so.
        match client.status().await {
            Ok(status) => {
                let state = MemberState {
                    id: status.header().map_or(0, |h| h.member_id()),
                    leader: status.leader(),
                };
                Ok((client, state))
            }
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => {
                Ok((client, MemberState { id: 0, leader: 0 }))
            }
            Err(e) => Err(e),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, status).await {
        Ok(answer) => answer.map_err(|e| one_line(&e)),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// The TLS options of this host: the cluster CA verifies the members, the host's identity
/// is the client certificate.
fn tls(system: &dyn System, paths: &Paths) -> Result<TlsOptions, ClusterError> {
    let read = |file: &str| {
        let path = paths.host(file);
        match system.read(&path) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(ClusterError::Identity {
                path,
                why: "missing".into(),
            }),
            Err(e) => Err(ClusterError::Identity {
                path,
                why: e.to_string(),
            }),
        }
    };
    let ca = Certificate::from_pem(read(CA_CERT)?);
    let identity = Identity::from_pem(read(HOST_CERT)?, read(HOST_KEY)?);
    Ok(TlsOptions::new().ca_certificate(ca).identity(identity))
}

fn names(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an error's text is that of a refused TLS handshake: a certificate or alert named,
/// or (TLS 1.3, where a server refuses the client's certificate after the handshake) a
/// connection that was made and then closed.
fn is_tls(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "certificate",
        "handshake",
        "alert",
        "unknownissuer",
        "connection closed",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// An error and its causes on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Recording;

    const CLUSTERS: &str = r#"{"c": {"h1.c": {"host_ip": "127.0.0.11", "hostnet": 1, "role": "ca"},
                                     "h2.c": {"host_ip": "127.0.0.12", "hostnet": 2}}}"#;

    #[test]
    fn a_missing_identity_is_named() {
        let clusters = Clusters::parse("clusters.json".as_ref(), CLUSTERS).unwrap();
        let system = Recording::default();
        let paths = Paths::rooted("/r");
        let e = Connection::open(&system, &paths, &clusters, "h2.c").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/r/var/lib/srvctl/pki/cluster/ca.crt: missing"),
            "{text}"
        );
        let e = Connection::open(&system, &paths, &clusters, "h9.c").unwrap_err();
        assert!(matches!(e, ClusterError::NotInCluster(_)), "{e}");
    }

    #[test]
    fn the_no_quorum_line_names_who_answers() {
        let e = ClusterError::NoQuorum {
            reachable: 1,
            total: 3,
            names: ": h1.example.net".into(),
        };
        assert_eq!(
            e.to_string(),
            "the cluster datastore has no quorum (1 of 3 etcd members reachable: h1.example.net); changes are refused until a majority is back"
        );
    }

    #[test]
    fn handshake_errors_are_told_from_others() {
        assert!(is_tls("invalid peer certificate: UnknownIssuer"));
        assert!(is_tls("received fatal alert: BadCertificate"));
        assert!(is_tls("hyper::Error(Canceled, \"connection closed\")"));
        assert!(!is_tls(
            "tcp connect error: Connection refused (os error 111)"
        ));
    }

    #[test]
    fn one_members_alert_among_closed_streams_is_a_refused_certificate() {
        let members: Vec<Member> = ["h1.c", "h2.c", "h3.c"]
            .iter()
            .map(|n| Member {
                name: (*n).into(),
                endpoint: format!("https://{n}:2379"),
            })
            .collect();
        let closed = || Err("transport error: stream closed because of a broken pipe".to_owned());
        let alert = Err("received fatal alert: UnknownCA".to_owned());
        let e = without_quorum("c", &members, vec![closed(), alert, closed()]).unwrap();
        assert!(
            matches!(&e, ClusterError::Tls { cause, .. } if cause.contains("UnknownCA")),
            "{e}"
        );
        let e = without_quorum("c", &members, vec![closed(), closed(), closed()]).unwrap();
        assert!(matches!(e, ClusterError::Unreachable { .. }), "{e}");
    }
}
