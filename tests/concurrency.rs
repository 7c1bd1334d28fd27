//! Many `sc` writers at once: the datastore lock serialises them, so none is lost and no two
//! containers share an address.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::{Farm, Run};

const WRITERS: usize = 50;

#[test]
fn fifty_simultaneous_add_ve_all_succeed_with_distinct_addresses() {
    let farm = Farm::new().with_alice_and_bob();
    let names: Vec<String> = (1..=WRITERS)
        .map(|n| format!("site{n}.example.com"))
        .collect();
    // Spawn every writer before waiting for any of them.
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            farm.command(&["add-ve", name, "--user", "bob"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn sc")
        })
        .collect();
    let mut printed = BTreeSet::new();
    for (name, child) in names.iter().zip(children) {
        let run = Run::from_output(child.wait_with_output().expect("wait for sc"));
        let out = run.ok();
        let (got_name, ip) = out
            .trim_end()
            .split_once(' ')
            .unwrap_or_else(|| panic!("unexpected output {out:?}"));
        assert_eq!(got_name, name);
        let ip: Ipv4Addr = ip.parse().expect("an address");
        assert!(printed.insert(ip), "{ip} was handed out twice");
    }

    let state = farm.state();
    assert!(state.set_aside.is_empty(), "{:?}", state.set_aside);
    assert_eq!(state.containers.len(), WRITERS);
    let stored: BTreeSet<Ipv4Addr> = state.containers.values().map(|c| c.ip).collect();
    assert_eq!(stored.len(), WRITERS, "two containers share an address");
    assert_eq!(
        stored, printed,
        "the datastore disagrees with what was printed"
    );
    let expected: BTreeSet<Ipv4Addr> = (2..2 + WRITERS as u8)
        .map(|d| Ipv4Addr::new(10, 17, 1, d))
        .collect();
    assert_eq!(stored, expected, "not exactly 10.17.1.2-.51");
    for name in &names {
        let c = &state.containers[&name.parse().unwrap()];
        assert_eq!(c.user.to_string(), "bob");
        assert_eq!(c.host, "h1.test");
    }

    // Concurrent appends to the audit log stay whole lines.
    let audit = farm.audit_records();
    assert_eq!(audit.len(), 2 + WRITERS);
    assert!(audit.iter().all(|r| r["outcome"] == "ok"));
}
