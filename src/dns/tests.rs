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
    let changes = changeset::plan(&t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
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
    let changes = changeset::plan(&t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
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
fn any_change_reloads_named() {
    assert_eq!(Dns.reloads(&[]), []);
    assert_eq!(
        Dns.reloads(&[Path::new(zones::CONFIG)]),
        [Request::Reload(UNIT.into())]
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
    let changes = changeset::plan(&t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
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
    let changes = changeset::plan(&t, Path::new("/r"), &BTreeSet::new(), &sys).unwrap();
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
