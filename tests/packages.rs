//! The Debian package of `scripts/package.sh deb`, built with the real dpkg-deb from this
//! build's binaries: it holds exactly what `scripts/install.sh` stages (same paths, kinds and
//! modes, all root's) plus its copyright file, so the two cannot drift apart; its control
//! file has Cargo.toml's version and honest Depends; every file under /etc is a conffile;
//! and its maintainer scripts run the shared post-install and pre-remove it ships.

// Tests may use the real file system and processes directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::real::{require_tool, run_ok};

/// The work tree.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of this build's binaries (what `SRVCTL_BIN_DIR` points at).
fn bin_dir() -> &'static Path {
    Path::new(common::SC).parent().unwrap()
}

/// `ls -l` style type and permissions (`drwxr-xr-x`), the way `dpkg-deb --contents` shows them.
fn ls_mode(meta: &fs::Metadata) -> String {
    let kind = if meta.file_type().is_symlink() {
        'l'
    } else if meta.is_dir() {
        'd'
    } else {
        '-'
    };
    let mode = meta.permissions().mode();
    assert_eq!(
        mode & 0o7000,
        0,
        "no setuid, setgid or sticky bit is shipped"
    );
    let bits: String = (0..9)
        .map(|i| {
            if mode & (0o400 >> i) == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect();
    format!("{kind}{bits}")
}

/// Every entry under `root` (`./usr/`, `./usr/bin/sc`, ...) with its type, mode and, for a
/// symbolic link, its target.
fn staged_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let (name, what) = if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                (
                    format!("./{rel}"),
                    format!("lrwxrwxrwx -> {}", target.display()),
                )
            } else if meta.is_dir() {
                walk(root, &path, into);
                (format!("./{rel}/"), ls_mode(&meta))
            } else {
                (format!("./{rel}"), ls_mode(&meta))
            };
            into.insert(name, what);
        }
    }
    let mut tree = BTreeMap::new();
    tree.insert("./".to_string(), ls_mode(&fs::metadata(root).unwrap()));
    walk(root, root, &mut tree);
    tree
}

/// The entries of a .deb as `dpkg-deb --contents` lists them, in the shape of [`staged_tree`];
/// asserts that every one is root's.
fn deb_tree(deb: &Path) -> BTreeMap<String, String> {
    let listing = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    listing
        .lines()
        .map(|line| {
            // drwxr-xr-x root/root 0 2026-12-03 15:05 ./usr/  (then "-> TARGET" for a link)
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected dpkg-deb line: {line}");
            assert_eq!(fields[1], "root/root", "not root's: {line}");
            let mode = fields[0];
            match fields[5..] {
                [name] => (name.to_string(), mode.to_string()),
                [name, "->", target] => (name.to_string(), format!("{mode} -> {target}")),
                _ => panic!("unexpected dpkg-deb line: {line}"),
            }
        })
        .collect()
}

/// A field of the package's control file.
fn control_field(deb: &Path, field: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field))
        .trim()
        .to_string()
}

/// Build the Debian package into `out` (uncompressed: the test build's binaries are large).
fn build_deb(out: &Path) -> PathBuf {
    let printed = run_ok(
        Command::new("bash")
            .arg(repo().join("scripts/package.sh"))
            .arg("deb")
            .env("SRVCTL_BIN_DIR", bin_dir())
            .env("SRVCTL_PACKAGE_DIR", out)
            .env("DPKG_DEB_COMPRESSOR_TYPE", "none")
            .env_remove("PREFIX")
            .env_remove("DESTDIR"),
    );
    let deb = PathBuf::from(printed.lines().last().unwrap());
    assert!(deb.is_file(), "package.sh printed {printed:?}");
    deb
}

#[test]
fn the_debian_package_is_what_install_sh_stages_with_its_control_files() {
    for tool in ["/usr/bin/dpkg-deb", "/usr/bin/dpkg-shlibdeps"] {
        require_tool(tool);
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(&tmp.path().join("out"));
    holds_what_install_sh_stages(&deb, tmp.path());
    says_its_version_depends_conffiles_and_scripts(&deb, tmp.path());
}

/// The package's files are install.sh's, plus the copyright file.
fn holds_what_install_sh_stages(deb: &Path, tmp: &Path) {
    let stage = tmp.join("stage");
    run_ok(
        Command::new(repo().join("scripts/install.sh"))
            .env("DESTDIR", &stage)
            .env("SRVCTL_BIN_DIR", bin_dir())
            .env_remove("PREFIX"),
    );
    let mut expected = staged_tree(&stage);
    expected.insert(
        "./usr/share/doc/srvctl/copyright".into(),
        "-rw-r--r--".into(),
    );
    let shipped = deb_tree(deb);
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| shipped.get(*k) != Some(v))
        .collect();
    let extra: Vec<_> = shipped
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(v))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the package and install.sh differ:\nonly staged (or other mode): {missing:#?}\nonly in the package: {extra:#?}"
    );
    // The tree install.sh stages has what the package scripts run.
    for script in ["post-install", "pre-remove"] {
        assert_eq!(
            shipped[&format!("./usr/libexec/srvctl/{script}")],
            "-rwxr-xr-x"
        );
    }
}

/// Its control file, conffiles, maintainer scripts and copyright file.
fn says_its_version_depends_conffiles_and_scripts(deb: &Path, tmp: &Path) {
    let version = env!("CARGO_PKG_VERSION").replacen('-', "~", 1);
    assert_eq!(control_field(deb, "Version"), version);
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!(
            "srvctl_{version}_{}.deb",
            run_ok(Command::new("dpkg").arg("--print-architecture")).trim()
        )
    );
    let depends = control_field(deb, "Depends");
    let names: Vec<&str> = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap())
        .collect();
    for needed in [
        "libc6",
        "systemd",
        "systemd-container",
        "dbus",
        "libnss-systemd",
        "haproxy",
        "nftables",
        "openssh-server",
        "openssl",
    ] {
        assert!(names.contains(&needed), "Depends lacks {needed}: {depends}");
    }

    let control = tmp.join("control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(deb)
            .arg(&control),
    );
    assert_eq!(
        fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/ssh/sshd_config.d/50-srvctl.conf\n"
    );
    for (script, runs) in [
        ("postinst", "/usr/libexec/srvctl/post-install"),
        ("prerm", "/usr/libexec/srvctl/pre-remove"),
        ("postrm", "systemctl daemon-reload"),
    ] {
        let path = control.join(script);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(runs), "{script} does not run {runs}: {text}");
        run_ok(Command::new("sh").arg("-n").arg(&path));
    }
    let copyright = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -xOf - ./usr/share/doc/srvctl/copyright")
            .arg("sh")
            .arg(deb),
    );
    assert!(
        copyright.contains("License: MIT or Apache-2.0"),
        "{copyright}"
    );
    assert!(
        copyright.contains("/usr/share/common-licenses/Apache-2.0"),
        "{copyright}"
    );
    let mit = fs::read_to_string(repo().join("LICENSE-MIT")).unwrap();
    let permission = mit.lines().find(|l| l.starts_with("Permission")).unwrap();
    assert!(copyright.contains(permission), "{copyright}");
}
