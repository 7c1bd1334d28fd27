//! Writers killed at random points (SIGKILL) never leave a truncated or invalid datastore, never
//! lose a change that was reported done, and never stop a later writer.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::Farm;
use srvctl::model::State;

const ROUNDS: usize = 60;
const WRITERS_PER_ROUND: usize = 4;
const OWNERS: [&str; 4] = ["bob", "carol", "dave", "root"];

/// The datastore must be whole: it parses, nothing is set aside, addresses are distinct.
#[track_caller]
fn check_store(farm: &Farm, round: usize) -> Option<State> {
    let bytes = farm.datastore_bytes()?;
    let state = State::from_json(&bytes).unwrap_or_else(|e| {
        panic!(
            "round {round}: invalid datastore ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert!(
        state.set_aside.is_empty(),
        "round {round}: records set aside: {:?}",
        state.set_aside
    );
    let ips: BTreeSet<_> = state.containers.values().map(|c| c.ip).collect();
    assert_eq!(
        ips.len(),
        state.containers.len(),
        "round {round}: two containers share an address"
    );
    Some(state)
}

fn tmp_leftovers(farm: &Farm) -> Vec<String> {
    std::fs::read_dir(farm.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".datastore.json.tmp."))
        .collect()
}

#[test]
fn killed_writers_never_damage_the_datastore() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-user", "carol", "--reseller", "alice"]);
    farm.sc_ok(&["add-user", "dave"]);
    // Debris such as a killed writer leaves, planted up front: it must never matter.
    std::fs::write(farm.state_dir().join(".datastore.json.tmp.1"), b"{\"trunc").unwrap();

    let mut rng = common::XorShift(0x5eed_cafe_f00d_beef);
    let (mut killed, mut finished) = (0, 0);
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..WRITERS_PER_ROUND)
            .map(|k| format!("r{round}-w{k}.example.com"))
            .collect();
        let mut children: Vec<Child> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                farm.command(&["add-ve", name, "--user", OWNERS[(round + k) % OWNERS.len()]])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn sc")
            })
            .collect();
        std::thread::sleep(Duration::from_micros(rng.next() % 15_000));
        for child in &mut children {
            // SIGKILL; an error only means it has already exited.
            let _ = child.kill();
        }
        let mut done = Vec::new();
        for (name, mut child) in names.iter().zip(children) {
            let status = child.wait().expect("wait for sc");
            if status.success() {
                finished += 1;
                done.push(name);
            } else {
                killed += 1;
            }
        }

        let state = check_store(&farm, round);
        for name in done {
            let present = state
                .as_ref()
                .is_some_and(|s| s.containers.contains_key(&name.parse().unwrap()));
            assert!(
                present,
                "round {round}: {name} was reported added but is missing"
            );
        }

        let after = format!("after{round}.example.com");
        farm.sc_ok(&["add-ve", &after, "--user", OWNERS[round % OWNERS.len()]]);
        let state = check_store(&farm, round).expect("the datastore exists after a write");
        assert!(state.containers.contains_key(&after.parse().unwrap()));
    }
    eprintln!(
        "{ROUNDS} rounds: {killed} writers killed, {finished} finished; \
         temp files left behind: {:?}",
        tmp_leftovers(&farm)
    );
    assert!(
        killed > 0,
        "no writer was ever killed: the test proves nothing"
    );
    let state = farm.state();
    assert!(state.containers.len() >= ROUNDS + finished);
}
