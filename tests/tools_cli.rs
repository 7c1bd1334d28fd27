//! The operator's tools end to end on a scratch root: custom commands made with
//! `sc customize`, listed in `sc --help` and run as `sc NAME`; `sc diagnose` finding planted
//! faults (exit 1) and a healthy root (exit 0); `sc ls` newest last; `sc exec-function`.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{Farm, ONE_HOST, Run};

/// One host without resolvers: the DNS check says it has none to ask (a warning) at once,
/// instead of waiting for the documentation addresses of ONE_HOST to answer.
const NO_RESOLVER: &str = r#"{"test": {"h1.test": {"host_ip": "192.0.2.1", "hostnet": 1}}}"#;

#[test]
fn a_custom_command_is_listed_in_help_and_runs_with_its_arguments_and_status() {
    let farm = Farm::with_clusters(ONE_HOST);
    let out = farm.sc_ok(&["customize", "hello", "--print"]);
    let file = farm.join("root/srvctl-includes/hello.sh");
    assert_eq!(
        out,
        format!("created {} (run it as sc hello)\n", file.display())
    );
    std::fs::write(
        &file,
        "#!/bin/bash\n# description: greet the host and the arguments\n\
         echo \"hello $SRVCTL_HOST from $SRVCTL_CLUSTER: $*\"\nexit \"${STATUS:-0}\"\n",
    )
    .unwrap();
    let help = farm.sc_ok(&["--help"]);
    assert!(
        help.contains("Custom commands (sc NAME ARGS..., from "),
        "{help}"
    );
    assert!(
        help.lines()
            .any(|l| l.trim() == "hello  greet the host and the arguments"),
        "{help}"
    );
    assert_eq!(
        farm.sc_ok(&["hello", "a", "b c"]),
        "hello h1.test from test: a b c\n"
    );
    let failed = Run::from_output(
        farm.command(&["hello"])
            .env("STATUS", "7")
            .output()
            .unwrap(),
    );
    assert_eq!(failed.code, Some(7), "{failed:#?}");
    // Made once: a second customize leaves the file as it is.
    let again = farm.sc_ok(&["customize", "hello", "--print"]);
    assert!(again.starts_with("exists "), "{again}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("greet the host")
    );

    // A file others may write is not run.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let line = farm.sc(&["hello"]).refused().to_owned();
    assert!(line.contains("lets group or others write it"), "{line}");
}

#[test]
fn sc_alone_prints_the_help_of_sc_help_with_the_custom_commands_and_exits_2() {
    let farm = Farm::with_clusters(ONE_HOST);
    farm.sc_ok(&["customize", "hello", "--print"]);
    // No argument at all: the scratch root comes from the environment (which the help shows).
    let sc = |args: &[&str]| {
        Run::from_output(
            common::base_command(common::SC)
                .env("SRVCTL_ROOT", farm.root())
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let help = sc(&["--help"]).ok().to_owned();
    assert!(
        help.contains("Custom commands (sc NAME ARGS..., from "),
        "{help}"
    );
    let alone = sc(&[]);
    assert_eq!(alone.code, Some(2), "{alone:#?}");
    assert_eq!(alone.stdout, "", "{alone:#?}");
    assert_eq!(alone.stderr, help);
}

#[test]
fn custom_command_names_are_plain_words_and_not_scs() {
    let farm = Farm::with_clusters(ONE_HOST);
    for (name, says) in [
        ("../evil", "invalid custom command name"),
        ("a/b", "invalid custom command name"),
        ("x.sh", "invalid custom command name"),
        ("status", "is a command of sc itself"),
        ("diagnose", "is a command of sc itself"),
    ] {
        let line = farm
            .sc(&["customize", name, "--print"])
            .refused()
            .to_owned();
        assert!(line.contains(says), "{name}: {line}");
    }
    assert!(!farm.join("root/srvctl-includes").exists());
    assert!(!farm.root().join("evil.sh").exists());
}

/// Make the installed certificate of `name` say it expires in `days` (its metadata, which
/// is what renewal and diagnose go by; the PEM stays the real one haproxy loads).
fn expire_in(farm: &Farm, name: &str, days: i64) {
    let meta = farm.join(&format!("var/lib/srvctl/certs/{name}.json"));
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).expect("an installed certificate")).unwrap();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(days * 24);
    doc["not_after"] = at.to_string().into();
    std::fs::write(&meta, doc.to_string()).unwrap();
}

#[test]
fn diagnose_finds_planted_faults_with_hints_and_exits_non_zero() {
    let farm = Farm::with_clusters(NO_RESOLVER);
    farm.sc_ok(&["add-ve", "web.example.com", "--no-start"]);
    // The front's configuration and the site's internal certificate.
    farm.sc_ok(&["regenerate"]);
    let healthy = farm.sc(&["diagnose"]);
    assert_eq!(healthy.code, Some(0), "{healthy:#?}");
    assert!(
        healthy.stdout.ends_with(" warnings)\n"),
        "{}",
        healthy.stdout
    );
    assert!(
        healthy
            .stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("healthy")
    );
    for checked in [
        "ok       proxy: haproxy -c accepts ",
        "ok       certificates: 1 certificates valid for 14 days or more",
        "ok       datastore: no record is set aside",
    ] {
        assert!(
            healthy.stdout.contains(checked),
            "{checked}: {}",
            healthy.stdout
        );
    }

    // A certificate expiring in 5 days, and a record a hand edit broke.
    expire_in(&farm, "web.example.com", 5);
    let mut doc = farm.datastore_json();
    doc["containers"]["bad name"] = doc["containers"]["web.example.com"].clone();
    farm.write_datastore(&doc);
    let run = farm.sc(&["diagnose"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let problem = |needle: &str, fix: &str| {
        let at = lines
            .iter()
            .position(|l| l.starts_with("PROBLEM") && l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not found in {}", run.stdout));
        assert!(
            lines[at + 1].contains(&format!("fix: {fix}")),
            "{}",
            lines[at + 1]
        );
    };
    problem(
        "certificate of web.example.com expires in 5 days",
        "sc regenerate re-issues it",
    );
    problem(
        "record \"bad name\" of containers is set aside",
        "correct or remove it",
    );
    assert!(
        lines.last().unwrap().starts_with("NOT HEALTHY: 2 problems"),
        "{}",
        run.stdout
    );

    let json = farm.sc(&["diagnose", "--json"]);
    assert_eq!(json.code, Some(1));
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let problems: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "problem")
        .collect();
    assert_eq!(problems.len(), 2, "{report:#}");
    assert!(problems.iter().all(|p| p["hint"].is_string()));
}

#[test]
fn ls_lists_every_file_below_newest_last() {
    let farm = Farm::with_clusters(ONE_HOST);
    let dir = farm.tmp().join("site");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    for (file, stamp) in [
        ("new.txt", "2026-03-01 10:00"),
        ("a/b/old.txt", "2020-01-01 00:00"),
        ("a/mid.txt", "2024-06-15 12:30"),
    ] {
        std::fs::write(dir.join(file), "x").unwrap();
        let touched = Command::new("touch")
            .args(["-d", stamp])
            .arg(dir.join(file))
            .status()
            .unwrap();
        assert!(touched.success());
    }
    let out = farm.sc_ok(&["ls", dir.to_str().unwrap()]);
    let paths: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(paths, ["a/b/old.txt", "a/mid.txt", "new.txt"], "{out}");
    assert!(out.starts_with("2020-01-01 "), "{out}");
    let missing = farm.sc(&["ls", "/nonexistent/dir"]);
    assert!(missing.refused().contains("no such directory"));
}

#[test]
fn update_install_sets_up_this_machine_only() {
    let farm = Farm::with_clusters(ONE_HOST);
    farm.sc_ok(&["add-reseller", "alice"]);
    let before = std::fs::read(farm.datastore_path()).unwrap();
    let help = farm.sc_ok(&["update-install", "--help"]);
    assert!(
        help.contains("--dry-run") && help.contains("--hostname"),
        "{help}"
    );
    // A scratch root is no machine to set up: refused (permission), nothing written.
    for args in [
        &["update-install"][..],
        &["update-install", "--dry-run"],
        &["update-install", "--hostname", "h1.test"],
    ] {
        farm.assert_refused(args, "run it as root, without --root", &before);
        assert_eq!(farm.sc(args).code, Some(6));
    }
    assert!(!farm.join("etc/srvctl/firewall.nft").exists());
}

#[test]
fn exec_function_runs_a_command_with_srvctls_context() {
    let farm = Farm::with_clusters(ONE_HOST);
    let out = farm.sc_ok(&[
        "exec-function",
        "sh",
        "-c",
        "echo $SRVCTL_HOST $SRVCTL_CLUSTER $SRVCTL_HOSTNET $SRVCTL_HOST_IP; echo $SRVCTL_DATASTORE",
    ]);
    assert_eq!(
        out,
        format!(
            "h1.test test 1 192.0.2.1\n{}\n",
            farm.datastore_path().display()
        )
    );
    let run = farm.sc(&["exec-function", "sh", "-c", "exit 4"]);
    assert_eq!(run.code, Some(4));
}

#[test]
fn a_users_custom_commands_live_in_its_home_and_run_as_it() {
    if !common::real::require_root("a_users_custom_commands_live_in_its_home") {
        return;
    }
    let farm = Farm::with_clusters(ONE_HOST);
    farm.sc_ok(&["customize", "roots-own", "--print"]);
    let home = farm.tmp().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(farm.tmp(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(common::SC)
            .arg("--root")
            .arg(farm.root())
            .args(args)
            .env("HOME", &home)
            .env("SRVCTL_HOSTNAME", common::HOSTNAME);
        Run::from_output(cmd.output().unwrap())
    };
    let made = as_nobody(&["customize", "mine", "--print"]);
    assert!(made.success(), "{made:#?}");
    let file = home.join("srvctl-includes/mine.sh");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 65534);
    let run = as_nobody(&["mine"]);
    assert_eq!(
        run.stdout,
        format!("custom command mine on h1.test: edit {}\n", file.display())
    );
    let help = as_nobody(&["--help"]).stdout;
    assert!(help.contains("  mine  mine: say here"), "{help}");
    assert!(!help.contains("roots-own"), "{help}");
}
