use super::*;
use crate::engine::changeset;
use crate::system::Recording;
use std::collections::BTreeSet;

fn tree() -> Tree {
    let mut t = Tree::default();
    t.file(zones::CONFIG, "zone \"a.test\" { };\n".into());
    t.file(
        format!("{}/a.test.zone", zones::ZONES),
        "a.test. IN NS h1.test.\n".into(),
    );
    t
}

/// The DNS module's changes for `t` on an empty root `/r`.
fn planned(t: &Tree, sys: &Recording) -> changeset::Changes {
    changeset::plan(&Dns, t, Path::new("/r"), &BTreeSet::new(), sys).unwrap()
}

fn checkers() -> guard::Checkers {
    guard::Checkers {
        checkconf: "/usr/sbin/named-checkconf".into(),
    }
}

#[test]
fn the_staged_fragment_and_each_written_zone_are_checked() {
    let sys = Recording::default();
    let paths = Paths::rooted("/r");
    let t = tree();
    let changes = planned(&t, &sys);
    let v = guard::guard(&sys, &paths, &t, &changes, Some(&checkers()));
    assert_eq!(v, Verdict::Accept);
    let commands = sys.command_lines();
    assert_eq!(
        commands,
        [
            "/usr/sbin/named-checkconf /r/run/srvctl/dns.check/named.conf",
            "/usr/sbin/named-checkconf -z /r/run/srvctl/dns.check/zones.conf",
        ]
    );
    assert!(
        sys.read(Path::new("/r/run/srvctl/dns.check/named.conf"))
            .unwrap()
            .is_none()
    );
    // Nothing written: nothing checked.
    let none = changeset::Changes::default();
    assert_eq!(guard::guard(&sys, &paths, &t, &none, None), Verdict::Accept);
    assert_eq!(sys.commands.borrow().len(), 2);
    // No checkers: written with a note.
    assert!(matches!(
        guard::guard(&sys, &paths, &t, &changes, None),
        Verdict::Note(_)
    ));
}

#[test]
fn a_zone_named_would_not_load_is_not_applied() {
    let sys = Recording {
        failing_programs: [(
            "/usr/sbin/named-checkconf".into(),
            "zone a.test/IN: NS 'x' has no address records".into(),
        )]
        .into(),
        ..Recording::default()
    };
    let paths = Paths::rooted("/r");
    let t = tree();
    let changes = planned(&t, &sys);
    let Verdict::Refuse(msg) = guard::guard(&sys, &paths, &t, &changes, Some(&checkers())) else {
        panic!("not refused")
    };
    assert!(
        msg.contains("zone a.test") && msg.contains("no address records"),
        "{msg}"
    );
    assert!(msg.contains("the running zones are kept"), "{msg}");
}

#[test]
fn a_changed_zone_is_reloaded_alone_and_a_changed_fragment_reconfigures_named() {
    let rndc = |args: &[&str]| Request::Control {
        unit: UNIT.into(),
        command: CommandLine::new("rndc", args),
    };
    assert_eq!(Dns.reloads(&[]), []);
    let zone = format!("{}/a.test.zone", zones::ZONES);
    assert_eq!(
        Dns.reloads(&[Path::new(&zone)]),
        [rndc(&["reload", "a.test"])]
    );
    assert_eq!(
        Dns.reloads(&[Path::new(zones::CONFIG)]),
        [rndc(&["reconfig"])]
    );
    // A removed zone is dropped by the reconfig of the fragment that no longer declares it.
    assert_eq!(Dns.removal_reloads(&[Path::new(&zone)]), []);
    assert_eq!(
        Dns.removal_reloads(&[Path::new(zones::CONFIG)]),
        [rndc(&["reconfig"])]
    );
    assert_eq!(
        rndc(&["reload", "a.test"]).to_string(),
        "rndc reload a.test (if named.service runs)"
    );

    // Through the plan: a new zone, a changed one and a removed one reconfigure first, then
    // reload the zones written.
    let sys = Recording::default();
    let base = Path::new("/r");
    let old = format!("{}/old.test.zone", zones::ZONES);
    sys.write(&base.join(&old), b"old\n", 0o644, false).unwrap();
    let mut t = tree();
    t.file(format!("{}/b.test.zone", zones::ZONES), "b\n".into());
    let rendered: Vec<(&'static dyn Module, Tree)> = vec![(&Dns, t)];
    let plan = changeset::plan_modules(rendered, base, &[old.into()].into(), &sys).unwrap();
    assert_eq!(
        plan.reloads(),
        [
            rndc(&["reconfig"]),
            rndc(&["reload", "a.test"]),
            rndc(&["reload", "b.test"]),
        ]
    );
}

fn slave_tree() -> Tree {
    let mut t = Tree::default();
    t.file(
        zones::CONFIG,
        "include \"/var/lib/srvctl/dns/transfer.key\";\nzone \"a.test\" { type slave; };\n".into(),
    );
    t
}

#[test]
fn a_fragment_that_needs_the_transfer_key_is_refused_without_it() {
    let sys = Recording::default();
    let paths = Paths::rooted("/r");
    let t = slave_tree();
    let changes = planned(&t, &sys);
    let Verdict::Refuse(msg) = guard::guard(&sys, &paths, &t, &changes, Some(&checkers())) else {
        panic!("accepted without the key")
    };
    assert!(
        msg.contains("/r/var/lib/srvctl/dns/transfer.key is missing"),
        "{msg}"
    );
    assert!(sys.commands.borrow().is_empty());
    // Unchecked, it is refused all the same.
    assert!(matches!(
        guard::guard(&sys, &paths, &t, &changes, None),
        Verdict::Refuse(_)
    ));
}

#[test]
fn with_the_key_the_fragment_is_checked() {
    let sys = Recording::default();
    let key = Path::new("/r/var/lib/srvctl/dns/transfer.key");
    sys.write(key, b"key \"srvctl-transfer\" { };\n", 0o640, false)
        .unwrap();
    let paths = Paths::rooted("/r");
    let t = slave_tree();
    let changes = planned(&t, &sys);
    // (That the staged copy names the key under the root, tests/dns_slave.rs shows with the
    // real named-checkconf.)
    let v = guard::guard(&sys, &paths, &t, &changes, Some(&checkers()));
    assert_eq!(v, Verdict::Accept);
    let commands: Vec<String> = sys
        .commands
        .borrow()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        commands,
        ["/usr/sbin/named-checkconf /r/run/srvctl/dns.check/named.conf"]
    );
}

#[test]
fn the_plan_keeps_the_serial_of_an_unchanged_zone_and_writes_a_changed_one_larger() {
    let sys = Recording::default();
    let base = Path::new("/r");
    let path = format!("{}/a.test.zone", zones::ZONES);
    let servers = [("h1.test", std::net::Ipv4Addr::new(192, 0, 2, 1))];
    let zone = |records: Vec<crate::model::dns::DnsRecord>| zones::Zone {
        origin: crate::model::web::Domain::new("a.test").unwrap(),
        site: Some(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        site6: None,
        previews: Vec::new(),
        records,
        dkim: None,
    };
    let rendered = |records, serial| {
        let mut t = Tree::default();
        t.file(&path, zones::zone_file(&zone(records), &servers, serial));
        t
    };
    let live = zones::zone_file(&zone(Vec::new()), &servers, 900);
    sys.write(&base.join(&path), live.as_bytes(), 0o644, false)
        .unwrap();
    // The datastore changed elsewhere (a later time), this zone did not: nothing to write.
    let changes = changeset::plan(
        &Dns,
        &rendered(Vec::new(), 1000),
        base,
        &BTreeSet::new(),
        &sys,
    )
    .unwrap();
    assert!(changes.ops.is_empty(), "{:?}", changes.ops);
    // This zone changed, at a datastore time older than its serial: written with 901.
    let record = crate::model::dns::DnsRecord::new("@", "TXT", "x").unwrap();
    let changes = changeset::plan(
        &Dns,
        &rendered(vec![record], 800),
        base,
        &BTreeSet::new(),
        &sys,
    )
    .unwrap();
    let [changeset::Op::Write { bytes, .. }] = &changes.ops[..] else {
        panic!("{:?}", changes.ops)
    };
    let text = String::from_utf8_lossy(bytes);
    assert!(text.contains("( 901 3600 "), "{text}");
}
