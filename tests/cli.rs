//! The `sc` command line, end to end: the worked example of the address plan, the read-only
//! views, shell-safe `sc out`, refusals that change nothing, the root check, the audit log and
//! the self-description commands.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Farm, ONE_HOST, Run, SC, SRVCTL, lines_with};
use proptest::prelude::*;

/// The worked example of the address plan, run with `bin` (`sc` or `srvctl`).
fn worked_example(bin: &str) {
    let farm = Farm::new();
    let run = |args: &[&str]| -> String { farm.run_bin(bin, args).ok().to_owned() };
    run(&["add-reseller", "alice"]);
    run(&["add-user", "bob", "--reseller", "alice"]);
    assert_eq!(
        run(&["add-ve", "web.example.com", "--user", "bob"]),
        "web.example.com 10.17.1.2\n"
    );
    assert_eq!(
        run(&["get", "container", "web.example.com", "ip"]),
        "10.17.1.2\n"
    );
    assert_eq!(
        run(&["add-ve", "two.example.com", "--user", "bob"]),
        "two.example.com 10.17.1.3\n"
    );
    run(&["destroy-ve", "web.example.com"]);
    assert_eq!(
        run(&["get", "container", "web.example.com", "exist"]),
        "false\n"
    );
    assert_eq!(
        run(&["add-ve", "three.example.com", "--user", "bob"]),
        "three.example.com 10.17.1.2\n"
    );
    assert_eq!(
        run(&["add-ve", "op.example.com"]),
        "op.example.com 10.16.0.2\n"
    );
    let state = farm.state();
    assert_eq!(state.containers.len(), 3);
    assert!(state.set_aside.is_empty());
}

#[test]
fn worked_example_with_sc() {
    worked_example(SC);
}

#[test]
fn worked_example_with_srvctl() {
    worked_example(SRVCTL);
}

#[test]
fn json_output_of_add_ve_and_status() {
    let farm = Farm::new().with_alice_and_bob();
    let out = farm.sc_ok(&["--json", "add-ve", "web.example.com", "--user", "bob"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("add-ve --json is JSON");
    assert_eq!(v["ip"], "10.17.1.2", "{v}");
    assert_eq!(v["name"], "web.example.com", "{v}");
    assert_eq!(v["user"], "bob", "{v}");
    assert_eq!(v["host"], "h1.test", "{v}");

    farm.sc_ok(&["add-ve", "op.example.com", "--json"]);
    let out = farm.sc_ok(&["status", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("status --json is JSON");
    let summary: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["user"].as_str().unwrap(),
                r["reseller"].as_str().unwrap(),
                r["ip"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("op.example.com", "root", "root", "10.16.0.2"),
            ("web.example.com", "bob", "alice", "10.17.1.2"),
        ]
    );
    assert!(rows.iter().all(|r| r["host"] == "h1.test"), "{rows:?}");

    let text = farm.sc_ok(&["status"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn get_exit_codes() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    assert_eq!(
        farm.sc_ok(&["get", "container", "web.example.com", "bridge"]),
        "sc-br-17-1\n"
    );
    assert_eq!(farm.sc_ok(&["get", "user", "bob", "reseller"]), "alice\n");
    let unset = farm.sc(&["get", "container", "web.example.com", "http_port"]);
    assert_eq!(unset.code, Some(100), "{unset:#?}");
    let missing = farm.sc(&["get", "container", "nosuch.example.com", "ip"]);
    missing.refused();
}

#[test]
fn new_and_del_aliases() {
    let farm = Farm::new();
    farm.sc_ok(&["new", "reseller", "alice"]);
    farm.sc_ok(&["new", "user", "bob", "--reseller", "alice"]);
    assert_eq!(
        farm.sc_ok(&["new", "container", "web.example.com", "--user", "bob"]),
        "web.example.com 10.17.1.2\n"
    );
    assert_eq!(
        farm.sc_ok(&["get", "container", "web.example.com", "exist"]),
        "true\n"
    );
    farm.sc_ok(&["del", "container", "web.example.com"]);
    assert_eq!(
        farm.sc_ok(&["get", "container", "web.example.com", "exist"]),
        "false\n"
    );
    // A name that could never exist does not exist either.
    assert_eq!(
        farm.sc_ok(&["get", "container", "bad name", "exist"]),
        "false\n"
    );
    assert_eq!(farm.sc_ok(&["get", "user", "Bob", "exist"]), "false\n");
    farm.sc_ok(&["del", "user", "bob"]);
    farm.sc_ok(&["del", "reseller", "alice"]);
    let state = farm.state();
    assert!(state.containers.is_empty() && state.users.is_empty() && state.resellers.is_empty());
}

/// Source `file` in a strict bash and print variable `var`.
fn sourced(file: &Path, var: &str) -> String {
    let script = format!(r#"set -eu; source "$1"; printf %s "${var}""#);
    let out = Command::new("bash")
        .args(["-c", &script, "bash"])
        .arg(file)
        .output()
        .expect("run bash");
    let run = Run::from_output(out);
    run.ok().to_owned()
}

#[test]
fn out_is_sourceable() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    farm.sc_ok(&["put", "container", "web.example.com", "http_port", "8080"]);
    let file = farm.root().join("web.env");
    std::fs::write(&file, farm.sc_ok(&["out", "container", "web.example.com"])).unwrap();
    assert_eq!(sourced(&file, "C"), "web.example.com");
    assert_eq!(sourced(&file, "ip"), "10.17.1.2");
    assert_eq!(sourced(&file, "user"), "bob");
    assert_eq!(sourced(&file, "http_port"), "8080");

    std::fs::write(&file, farm.sc_ok(&["out", "user", "bob"])).unwrap();
    assert_eq!(sourced(&file, "U"), "bob");
    assert_eq!(sourced(&file, "reseller"), "alice");
}

#[test]
fn hand_edited_field_is_sourced_safely() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    let marker = farm.root().join("pwned");
    let hostile = format!(
        "it's $(touch {m}) `touch {m}` \n y '\\'' \"$HOME\" ${{x}}; touch {m}",
        m = marker.display()
    );
    let mut doc = farm.datastore_json();
    doc["containers"]["web.example.com"]["note"] = serde_json::Value::String(hostile.clone());
    std::fs::write(
        farm.datastore_path(),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();

    assert_eq!(
        farm.sc_ok(&["get", "container", "web.example.com", "note"]),
        format!("{hostile}\n")
    );
    let file = farm.root().join("web.env");
    std::fs::write(&file, farm.sc_ok(&["out", "container", "web.example.com"])).unwrap();
    assert_eq!(sourced(&file, "note"), hostile);
    assert_eq!(sourced(&file, "ip"), "10.17.1.2");
    assert!(!marker.exists(), "sourcing `sc out` ran a command");
}

#[test]
fn set_aside_record_keeps_its_name_and_address() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    let mut doc = farm.datastore_json();
    let broken = serde_json::json!({
        "user": "bob", "host": "h1.test", "ip": "10.17.1.3",
        "created": "t", "created_by": "root", "hand": "edited"
    });
    doc["containers"]["broken name"] = broken.clone();
    std::fs::write(
        farm.datastore_path(),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    assert_eq!(farm.state().set_aside.len(), 1);

    assert_eq!(
        farm.sc_ok(&["add-ve", "two.example.com", "--user", "bob"]),
        "two.example.com 10.17.1.4\n",
        "the address of a set-aside record was handed out again"
    );
    // The record is written back verbatim.
    assert_eq!(farm.datastore_json()["containers"]["broken name"], broken);
}

/// Run `args` on `farm`, assert it is refused with one line and that no `*.json` file under
/// the state directory changed. Returns the error line.
#[track_caller]
fn assert_refused(farm: &Farm, args: &[&str]) -> String {
    let before = farm.json_files();
    assert!(!before.is_empty(), "nothing to compare against");
    let run = farm.sc(args);
    let line = run.refused().to_owned();
    let after = farm.json_files();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "sc {args:?} created or removed a json file"
    );
    for (path, bytes) in &before {
        assert!(
            after[path] == *bytes,
            "sc {args:?} changed {}",
            path.display()
        );
    }
    line
}

#[test]
fn refusals_change_nothing() {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.example.com", "--user", "bob"]);
    for n in 2..=15 {
        farm.sc_ok(&["add-reseller", &format!("r{n}")]);
    }
    let long = "a".repeat(300);
    let cases: &[(&[&str], &str)] = &[
        (&["add-ve", "bad name", "--user", "bob"], "invalid"),
        (
            &["add-ve", "evil\nname.example.com", "--user", "bob"],
            "invalid",
        ),
        (&["add-ve", "../x", "--user", "bob"], "invalid"),
        (&["add-ve", "-rf"], "-r"),
        (&["add-ve", &long, "--user", "bob"], "too long"),
        (
            &["add-ve", "web.example.com", "--user", "bob"],
            "already exists",
        ),
        (&["add-ve", "WEB.example.com"], "already exists"),
        (
            &["add-ve", "new.example.com", "--user", "nosuchuser"],
            "nosuchuser",
        ),
        (&["add-user", "carol", "--reseller", "nosuch"], "reseller"),
        (
            &["add-user", "bob", "--reseller", "alice"],
            "already exists",
        ),
        (&["add-reseller", "alice"], "already exists"),
        (&["add-reseller", "r16"], "in use"),
        (
            &["put", "container", "web.example.com", "http_port", "0"],
            "http_port",
        ),
        (
            &["put", "container", "web.example.com", "memory_max", "1\nX"],
            "memory_max",
        ),
        (
            &["put", "container", "web.example.com", "nosuchkey", "1"],
            "nosuchkey",
        ),
        (
            &["put", "container", "nosuch.example.com", "http_port", "80"],
            "no container",
        ),
        (&["destroy-ve", "nosuch.example.com"], "no container"),
        (&["destroy-user", "bob"], "owns"),
        (&["destroy-reseller", "alice"], "user"),
    ];
    for (args, hint) in cases {
        let line = assert_refused(&farm, args);
        assert!(
            line.contains(hint),
            "sc {args:?}: {line:?} does not mention {hint:?}"
        );
    }
    // Everything above was refused: the datastore is as the setup left it.
    let state = farm.state();
    assert_eq!(state.resellers.len(), 15);
    assert_eq!(state.containers.len(), 1);
}

/// Without root and without --root, `sc` asks the privileged service; when none listens it
/// says so in one line and touches nothing.
#[test]
fn without_root_sc_needs_the_service() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the non-root check needs to start as root to drop to nobody");
        return;
    }
    let system_store = Path::new("/var/lib/srvctl/datastore.json");
    let existed = system_store.exists();
    for args in [
        &["add-ve", "x.example.com"][..],
        &["status"],
        &["get", "container", "x.example.com", "ip"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", SC])
            .args(args)
            .env("SRVCTL_HOSTNAME", common::HOSTNAME)
            .env("SRVCTL_SOCKET", "/nonexistent/sc.socket")
            .env_remove("SRVCTL_ROOT")
            .env_remove("SUDO_USER")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run setpriv");
        let run = Run::from_output(out);
        let line = run.refused();
        assert!(
            line.contains("cannot reach the srvctl service at /nonexistent/sc.socket"),
            "{run:#?}"
        );
    }
    if !existed {
        assert!(
            !system_store.exists(),
            "the refused command created {}",
            system_store.display()
        );
    }
}

#[test]
fn audit_log_records_successes_and_refusals() {
    let farm = Farm::new();
    farm.sc_ok(&["add-reseller", "alice"]);
    farm.sc(&["add-reseller", "alice"]).refused();
    let records = farm.audit_records();
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        for field in ["time", "user", "host", "command", "outcome"] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert_eq!(r["host"], "h1.test", "{r}");
        assert!(
            r["time"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok(),
            "{r}"
        );
    }
    assert_eq!(records[0]["outcome"], "ok");
    let command: Vec<&str> = records[0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(command.ends_with(&["add-reseller", "alice"]), "{command:?}");
    let refused = records[1]["outcome"].as_str().unwrap();
    assert!(
        refused.starts_with("error:") && refused.contains("already exists"),
        "{refused}"
    );
    // Read-only commands are not audited.
    farm.sc_ok(&["status"]);
    assert_eq!(farm.audit_records().len(), 2);
}

#[test]
fn completion_and_man() {
    let farm = Farm::new();
    let completion = farm.sc_ok(&["completion", "bash"]);
    assert!(completion.contains("add-ve"), "{completion}");
    let man = farm.sc_ok(&["man"]);
    assert!(man.contains(".TH"), "{man}");
    // They need no privilege and no farm.
    let out = common::base_command(SC)
        .args(["completion", "zsh"])
        .output()
        .unwrap();
    assert!(!Run::from_output(out).ok().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever name is given, `add-ve` either adds exactly that (lower-cased) name, or refuses
    /// with one line and changes nothing.
    #[test]
    fn any_name_is_added_or_refused_cleanly(
        name in "[a-zA-Z0-9.\\- _/'\"$`\\n\\t]{0,70}|\\PC{0,80}"
    ) {
        let farm = Farm::new().with_alice_and_bob();
        let before = farm.json_files();
        let run = farm.sc(&["add-ve", "--user", "bob", "--", &name]);
        if run.success() {
            let lower = name.to_ascii_lowercase();
            prop_assert_eq!(&run.stdout, &format!("{lower} 10.17.1.2\n"));
            prop_assert_eq!(farm.state().containers.len(), 1);
        } else {
            run.refused();
            prop_assert_eq!(farm.json_files(), before);
        }
    }
}

/// `sc version` asks this host's package manager, the real one: each driven package's version
/// is the one `dpkg-query` itself reports. Without a known distribution it reports srvctl's.
#[test]
fn version_reports_srvctl_and_the_driven_packages_from_dpkg() {
    let farm = Farm::new();
    let bare: serde_json::Value =
        serde_json::from_str(&farm.sc_ok(&["version", "--json"])).unwrap();
    assert_eq!(bare["srvctl"], env!("CARGO_PKG_VERSION"), "{bare}");
    assert_eq!(bare["package_manager"], serde_json::Value::Null, "{bare}");

    std::fs::create_dir_all(farm.join("etc")).unwrap();
    std::fs::write(farm.join("etc/os-release"), "ID=debian\n").unwrap();
    let v: serde_json::Value = serde_json::from_str(&farm.sc_ok(&["version", "--json"])).unwrap();
    assert_eq!(v["package_manager"], "dpkg", "{v}");
    let packages = v["packages"].as_array().unwrap();
    assert!(packages.iter().any(|p| p["name"] == "haproxy"), "{v}");
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Status} ${Version}", name])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let expected = text
            .strip_prefix("install ok installed ")
            .map(serde_json::Value::from)
            .unwrap_or(serde_json::Value::Null);
        assert_eq!(p["version"], expected, "{name}: {v}");
    }
    assert_eq!(packages[0]["name"], "systemd");
    assert!(
        packages[0]["version"].is_string(),
        "systemd is installed: {v}"
    );
    let text = farm.sc_ok(&["version"]);
    assert!(
        text.starts_with(&format!("srvctl {}\nsystemd ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );

    let refused = farm.sc(&["add-ve", "version"]).refused().to_owned();
    assert!(refused.contains("version"), "{refused}");
}

/// `sc exec-all` and `sc all-containers` take the containers of this host only: exec-all and
/// start/restart skip a disabled one, stop takes it too. Under a scratch root nothing runs
/// inside, and systemd's requests are only printed, one per container.
#[test]
fn bulk_commands_take_this_hosts_containers() {
    let farm = Farm::new().with_alice_and_bob();
    for name in ["a.ve", "b.ve"] {
        farm.sc_ok(&["add-ve", name, "--user", "bob", "--no-start"]);
    }
    farm.sc_ok(&["add-ve", "op.ve", "--no-start"]);
    farm.sc_ok(&["add-ve", "far.ve", "--no-start", "--host", "h2.test"]);
    farm.sc_ok(&["put", "container", "b.ve", "disabled", "true"]);

    let run = farm.sc(&["--json", "exec-all", "--", "uname", "-a"]);
    let results: Vec<serde_json::Value> = serde_json::from_str(run.ok()).unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["container"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.ve", "op.ve"], "{results:?}");
    assert_eq!(
        lines_with(&run.stderr, "would run: systemd-run").len(),
        2,
        "{run:?}"
    );
    assert!(run.stderr.contains("--machine=a.ve --uid=root"), "{run:?}");
    assert!(run.stderr.contains("-- uname -a"), "{run:?}");

    let stop = farm.sc(&["all-containers", "stop"]);
    assert_eq!(stop.ok(), "a.ve: stopped\nb.ve: stopped\nop.ve: stopped\n");
    assert_eq!(
        lines_with(&stop.stderr, "would ask systemd: stop systemd-nspawn@").len(),
        3
    );
    let restart = farm.sc(&["all-containers", "restart"]);
    assert_eq!(restart.ok(), "a.ve: restarted\nop.ve: restarted\n");
    assert!(!restart.stderr.contains("b.ve"), "{restart:?}");

    assert!(farm.sc(&["exec-all"]).refused().contains("required"));
    assert!(
        farm.sc(&["all-containers", "pause"])
            .refused()
            .contains("pause")
    );
    for word in ["exec-all", "all-containers"] {
        assert!(farm.sc(&["add-ve", word]).refused().contains(word));
    }
}

#[test]
fn man_dir_writes_a_page_for_sc_each_command_and_each_program() {
    let farm = Farm::with_clusters(ONE_HOST);
    let dir = farm.tmp().join("man");
    std::fs::create_dir_all(&dir).unwrap();
    let out = farm.sc_ok(&["man", "--dir", dir.to_str().unwrap()]);
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "sc.1",
        "sc-add-ve.1",
        "sc-cluster-join.1",
        "sc-certificates-renew.1",
        "srvctl-regenerate.8",
        "srvctl-sync.8",
        "srvctl-service.8",
        "srvctl-gateway.8",
        "srvctl-authorized-keys.8",
        "srvctl-generator.8",
    ] {
        assert!(
            pages.contains(&page.to_owned()),
            "{page} missing: {pages:?}"
        );
        assert!(out.contains(page), "{out}");
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    assert!(
        !pages.iter().any(|p| p.contains("names")),
        "a hidden command has a page"
    );
    let sc = std::fs::read_to_string(dir.join("sc.1")).unwrap();
    assert!(sc.contains("EXIT STATUS"), "{sc}");
    let sync = std::fs::read_to_string(dir.join("srvctl-sync.8")).unwrap();
    assert!(sync.contains(".TH srvctl-sync 8"), "{sync}");
}
