//! A DNS slave with the real BIND: the cluster's master (`"dns": "master"`) and its slave
//! (`"dns": "slave"`), each a real named on its own scratch root in its own network namespace,
//! the two joined by a veth and holding one TSIG key (a secret of `tsig-keygen`, in the file
//! srvctl-sync writes). The slave answers
//! for the master's zones; after `sc add-ve` on the master, the new datastore on the slave (as
//! srvctl-sync would install it) and a reload of both, the slave answers for the new zone; a
//! record added to a zone the slave has reaches it by the master's NOTIFY alone (the zones'
//! SOA refresh is an hour, and the slave is not reloaded). An AXFR without the key is refused
//! by the master; with it the master transfers the zone; the slave transfers to no one.
//!
//! The fragments name absolute paths (`/run/srvctl/dns/…`, `/var/lib/srvctl/dns/transfer.key`):
//! each named runs in a private mount namespace where its root's directories are bound there.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Farm;
use common::real::{self, Netns, Procs, output, require_root, require_tool, unique, wait_for};
use nix::sys::signal::Signal;

const DIG: &str = "/usr/bin/dig";

const MASTER: &str = "192.0.2.11";
const SLAVE: &str = "192.0.2.12";
const CLUSTERS: &str = r#"{"dns":{
    "h1.test":{"host_ip":"192.0.2.11","hostnet":1,"role":"ca","dns":"master"},
    "h2.test":{"host_ip":"192.0.2.12","hostnet":2,"dns":"slave"}}}"#;

/// The bound a slave must meet, from the reload that changes the data to its answer.
const WITHIN: Duration = Duration::from_secs(2);

/// One DNS host: its scratch root, its namespace and its address there.
struct DnsHost {
    farm: Farm,
    ns: Netns,
    ip: &'static str,
}

impl DnsHost {
    /// `dig @<this host> +short TYPE NAME`, asked from the host's own namespace.
    fn short(&self, kind: &str, name: &str) -> String {
        real::dig(&self.ns, self.ip, &["+short", kind, name])
    }

    /// A named of its own serving the host's rendered fragment, started in `procs`.
    fn start_named(&self, label: &str, procs: &mut Procs) {
        real::spawn_named(
            &self.ns,
            self.farm.root(),
            &["/run/srvctl", "/var/lib/srvctl/dns"],
            self.ip,
            &self.farm.tmp().join("named"),
            label,
            procs,
        );
    }

    fn reload(&self) {
        real::signal_in(&self.ns, "named", Signal::SIGHUP);
    }
}

/// Regenerate on `host` and check that named-checkconf (on the master, with the zones loaded)
/// passed: no note says the checkers are missing, nothing was refused.
fn regenerate(host: &Farm) {
    let out = host.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    let notes = outcome["notes"].to_string();
    assert!(
        !notes.contains("named"),
        "the DNS files were not checked: {notes}"
    );
}

/// The datastore of `from` on `to`, as srvctl-sync installs the cluster's on every host.
fn replicate(from: &Farm, to: &Farm) {
    fs::create_dir_all(to.state_dir()).unwrap();
    fs::copy(from.datastore_path(), to.datastore_path()).unwrap();
}

/// `dig AXFR zone` from `client`'s namespace to `server`, with the key file `key` if given.
fn axfr(client: &DnsHost, server: &str, zone: &str, key: Option<&Path>) -> String {
    let mut args = vec!["AXFR", zone];
    if let Some(key) = key {
        args.extend(["-k", key.to_str().unwrap()]);
    }
    real::dig(&client.ns, server, &args)
}

/// Whether `dig AXFR` printed the zone: its SOA, first and last.
fn transferred(out: &str, zone: &str) -> bool {
    out.lines()
        .filter(|l| l.starts_with(&format!("{zone}.")) && l.contains("\tSOA\t"))
        .count()
        == 2
}

/// Wait until `check` holds, at most `within`; the time it took, or a failure with the logs.
fn timed(procs: &mut Procs, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let held = loop {
        if check() {
            break true;
        }
        if start.elapsed() > Duration::from_secs(10) || procs.exited().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    assert!(held, "{what}: not after {took:?}\n{}", procs.logs());
    println!("{what}: {} ms", took.as_millis());
    assert!(took <= WITHIN, "{what} took {took:?}, more than {WITHIN:?}");
    took
}

#[test]
fn a_slave_copies_the_masters_zones_by_notify_and_axfr_with_the_key_alone() {
    if !require_root("dns_slave") {
        return;
    }
    for tool in [real::NAMED, DIG, real::TSIG_KEYGEN] {
        require_tool(tool);
    }
    let master = DnsHost {
        farm: Farm::for_host(CLUSTERS, "h1.test"),
        ns: Netns::new(&unique("dnsm")),
        ip: MASTER,
    };
    let slave = DnsHost {
        farm: Farm::for_host(CLUSTERS, "h2.test"),
        ns: Netns::new(&unique("dnss")),
        ip: SLAVE,
    };
    master.ns.veth("dnsm0", &slave.ns, "dnss0");
    master
        .ns
        .ip(&["addr", "add", &format!("{MASTER}/24"), "dev", "dnsm0"]);
    slave
        .ns
        .ip(&["addr", "add", &format!("{SLAVE}/24"), "dev", "dnss0"]);

    // The cluster's one key, on both hosts: a secret from tsig-keygen, in the file srvctl-sync
    // writes for it.
    let made = output(std::process::Command::new(real::TSIG_KEYGEN).args([
        "-a",
        "hmac-sha256",
        "srvctl-transfer",
    ]));
    assert!(made.status.success());
    let made = String::from_utf8(made.stdout).unwrap();
    let secret = made
        .split('"')
        .nth(3)
        .unwrap_or_else(|| panic!("no secret in {made}"));
    let text = srvctl::cluster::dns_key::key_file(secret).expect("a secret");
    for host in [&master, &slave] {
        let dir = host.farm.join("var/lib/srvctl/dns");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("transfer.key"), &text).unwrap();
    }
    let key = master.farm.join("var/lib/srvctl/dns/transfer.key");

    master.farm.sc_ok(&["add-ve", "web.example.com"]);
    regenerate(&master.farm);
    replicate(&master.farm, &slave.farm);
    regenerate(&slave.farm);
    assert!(
        !slave.farm.join("run/srvctl/dns/zones").exists(),
        "a slave renders no zone files of its own"
    );

    let mut procs = Procs::default();
    // The master first: a slave that finds no master retries only after minutes.
    master.start_named("master", &mut procs);
    let up = wait_for(&mut procs, Duration::from_secs(15), || {
        master.short("A", "web.example.com") == MASTER
    });
    assert!(up, "the master did not answer:\n{}", procs.logs());
    slave.start_named("slave", &mut procs);
    let up = wait_for(&mut procs, Duration::from_secs(15), || {
        slave.short("A", "web.example.com") == MASTER
    });
    assert!(up, "the slave did not answer:\n{}", procs.logs());
    assert_eq!(master.short("A", "www.web.example.com"), MASTER);
    assert_eq!(slave.short("A", "www.web.example.com"), MASTER);
    assert_eq!(
        slave.short("MX", "web.example.com"),
        "10 mail.web.example.com."
    );
    assert_eq!(
        slave.short("A", "other.example.org"),
        "",
        "not a zone of ours"
    );

    // Transfers: only with the key, and only from the master.
    let without = axfr(&slave, MASTER, "web.example.com", None);
    assert!(
        !transferred(&without, "web.example.com") && without.contains("Transfer failed"),
        "the master transferred the zone without the key:\n{without}"
    );
    let with = axfr(&slave, MASTER, "web.example.com", Some(&key));
    assert!(
        transferred(&with, "web.example.com") && with.contains("www.web.example.com."),
        "the master refused the key:\n{with}"
    );
    for key in [None, Some(key.as_path())] {
        let out = axfr(&master, SLAVE, "web.example.com", key);
        assert!(
            !transferred(&out, "web.example.com") && out.contains("Transfer failed"),
            "the slave transferred the zone (key {key:?}):\n{out}"
        );
    }

    // A new site: the master's new zone, the slave's new declaration (from the replicated
    // datastore), both reloaded; the slave transfers the new zone at once.
    master.farm.sc_ok(&["add-ve", "new.example.org"]);
    regenerate(&master.farm);
    let start = Instant::now();
    master.reload();
    replicate(&master.farm, &slave.farm);
    regenerate(&slave.farm);
    slave.reload();
    let _ = timed(&mut procs, "new zone on the slave", || {
        slave.short("A", "new.example.org") == MASTER
    });
    println!(
        "new zone on the slave, from the master's reload: {} ms",
        start.elapsed().as_millis()
    );
    assert!(start.elapsed() <= WITHIN, "{:?}", start.elapsed());

    // A record in a zone the slave has: its declaration does not change, the slave is not
    // reloaded; the master's NOTIFY makes it fetch the zone (its SOA refresh is an hour).
    let fragment = fs::read(slave.farm.join("run/srvctl/dns/named.conf")).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // a larger serial
    master.farm.sc_ok(&[
        "web.example.com",
        "dns",
        "add",
        "--name",
        "api",
        "A",
        "192.0.2.7",
    ]);
    regenerate(&master.farm);
    replicate(&master.farm, &slave.farm);
    regenerate(&slave.farm);
    assert_eq!(
        fs::read(slave.farm.join("run/srvctl/dns/named.conf")).unwrap(),
        fragment,
        "the slave's declarations changed"
    );
    master.reload();
    let _ = timed(&mut procs, "changed zone on the slave, by NOTIFY", || {
        slave.short("A", "api.web.example.com") == "192.0.2.7"
    });
    let log = procs.log("slave");
    assert!(
        log.contains("notify from 192.0.2.11") && log.contains("key srvctl-transfer"),
        "the slave's log shows no NOTIFY or no signed transfer:\n{log}"
    );
    for line in log
        .lines()
        .filter(|l| l.contains("notify from") || l.contains("srvctl-transfer"))
    {
        println!("slave: {line}");
    }
    procs.kill_all();
}
