//! Mail on the host with the real postfix and OpenDKIM: the host's postfix runs the
//! configuration srvctl renders (`/run/srvctl/mail/postfix`, as `srvctl-postfix.service` runs
//! it), OpenDKIM runs srvctl's opendkim.conf with the key `sc add-ve` made, and a real named
//! serves the rendered zones. In network namespaces the test makes: a host, a bridge to a
//! "mail container" (a second postfix that delivers to Maildirs) and an outside network.
//!
//! - swaks from outside delivers a message to alice@example.com, which then sits in the mail
//!   container's Maildir (the host relayed it to `mail.example.com`'s address, from the data);
//! - relaying to a foreign domain from outside without authentication is refused (554 or 454);
//! - a message sent from the container network out through the host is relayed, carries a
//!   DKIM-Signature of example.com, and that signature verifies against the key published in
//!   the zone (OpenDKIM in verify mode, asking the real named); the same message with one word
//!   of its body changed does not.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Farm;
use common::real::{
    self, Netns, Procs, output, require_root, require_tool, run_ok, unique, wait_for,
};

const POSTFIX: &str = "/usr/sbin/postfix";
const OPENDKIM: &str = "/usr/sbin/opendkim";
const SWAKS: &str = "/usr/bin/swaks";

const CLUSTERS: &str =
    r#"{"mail":{"h1.test":{"host_ip":"192.0.2.11","hostnet":1,"dns":"master"}}}"#;
/// The host's address on the outside network, and the outsider's.
const HOST_IP: &str = "192.0.2.11";
const OUTSIDER: &str = "192.0.2.100";
/// The host's address on the containers' bridge (their gateway).
const GATEWAY: &str = "10.16.0.1";

/// The words of the first `ExecStart=` (or, with `pre`, `ExecStartPre=`) of srvctl's unit.
fn unit_line(unit: &str, key: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("units")
        .join(unit);
    let text = fs::read_to_string(&path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{unit} has no {key}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The value of `-c` or `-x` in a command line.
fn option(words: &[String], flag: &str) -> String {
    let at = words.iter().position(|w| w == flag).expect("the option");
    words[at + 1].clone()
}

/// `swaks ARGS…` in `ns`: its exit status and everything it printed.
fn swaks(ns: &Netns, args: &[&str]) -> (bool, String) {
    let mut argv = vec![SWAKS, "--timeout", "10"];
    argv.extend(args);
    let out = output(&mut ns.exec(&argv));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The messages delivered to `dir` (a Maildir's `new/`).
fn delivered(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// A directory of `root`, made (with parents) and owned by `owner`.
fn owned_dir(root: &Path, rel: &str, owner: &str) -> PathBuf {
    let dir = root.join(rel);
    fs::create_dir_all(&dir).unwrap();
    run_ok(Command::new("chown").arg(owner).arg(&dir));
    dir
}

/// The mail container's postfix: virtual mailboxes for alice and bob of example.com, in
/// Maildirs under `/var/lib/mbox` (its root's, bound there), listening on `ip`; the services
/// of srvctl's master.cf. It asks no DNS for its clients' names: the namespace has no
/// resolver, and each lookup would wait for its time-out.
fn mail_container_config(root: &Path, master_cf: &Path, ip: &str) {
    let etc = root.join("run/mbox");
    fs::create_dir_all(&etc).unwrap();
    fs::copy(master_cf, etc.join("master.cf")).unwrap();
    fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nmyhostname = mail.example.com\nmydestination =\n\
             alias_maps =\nalias_database =\ninet_interfaces = {ip}\ninet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\nvirtual_mailbox_domains = example.com\n\
             virtual_mailbox_base = /var/lib/mbox\n\
             virtual_mailbox_maps = texthash:/run/mbox/mailboxes\n\
             virtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n\
             virtual_minimum_uid = 100\n\
             smtpd_peername_lookup = no\n"
        ),
    )
    .unwrap();
    fs::write(
        etc.join("mailboxes"),
        "alice@example.com example.com/alice/\nbob@example.com example.com/bob/\n",
    )
    .unwrap();
    owned_dir(root, "var/lib/mbox", "5000:5000");
    owned_dir(root, "var/lib/postfix", "postfix:postfix");
    fs::create_dir_all(root.join("var/spool/postfix")).unwrap();
}

/// Whether something listens on TCP `port` of `ip` in `ns`.
fn listens(ns: &Netns, ip: &str, port: u16) -> bool {
    let out = output(&mut ns.exec(&["ss", "-Hltn"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(&format!("{ip}:{port} ")) || l.contains(&format!("0.0.0.0:{port} ")))
}

#[test]
fn the_host_relays_to_the_mail_container_refuses_open_relay_and_signs_the_containers_mail() {
    if !require_root("mail_postfix") {
        return;
    }
    for tool in [POSTFIX, OPENDKIM, SWAKS, real::NAMED] {
        require_tool(tool);
    }
    let root = Farm::with_clusters(CLUSTERS);
    root.sc_ok(&["add-ve", "example.com", "--no-start"]);
    root.sc_ok(&["add-ve", "mail.example.com", "--no-start"]);
    let out = root.sc_ok(&["regenerate", "--json"]);
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["notes"], serde_json::json!([]), "{out}");
    assert_eq!(outcome["skipped"], serde_json::json!([]), "{out}");
    let data: serde_json::Value =
        serde_json::from_slice(&fs::read(root.datastore_path()).unwrap()).unwrap();
    let site = &data["containers"]["example.com"];
    let mailbox_ip = data["containers"]["mail.example.com"]["ip"]
        .as_str()
        .unwrap()
        .to_owned();
    let site_ip = site["ip"].as_str().unwrap().to_owned();
    let selector = site["dkim"]["selector"].as_str().unwrap().to_owned();
    let key = root.join("var/lib/srvctl/dkim/example.com.private");
    let mode = fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "the private key"
    );
    let transport = fs::read_to_string(root.join("run/srvctl/mail/postfix/transport")).unwrap();
    assert!(
        transport.contains(&format!("example.com smtp:[{mailbox_ip}]:25\n")),
        "{transport}"
    );

    // The host, the bridge to the containers, the outside network.
    let host = Netns::new(&unique("mxh"));
    let container = Netns::new(&unique("mxc"));
    let outside = Netns::new(&unique("mxo"));
    host.veth("mxbr", &container, "mxve");
    host.ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", "mxbr"]);
    for ip in [&mailbox_ip, &site_ip] {
        container.ip(&["addr", "add", &format!("{ip}/24"), "dev", "mxve"]);
    }
    container.ip(&["route", "add", "default", "via", GATEWAY]);
    host.veth("mxout", &outside, "mxin");
    host.ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", "mxout"]);
    outside.ip(&["addr", "add", &format!("{OUTSIDER}/24"), "dev", "mxin"]);

    let started = Instant::now();
    let logs = root.tmp().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let mut procs = Procs::default();
    real::spawn_named(
        &host,
        root.root(),
        &["/run/srvctl"],
        "127.0.0.1",
        &root.tmp().join("named"),
        "named",
        &mut procs,
    );

    // OpenDKIM as srvctl-opendkim.service runs it: the key directory handed to the opendkim
    // user first (its ExecStartPre=).
    let dkim_binds = ["/run/srvctl", "/var/lib/srvctl/dkim"];
    let pre = unit_line("srvctl-opendkim.service", "ExecStartPre=");
    let pre: Vec<&str> = pre.iter().map(String::as_str).collect();
    run_ok(&mut host.exec_at_host_paths(root.root(), &dkim_binds, &[], &pre));
    let start = unit_line("srvctl-opendkim.service", "ExecStart=");
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    procs.spawn(
        "opendkim",
        host.exec_at_host_paths(root.root(), &dkim_binds, &[], &start),
        logs.join("opendkim.log"),
    );

    // The host's postfix on srvctl's configuration directory (the -c of srvctl-postfix.service),
    // in the foreground; its queue and data directories are the test's.
    let config = option(&unit_line("srvctl-postfix.service", "ExecStart="), "-c");
    owned_dir(root.root(), "var/lib/postfix", "postfix:postfix");
    fs::create_dir_all(root.join("var/spool/postfix")).unwrap();
    let queue_binds = ["/run/srvctl", "/var/spool/postfix", "/var/lib/postfix"];
    procs.spawn(
        "host postfix",
        host.exec_at_host_paths(
            root.root(),
            &queue_binds,
            &[],
            &[POSTFIX, "-c", &config, "start-fg"],
        ),
        logs.join("host-postfix.log"),
    );

    // The mail container's postfix.
    let mailbox = tempfile::tempdir().unwrap();
    let mbox_root = mailbox.path();
    mail_container_config(
        mbox_root,
        &root.join("run/srvctl/mail/postfix/master.cf"),
        &mailbox_ip,
    );
    procs.spawn(
        "container postfix",
        container.exec_at_host_paths(
            mbox_root,
            &[
                "/run/mbox",
                "/var/spool/postfix",
                "/var/lib/postfix",
                "/var/lib/mbox",
            ],
            &[],
            &[POSTFIX, "-c", "/run/mbox", "start-fg"],
        ),
        logs.join("container-postfix.log"),
    );
    let up = wait_for(&mut procs, Duration::from_secs(20), || {
        listens(&host, HOST_IP, 25)
            && listens(&host, "127.0.0.1", 8891)
            && listens(&container, &mailbox_ip, 25)
            && real::dig(
                &host,
                "127.0.0.1",
                &[
                    "+short",
                    "TXT",
                    &format!("{selector}._domainkey.example.com"),
                ],
            )
            .contains("v=DKIM1")
    });
    assert!(up, "the mail services did not come up:\n{}", procs.logs());
    eprintln!(
        "mail_postfix: services up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let inbound = Instant::now();

    // Inbound: from outside to alice, into the mail container's Maildir.
    let (ok, said) = swaks(
        &outside,
        &[
            "--server",
            HOST_IP,
            "--from",
            "sender@foreign.test",
            "--to",
            "alice@example.com",
            "--header",
            "Subject: inbound test",
            "--body",
            "hello alice",
        ],
    );
    assert!(ok && said.contains("250 2.0.0 Ok: queued"), "{said}");
    let alice = mbox_root.join("var/lib/mbox/example.com/alice/new");
    let arrived = wait_for(&mut procs, Duration::from_secs(20), || {
        delivered(&alice).len() == 1
    });
    assert!(arrived, "alice's message did not arrive:\n{}", procs.logs());
    eprintln!(
        "mail_postfix: from outside into alice's Maildir in {} ms",
        inbound.elapsed().as_millis()
    );
    let message = fs::read_to_string(&delivered(&alice)[0]).unwrap();
    assert!(
        message.contains("hello alice") && message.contains("Subject: inbound test"),
        "{message}"
    );

    // No open relay: from outside to a foreign domain, refused.
    let (ok, said) = swaks(
        &outside,
        &[
            "--server",
            HOST_IP,
            "--from",
            "spammer@foreign.test",
            "--to",
            "victim@elsewhere.test",
        ],
    );
    assert!(!ok, "relayed for an outsider: {said}");
    assert!(
        said.contains("<** 554") || said.contains("<** 454"),
        "no 554/454 refusal: {said}"
    );
    assert!(said.contains("Relay access denied"), "{said}");

    // Outbound from the container network: relayed (a foreign domain is accepted too) and
    // signed. The message to bob comes back to the mail container, where the test reads it.
    let (ok, said) = swaks(
        &container,
        &[
            "--server",
            GATEWAY,
            "--local-interface",
            &site_ip,
            "--from",
            "alice@example.com",
            "--to",
            "carol@elsewhere.test",
        ],
    );
    assert!(
        ok && said.contains("250 2.0.0 Ok: queued"),
        "outbound relay refused: {said}"
    );
    let (ok, said) = swaks(
        &container,
        &[
            "--server",
            GATEWAY,
            "--local-interface",
            &site_ip,
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.com",
            "--header",
            "Subject: signed",
            "--body",
            "a message from the site",
        ],
    );
    assert!(ok, "{said}");
    let bob = mbox_root.join("var/lib/mbox/example.com/bob/new");
    let arrived = wait_for(&mut procs, Duration::from_secs(20), || {
        delivered(&bob).len() == 1
    });
    assert!(arrived, "bob's message did not arrive:\n{}", procs.logs());
    let signed = fs::read_to_string(&delivered(&bob)[0]).unwrap();
    assert!(
        signed.contains("DKIM-Signature: v=1; a=rsa-sha256"),
        "{signed}"
    );
    assert!(
        signed.contains("d=example.com;") && signed.contains(&format!("s={selector};")),
        "{signed}"
    );

    // Verified by OpenDKIM against the key named publishes.
    let verify = root.tmp().join("verify");
    fs::create_dir_all(&verify).unwrap();
    let conf = verify.join("opendkim.conf");
    fs::write(&conf, "Mode v\nSyslog no\nNameservers 127.0.0.1\n").unwrap();
    let check = |text: &str| {
        let file = verify.join("message");
        fs::write(&file, text).unwrap();
        let out = output(&mut host.exec(&[
            OPENDKIM,
            "-x",
            conf.to_str().unwrap(),
            "-t",
            file.to_str().unwrap(),
        ]));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let verified = format!("verification (s={selector}, d=example.com, 2048-bit key) succeeded");
    let (ok, said) = check(&signed);
    assert!(ok && said.contains(&verified), "{said}\n{signed}");
    let forged = signed.replace("a message from the site", "a message from someone else");
    let (_, said) = check(&forged);
    assert!(
        !said.contains("succeeded") && said.contains("d=example.com"),
        "a changed body verified: {said}"
    );
    // Stopped before their directories go.
    procs.kill_all();
}
