//! Real etcd members for the cluster tests: one [`Farm`] per host (`h1.test`…, host_ip
//! 127.0.0.11…, hostnet 1…, h1 the CA host), each with its cluster trust root at the real
//! paths (`var/lib/srvctl/pki/cluster/{ca.crt,host.crt,host.key}`: a cluster CA made here, its key
//! in h1's `ca.key` only,
//! host certificates with CN = host, SAN = host + host_ip (+ 127.0.0.1, the source address
//! of every connection here), serverAuth + clientAuth) and an
//! etcd member (`/usr/bin/etcd`) on its host_ip with peer and client certificate
//! authentication, data in `var/lib/srvctl/etcd`. Members are stopped and started one by one
//! for the fault tests and all killed when the [`EtcdCluster`] is dropped.
//!
//! The members listen on fixed addresses, so one cluster runs at a time in a test process.
//! Without `/usr/bin/etcd` the tests print why and pass, except in CI (`CI` set), which
//! installs it through `scripts/test-deps.sh`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use srvctl::cluster::etcd::Connection;
use srvctl::cluster::pki::CA_KEY;
use srvctl::cluster::pki::{CA_CERT, HOST_CERT, HOST_KEY};
use srvctl::config::cluster::Clusters;
use srvctl::system::Local;
use srvctl::system::paths::Paths;

use super::Farm;
use super::real::Procs;

/// The etcd server.
pub const ETCD: &str = "/usr/bin/etcd";

/// One cluster at a time: the members' addresses are fixed.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether the etcd tests can run: true when etcd is installed; otherwise prints why and
/// returns false, or fails in CI.
pub fn available(test: &str) -> bool {
    if Path::new(ETCD).is_file() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{ETCD} is missing: run scripts/test-deps.sh (as root) first"
    );
    eprintln!("{test}: skipped: {ETCD} is missing (Debian package etcd-server)");
    false
}

/// The name of host `i` (0-based).
pub fn host_name(i: usize) -> String {
    format!("h{}.test", i + 1)
}

/// The address of host `i` (0-based).
pub fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 11 + i as u8)
}

/// clusters.json of `n` hosts in cluster `test`, the first the CA host.
pub fn clusters_json(n: usize) -> String {
    let hosts: Vec<String> = (0..n)
        .map(|i| {
            let role = if i == 0 { r#", "role": "ca""# } else { "" };
            format!(
                r#""{}": {{"host_ip": "{}", "hostnet": {}{role}}}"#,
                host_name(i),
                host_ip(i),
                i + 1
            )
        })
        .collect();
    format!("{{\"test\": {{{}}}}}\n", hosts.join(", "))
}

/// `n` hosts, each with a running etcd member.
pub struct EtcdCluster {
    farms: Vec<Farm>,
    procs: Procs,
    starts: usize,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl EtcdCluster {
    /// Make the hosts and their certificates, start every member and wait until the cluster
    /// answers.
    pub fn start(n: usize) -> Self {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let clusters = clusters_json(n);
        let farms: Vec<Farm> = (0..n)
            .map(|i| Farm::for_host(&clusters, &host_name(i)))
            .collect();
        write_trust_roots(&farms);
        let mut cluster = Self {
            farms,
            procs: Procs::default(),
            starts: 0,
            _one_at_a_time: guard,
        };
        cluster.start_members(&(0..n).collect::<Vec<_>>());
        cluster
    }

    /// The farm (root) of host `i`.
    pub fn farm(&self, i: usize) -> &Farm {
        &self.farms[i]
    }

    /// Stop the member of host `i` (SIGKILL: as abrupt as a host that goes away).
    pub fn stop_member(&mut self, i: usize) {
        self.procs.kill(&host_name(i));
    }

    /// Start the member of host `i` (again: it keeps its data dir and rejoins).
    pub fn start_member(&mut self, i: usize) {
        let farm = &self.farms[i];
        let (name, ip) = (host_name(i), host_ip(i));
        wait_for_free_ports(ip);
        let pki = |file: &str| farm.join(file.trim_start_matches('/'));
        let initial: Vec<String> = (0..self.farms.len())
            .map(|j| format!("{}=https://{}:2380", host_name(j), host_ip(j)))
            .collect();
        let mut cmd = Command::new(ETCD);
        cmd.args(["--name", &name])
            .arg("--data-dir")
            .arg(farm.join("var/lib/srvctl/etcd"))
            .args(["--listen-client-urls", &format!("https://{ip}:2379")])
            .args(["--advertise-client-urls", &format!("https://{ip}:2379")])
            .args(["--listen-peer-urls", &format!("https://{ip}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("https://{ip}:2380"),
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "srvctl-test"])
            // A commit is one transaction: a first one that seeds the cluster with a whole
            // datastore holds a key per record (etcd's defaults: 128 operations, 1.5 MiB).
            .args(["--max-txn-ops", "100000", "--max-request-bytes", "33554432"])
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(pki(CA_CERT))
            .arg("--cert-file")
            .arg(pki(HOST_CERT))
            .arg("--key-file")
            .arg(pki(HOST_KEY))
            .arg("--peer-client-cert-auth")
            .arg("--peer-trusted-ca-file")
            .arg(pki(CA_CERT))
            .arg("--peer-cert-file")
            .arg(pki(HOST_CERT))
            .arg("--peer-key-file")
            .arg(pki(HOST_KEY));
        self.starts += 1;
        let log = farm.tmp().join(format!("etcd-{}.log", self.starts));
        self.procs.spawn(&name, cmd, log);
    }

    /// Start the members of `hosts` (again), then wait, up to 20 s, until every member of the
    /// cluster answers its status and follows a leader and a write goes through: a command
    /// run next on any host finds a majority at once (a member just started may not answer
    /// the one-second probe of `sc` yet although the others already have a quorum).
    pub fn start_members(&mut self, hosts: &[usize]) {
        for &i in hosts {
            self.start_member(i);
        }
        let timeout = Duration::from_secs(20);
        let deadline = Instant::now() + timeout;
        loop {
            let states = match self.connect(0) {
                Ok(conn) => conn.member_states(),
                Err(e) => vec![Err(e.to_string())],
            };
            let healthy = states.len() == self.farms.len()
                && states
                    .iter()
                    .all(|s| s.as_ref().is_ok_and(|s| s.leader != 0));
            if healthy {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the etcd members were not all healthy within {timeout:?}: {states:?}\n{}",
                self.procs.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.wait_until_answering(deadline.saturating_duration_since(Instant::now()));
    }

    /// Wait until a write through host 0's connection succeeds (a leader is elected and a
    /// majority answers).
    pub fn wait_until_answering(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let error = match self.connect(0) {
                Ok(conn) => {
                    let mut kv = conn.kv();
                    let put = kv.put(format!("{}probe", conn.prefix()), "", None);
                    match conn.request("the probe", put) {
                        Ok(_) => return,
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {timeout:?}: {error}\n{}",
                self.procs.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A connection of host `i` to the cluster, through the library.
    pub fn connect(&self, i: usize) -> Result<Connection, srvctl::cluster::etcd::ClusterError> {
        let farm = &self.farms[i];
        let text = fs::read_to_string(farm.join("etc/srvctl/clusters.json")).unwrap();
        let clusters = Clusters::parse(Path::new("clusters.json"), &text).unwrap();
        Connection::open(
            &Local::new(true),
            &Paths::rooted(farm.root()),
            &clusters,
            &host_name(i),
        )
    }

    /// Every key of the cluster under `doc/` (after the prefix), read straight from etcd.
    pub fn document_keys(&self, i: usize) -> Vec<(String, Vec<u8>)> {
        self.keys_under(i, "doc/")
    }

    /// Every key of the cluster under `dir` (after the prefix), read straight from etcd
    /// through member `i`.
    pub fn keys_under(&self, i: usize, dir: &str) -> Vec<(String, Vec<u8>)> {
        let conn = self.connect(i).expect("connect");
        let mut kv = conn.kv();
        let options = etcd_client::GetOptions::new().with_prefix();
        let all = conn
            .request(
                "the test's read",
                kv.get(format!("{}{dir}", conn.prefix()), Some(options)),
            )
            .unwrap_or_else(|e| panic!("read {dir}: {e}"));
        all.kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                let key = key.strip_prefix(conn.prefix()).unwrap().to_owned();
                (key, kv.value().to_vec())
            })
            .collect()
    }

    /// Every member's log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs.logs()
    }
}

/// Wait (at most 10 s) until nothing listens on the member ports of `ip`: a member started
/// while another process holds them (another test run on this machine, which uses the same
/// fixed addresses) fails with "address already in use".
fn wait_for_free_ports(ip: Ipv4Addr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while [2379, 2380]
        .iter()
        .any(|&port| std::net::TcpListener::bind((ip, port)).is_err())
    {
        assert!(Instant::now() < deadline, "the ports of {ip} stay taken");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster CA (its key on the CA host, host 0, only), and for every host its certificate
/// and key, at the paths srvctl reads.
fn write_trust_roots(farms: &[Farm]) {
    let (ca_pem, ca_key, issuer) = new_ca("srvctl cluster CA");
    for (i, farm) in farms.iter().enumerate() {
        fs::create_dir_all(farm.join("var/lib/srvctl/pki/cluster")).unwrap();
        fs::write(farm.join(CA_CERT.trim_start_matches('/')), &ca_pem).unwrap();
        write_identity(farm, i, &issuer);
    }
    fs::write(farms[0].join(CA_KEY.trim_start_matches('/')), ca_key).unwrap();
}

/// A farm acting as host `i` of `cluster`, with the cluster CA but an identity of the same
/// shape issued by another CA (as a site certificate would be): the members must refuse it.
pub fn impostor(cluster: &EtcdCluster, i: usize) -> Farm {
    let text = fs::read_to_string(cluster.farm(i).join("etc/srvctl/clusters.json")).unwrap();
    let farm = Farm::for_host(&text, &host_name(i));
    fs::create_dir_all(farm.join("var/lib/srvctl/pki/cluster")).unwrap();
    let ca = CA_CERT.trim_start_matches('/');
    fs::copy(cluster.farm(i).join(ca), farm.join(ca)).unwrap();
    let (_, _, issuer) = new_ca("another issuer");
    write_identity(&farm, i, &issuer);
    farm
}

/// A new CA: its certificate and key (PEM) and itself as an issuer.
fn new_ca(name: &str) -> (String, String, Issuer<'static, KeyPair>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    (
        ca_cert.pem(),
        ca_key.serialize_pem(),
        Issuer::new(ca, ca_key),
    )
}

/// Host `i`'s certificate and key, issued by `issuer`.
fn write_identity(farm: &Farm, i: usize, issuer: &Issuer<'_, KeyPair>) {
    let name = host_name(i);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.clone()]).unwrap();
    // etcd checks a connecting member's source address against its certificate; on one
    // machine every connection between loopback addresses leaves from 127.0.0.1.
    for ip in [host_ip(i), Ipv4Addr::LOCALHOST] {
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(ip)));
    }
    params.distinguished_name.push(DnType::CommonName, &name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, issuer).unwrap();
    fs::write(farm.join(HOST_CERT.trim_start_matches('/')), cert.pem()).unwrap();
    fs::write(
        farm.join(HOST_KEY.trim_start_matches('/')),
        key.serialize_pem(),
    )
    .unwrap();
}
