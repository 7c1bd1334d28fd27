//! bash completion of `sc` by the real bash: clap's words, and where a command takes the name of
//! a record, the names from `sc names KIND`.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{Farm, ONE_HOST};

/// What bash's completion offers for the words `line` (the last one being completed), with
/// `sc` on PATH running on `farm`'s scratch root.
fn complete(farm: &Farm, line: &[&str]) -> Vec<String> {
    let bin = farm.tmp().join("completion-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sc = bin.join("sc");
    std::fs::write(
        &sc,
        format!(
            "#!/bin/sh\nexec {} --root {} \"$@\"\n",
            common::SC,
            farm.root().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        "source <(sc completion bash)\n\
         COMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         _sc_with_names sc \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        line.len() - 1
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut offered: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    offered.sort();
    offered.dedup();
    offered
}

#[test]
fn bash_completes_commands_and_the_names_of_records() {
    let farm = Farm::with_clusters(ONE_HOST);
    for args in [
        &["add-reseller", "alice"][..],
        &["add-user", "bob", "--reseller", "alice"],
        &["add-user", "bert", "--reseller", "alice"],
        &["add-ve", "web.example.com", "--no-start"],
        &["add-ve", "blog.example.org", "--no-start"],
    ] {
        farm.sc_ok(args);
    }
    // A reseller has an account of its own too.
    assert_eq!(farm.sc_ok(&["names", "user"]), "alice\nbert\nbob\n");
    assert_eq!(complete(&farm, &["sc", "we"]), ["web.example.com"]);
    let first = complete(&farm, &["sc", "b"]);
    assert!(first.contains(&"blog.example.org".to_owned()), "{first:?}");
    assert!(first.iter().any(|w| w.starts_with("b")), "{first:?}");
    assert_eq!(
        complete(&farm, &["sc", "destroy-user", "b"]),
        ["bert", "bob"]
    );
    let resellers = complete(&farm, &["sc", "destroy-reseller", ""]);
    assert!(
        resellers.contains(&"alice".to_owned()) && !resellers.contains(&"bob".to_owned()),
        "{resellers:?}"
    );
    assert_eq!(
        complete(&farm, &["sc", "get", "container", "bl"]),
        ["blog.example.org"]
    );
    // clap's own words still come: subcommands of sc.
    let add = complete(&farm, &["sc", "add-"]);
    assert!(add.contains(&"add-ve".to_owned()), "{add:?}");
}
