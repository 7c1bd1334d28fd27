//! The life of a container through the real `sc`: add-ve never adopts a root filesystem it did
//! not make, `--no-start` adds the record only, and a container whose destroy was interrupted
//! keeps its record and address, is neither linked by the generator nor rendered, refuses
//! every action, and is finished by running destroy again.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{Farm, base_command};

const GENERATOR: &str = env!("CARGO_BIN_EXE_srvctl-generator");

fn machine_dir(farm: &Farm, name: &str) -> std::path::PathBuf {
    farm.root().join("var/lib/machines").join(name)
}

#[test]
fn add_ve_refuses_a_root_filesystem_no_record_owns() {
    let farm = Farm::new();
    farm.build_image();
    farm.sc_ok(&["add-ve", "first.ve"]);
    let leftover = machine_dir(&farm, "old.example.com");
    std::fs::create_dir_all(leftover.join("home/tenant")).unwrap();
    let before = farm.json_files();
    for extra in [&[][..], &["--no-start"][..]] {
        let args = [&["add-ve", "old.example.com"][..], extra].concat();
        let line = farm.sc(&args).refused().to_owned();
        assert!(line.contains("old.example.com exists"), "{line}");
        assert!(line.contains("rm -rf"), "{line}");
    }
    assert_eq!(farm.json_files(), before, "a refusal writes nothing");
    assert!(
        leftover.join("home/tenant").is_dir(),
        "the leftover is kept"
    );
}

#[test]
fn no_start_adds_the_record_only() {
    let farm = Farm::new();
    farm.build_image();
    let run = farm.sc(&["add-ve", "later.ve", "--no-start"]);
    assert_eq!(run.ok(), "later.ve 10.16.0.2\n");
    assert!(!run.stderr.contains("start systemd-nspawn@"), "{run:#?}");
    assert!(
        !machine_dir(&farm, "later.ve").exists(),
        "nothing is cloned"
    );
    // Without a root filesystem its unit would fail at boot: machines.target does not want
    // it (its limits drop-in is there for a start by hand).
    farm.sc_ok(&["put", "container", "later.ve", "memory_max", "1G"]);
    let wanted = |farm: &Farm| {
        let _ = std::fs::remove_dir_all(farm.generator_dir());
        assert_eq!(farm.generator().ok(), "");
        farm.generator_dir()
            .join("machines.target.wants/systemd-nspawn@later.ve.service")
            .is_symlink()
    };
    assert!(
        !wanted(&farm),
        "a container without a root filesystem is started at boot"
    );
    assert!(
        farm.generator_dir()
            .join("systemd-nspawn@later.ve.service.d/50-srvctl.conf")
            .is_file()
    );
    let run = farm.sc(&["later.ve", "start"]);
    assert!(run.success(), "{run:#?}");
    // The clone is followed by a daemon-reload, so machines.target wants it before it starts.
    let reload = run.stderr.find("daemon-reload");
    let start = run.stderr.find("start systemd-nspawn@later.ve");
    assert!(
        reload.is_some() && start.is_some() && reload < start,
        "{run:#?}"
    );
    // A second start clones nothing and reloads nothing.
    farm.sc_ok(&["later.ve", "stop"]);
    let again = farm.sc(&["later.ve", "start"]);
    assert!(
        again.success() && !again.stderr.contains("daemon-reload"),
        "{again:#?}"
    );
    assert!(
        machine_dir(&farm, "later.ve")
            .join(".srvctl-owner")
            .is_file()
    );
    assert!(
        wanted(&farm),
        "once cloned, the container is started at boot"
    );
}

#[test]
fn an_interrupted_destroy_holds_the_container_until_it_is_run_again() {
    let farm = Farm::new();
    farm.build_image();
    farm.sc_ok(&["add-ve", "gone.ve"]);
    farm.sc_ok(&["add-ve", "kept.ve"]);
    // What a destroy killed after its first commit leaves.
    let mut doc = farm.datastore_json();
    doc["containers"]["gone.ve"]["destroying"] = true.into();
    std::fs::write(
        farm.datastore_path(),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    let ip = doc["containers"]["gone.ve"]["ip"].clone();

    let before = farm.json_files();
    for args in [
        &["gone.ve", "start"][..],
        &["gone.ve", "stop"],
        &["gone.ve", "alias", "add", "www2.example.com"],
        &["put", "container", "gone.ve", "tasks_max", "100"],
        &["add-ve", "gone.ve"],
    ] {
        let line = farm.sc(args).refused().to_owned();
        assert!(
            line.contains("gone.ve is being destroyed"),
            "{args:?}: {line}"
        );
        assert!(line.contains("sc destroy-ve gone.ve"), "{args:?}: {line}");
    }
    assert_eq!(farm.json_files(), before);
    assert!(farm.sc_ok(&["status"]).contains("destroying"));

    let out = tempfile::tempdir().unwrap();
    let run = base_command(GENERATOR)
        .env("SRVCTL_ROOT", farm.root())
        .arg(out.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let wants = out.path().join("machines.target.wants");
    assert!(wants.join("systemd-nspawn@kept.ve.service").exists());
    assert!(!wants.join("systemd-nspawn@gone.ve.service").exists());
    farm.sc_ok(&["regenerate"]);
    let nspawn = |n: &str| farm.root().join(format!("run/systemd/nspawn/{n}.nspawn"));
    assert!(nspawn("kept.ve").is_file());
    assert!(!nspawn("gone.ve").exists());

    let next = farm.sc_ok(&["add-ve", "next.ve", "--no-start"]);
    assert!(!next.contains(ip.as_str().unwrap()), "{next}");
    farm.sc_ok(&["destroy-ve", "gone.ve"]);
    assert!(!machine_dir(&farm, "gone.ve").exists());
    assert!(farm.datastore_json()["containers"].get("gone.ve").is_none());
}
