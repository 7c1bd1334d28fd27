//! `sc destroy-ve` killed at random points (SIGKILL) leaves either the old container whole
//! (its record, maybe marked as being destroyed, still holds its name and address) or nothing:
//! never two containers on one address, never a new container on the old one's root
//! filesystem, and running destroy again finishes the job.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::Farm;
use srvctl::model::State;

const ROUNDS: usize = 40;
const SITE: &str = "site.example.com";
/// Files in the fake image: enough that cloning and removing a root filesystem take a while.
const IMAGE_FILES: usize = 300;

/// A built image as srvctl finds it (`sc regenerate rootfs` would make a real one).
fn fake_image(farm: &Farm) {
    let image = farm.root().join("var/lib/machines/.srvctl-images/debian");
    let dir = image.join("usr/share/doc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(image.join("etc")).unwrap();
    for i in 0..IMAGE_FILES {
        std::fs::write(dir.join(format!("file{i}")), [b'x'; 512]).unwrap();
    }
}

fn machine_dir(farm: &Farm) -> PathBuf {
    farm.root().join("var/lib/machines").join(SITE)
}

/// The owner marker srvctl wrote into a root filesystem it cloned.
fn marker(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(".srvctl-owner")).ok()
}

/// The datastore parses and no two containers share an address.
#[track_caller]
fn check_store(farm: &Farm, round: usize) -> State {
    let state = farm.state();
    let ips: BTreeSet<_> = state.containers.values().map(|c| c.ip).collect();
    assert_eq!(
        ips.len(),
        state.containers.len(),
        "round {round}: two containers share an address"
    );
    state
}

#[test]
fn killed_destroys_never_free_an_address_or_a_root_filesystem_too_early() {
    let farm = Farm::new();
    fake_image(&farm);
    let mut rng = common::XorShift(0xdead_beef_0bad_cafe);
    let (mut killed, mut unfinished) = (0, 0);
    farm.sc_ok(&["add-ve", SITE]);
    for round in 0..ROUNDS {
        let old = marker(&machine_dir(&farm)).expect("srvctl marks the clone it makes");
        let old_ip = farm.state().containers[&SITE.parse().unwrap()].ip;

        let mut child = farm
            .command(&["destroy-ve", SITE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sc");
        std::thread::sleep(Duration::from_micros(rng.next() % 120_000));
        let _ = child.kill();
        if !child.wait().expect("wait for sc").success() {
            killed += 1;
        }

        let state = check_store(&farm, round);
        let record = state.containers.get(&SITE.parse().unwrap());
        match record {
            Some(c) => assert_eq!(c.ip, old_ip, "round {round}: the record moved"),
            None => assert!(
                !machine_dir(&farm).exists(),
                "round {round}: the record is gone but its root filesystem is left"
            ),
        }
        farm.sc_ok(&["regenerate"]);
        let nspawn = farm
            .root()
            .join(format!("run/systemd/nspawn/{SITE}.nspawn"));
        if record.is_some_and(|c| c.destroying) {
            assert!(
                !nspawn.exists(),
                "round {round}: a container being destroyed was rendered"
            );
        }
        // Another site added now never gets the old container's address while it is there.
        let probe = format!("probe{round}.example.com");
        farm.sc_ok(&["add-ve", &probe, "--no-start"]);
        check_store(&farm, round);

        if record.is_some() {
            unfinished += 1;
            let line = farm.sc(&["add-ve", SITE]).refused().to_owned();
            assert!(line.contains(SITE), "round {round}: {line}");
            farm.sc_ok(&["destroy-ve", SITE]);
            assert!(!machine_dir(&farm).exists(), "round {round}");
        }
        farm.sc_ok(&["destroy-ve", &probe]);
        farm.sc_ok(&["add-ve", SITE]);
        let new = marker(&machine_dir(&farm)).expect("the new clone is marked");
        assert_ne!(
            new, old,
            "round {round}: the new container got the old root filesystem"
        );
        check_store(&farm, round);
    }
    eprintln!("{ROUNDS} rounds: {killed} destroys killed, {unfinished} left a record to finish");
    assert!(
        unfinished > 0,
        "no destroy was ever interrupted: the test proves nothing"
    );
}
