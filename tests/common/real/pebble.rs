//! Debian's `pebble` (a test ACME CA) with `pebble-challtestsrv` as its DNS server (pebble's
//! `-dnsserver`, and the resolver srvctl is pointed at). The DNS server answers only the
//! records the test adds through its management API ([`Pebble::add_a`]); pebble validates
//! HTTP-01 at the address a name resolves to, on its `httpPort`. pebble's own TLS certificate
//! (for the directory) is made with rcgen; clients trust it through [`Pebble::tls_ca`].
//! Optionally everything runs inside a network namespace, where the DNS server listens on
//! 127.0.0.1:53.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{Netns, Procs, output, run_ok, wait_for};

/// The pebble binary.
pub const PEBBLE: &str = "/usr/bin/pebble";
/// Its mock DNS.
pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// A free port on this namespace's loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it: (ca pem, cert pem, key pem).
fn tls() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "test pebble TLS CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

/// A running pebble and its DNS, killed when dropped.
pub struct Pebble {
    dir: tempfile::TempDir,
    /// The two processes.
    pub procs: Procs,
    /// The directory URL.
    pub directory: String,
    /// The DNS server (UDP and TCP).
    pub dns: SocketAddr,
    management: u16,
    dns_management: u16,
    ns: Option<String>,
}

impl Pebble {
    /// Start pebble validating HTTP-01 on port `http_port`, in `ns` if given (there on fixed
    /// ports, the namespace being empty), else on free ports of the host's loopback.
    pub fn start(http_port: u16, ns: Option<&Netns>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ca, cert, key) = tls();
        fs::write(d.join("tls-ca.pem"), ca).unwrap();
        fs::write(d.join("tls-cert.pem"), cert).unwrap();
        fs::write(d.join("tls-key.pem"), key).unwrap();
        let [listen, management, dns, tls_port, dns_management] = match ns {
            Some(_) => [14000, 15000, 53, 5001, 8055],
            None => [(); 5].map(|()| free_port()),
        };
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": d.join("tls-cert.pem"),
            "privateKey": d.join("tls-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        fs::write(d.join("pebble.json"), config.to_string()).unwrap();
        let mut pebble = Self {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            dir,
            procs: Procs::default(),
            dns: SocketAddr::from(([127, 0, 0, 1], dns)),
            management,
            dns_management,
            ns: ns.map(|n| n.name().to_owned()),
        };
        // No default answer: a name resolves only once the test adds its record.
        let dns_args = [
            "-defaultIPv4".to_owned(),
            String::new(),
            "-defaultIPv6".to_owned(),
            String::new(),
            "-dns01".to_owned(),
            format!("127.0.0.1:{dns}"),
            "-http01".to_owned(),
            String::new(),
            "-https01".to_owned(),
            String::new(),
            "-tlsalpn01".to_owned(),
            String::new(),
            "-management".to_owned(),
            format!("127.0.0.1:{dns_management}"),
        ];
        let mut argv = vec![CHALLTESTSRV.to_owned()];
        argv.extend(dns_args);
        let cmd = pebble.command(&argv);
        let log = pebble.dir.path().join("challtestsrv.log");
        pebble.procs.spawn("challtestsrv", cmd, log);
        let config = pebble.dir.path().join("pebble.json");
        let mut cmd = pebble.command(&[
            PEBBLE.to_owned(),
            "-config".to_owned(),
            config.display().to_string(),
            "-dnsserver".to_owned(),
            pebble.dns.to_string(),
        ]);
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let log = pebble.dir.path().join("pebble.log");
        pebble.procs.spawn("pebble", cmd, log);
        let probe = pebble.curl(&pebble.directory);
        let up = wait_for(&mut pebble.procs, Duration::from_secs(20), || {
            output(Command::new("sh").arg("-c").arg(&probe))
                .status
                .success()
        });
        assert!(up, "pebble did not start:\n{}", pebble.procs.logs());
        pebble
    }

    /// `argv`, inside the namespace if there is one.
    fn command(&self, argv: &[String]) -> Command {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c.arg(&argv[0]);
                c
            }
            None => Command::new(&argv[0]),
        };
        cmd.args(&argv[1..]);
        cmd
    }

    /// A shell command fetching `url` from pebble (trusting its TLS CA).
    fn curl(&self, url: &str) -> String {
        let prefix = self
            .ns
            .as_ref()
            .map(|ns| format!("ip netns exec {ns} "))
            .unwrap_or_default();
        format!(
            "{prefix}curl -sSf --max-time 5 -o /dev/null --cacert {} {url}",
            self.tls_ca().display()
        )
    }

    /// Make `name` resolve to `ip` (an A record) in the DNS server.
    pub fn add_a(&self, name: &str, ip: &str) {
        let body = serde_json::json!({"host": name, "addresses": [ip]}).to_string();
        let argv: Vec<String> = [
            "curl",
            "-sSf",
            "--max-time",
            "5",
            "-d",
            &body,
            &format!("http://127.0.0.1:{}/add-a", self.dns_management),
        ]
        .map(String::from)
        .to_vec();
        run_ok(&mut self.command(&argv));
    }

    /// pebble's log so far (it logs every order it receives).
    pub fn log(&self) -> String {
        self.procs.log("pebble")
    }

    /// Stop the CA but keep its DNS server answering.
    pub fn stop_ca(&mut self) {
        self.procs.kill("pebble");
    }

    /// The CA certificate of pebble's directory TLS (`acme_ca_file`).
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.path().join("tls-ca.pem")
    }

    /// pebble's issuing root (it makes a new one at every start).
    pub fn root(&self) -> String {
        let mut argv: Vec<String> = ["curl", "-sSf", "--max-time", "5", "--cacert"]
            .map(String::from)
            .to_vec();
        argv.push(self.tls_ca().display().to_string());
        argv.push(format!("https://127.0.0.1:{}/roots/0", self.management));
        run_ok(&mut self.command(&argv))
    }
}
