//! The installed units and the generator's output pass `systemd-analyze verify`.
//!
//! A scratch root gets the machine's unit tree, srvctl installed by `scripts/install.sh`, and
//! the executables the units run (verify checks that they exist under the root). `sc` fills
//! the datastore of a two-host cluster (so the mesh units are wanted) with a container that
//! has resource limits; `srvctl-generator` runs against it and its output goes to the root's
//! `/etc/systemd/system` (`verify --root` does not read generator directories, and `/etc` has
//! the same meaning). verify must then exit 0 and print nothing: it prints warnings such as
//! "Unknown key" yet exits 0, so silence is the real check. A deliberately broken drop-in
//! proves that the check can fail.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::Farm;
use common::real::{output, require_root, require_tool, run_ok};

const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"172.31.99.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"172.31.99.2","hostnet":2}}}"#;
const CONTAINER: &str = "web.example.com";
const UNITS: [&str; 14] = [
    "srvctl-regenerate.service",
    "srvctl.socket",
    "srvctl.service",
    "srvctl-certificates.service",
    "srvctl-certificates.timer",
    "srvctl-bridges.service",
    "srvctl-start-0.target",
    "srvctl-mesh@server.service",
    "srvctl-mesh@client-2.service",
    "srvctl-etcd.service",
    "systemd-nspawn@web.example.com.service",
    "srvctl-gateway.service",
    "srvctl-gateway-userdb.socket",
    "srvctl-gateway-userdb.service",
];

/// `systemd-analyze verify --man=no --root=ROOT UNITS…`: (exit code, stdout + stderr).
fn verify(root: &Path) -> (Option<i32>, String) {
    let out = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", root.display()))
            .args(UNITS)
            .env_remove("SYSTEMD_LOG_LEVEL")
            .env_remove("SYSTEMD_LOG_TARGET")
            .env("SYSTEMD_LOG_COLOR", "0"),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn copy_tree(from: &Path, to: &Path) {
    // cp -a keeps the symlinks (wants links, aliases) exactly as they are.
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn installed_units_and_generator_output_pass_systemd_analyze_verify() {
    if !require_root("systemd_verify") {
        return;
    }
    for tool in [
        "/usr/bin/systemd-analyze",
        "/usr/sbin/openvpn",
        "/usr/bin/systemd-nspawn",
        "/usr/bin/etcd",
    ] {
        require_tool(tool);
    }
    let system_units = Path::new("/usr/lib/systemd/system");
    assert!(
        system_units.join("systemd-nspawn@.service").is_file(),
        "systemd-nspawn@.service is missing: run scripts/test-deps.sh (systemd-container)"
    );

    let root = Farm::with_clusters(CLUSTERS);
    let r = root.root();

    // The distribution's units, then srvctl installed as a package would be.
    fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    copy_tree(system_units, &r.join("usr/lib/systemd/system"));
    let bin_dir = Path::new(common::SC).parent().unwrap();
    run_ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
            .env("DESTDIR", r)
            .env("SRVCTL_BIN_DIR", bin_dir)
            .env_remove("PREFIX"),
    );
    for exe in [
        "usr/sbin/openvpn",
        "usr/bin/systemd-nspawn",
        "usr/sbin/sshd",
        "usr/bin/kill",
        "usr/bin/etcd",
    ] {
        fs::create_dir_all(r.join(exe).parent().unwrap()).unwrap();
        fs::copy(Path::new("/").join(exe), r.join(exe)).unwrap();
    }
    for installed in [
        "usr/lib/systemd/system/srvctl-regenerate.service",
        "usr/lib/systemd/system/srvctl-mesh@.service",
        "usr/lib/systemd/system/srvctl-etcd.service",
        "usr/lib/systemd/system-generators/srvctl-generator",
        "usr/bin/srvctl-regenerate",
        "usr/libexec/srvctl/srvctl-service",
        "usr/lib/systemd/system/sockets.target.wants/srvctl.socket",
        "usr/libexec/srvctl/srvctl-authorized-keys",
        "etc/ssh/sshd_config.d/50-srvctl.conf",
        "usr/libexec/srvctl/srvctl-gateway",
        "usr/share/srvctl/gateway/sshd_config",
    ] {
        assert!(
            r.join(installed).exists(),
            "install.sh did not install {installed}"
        );
    }

    // The datastore: one container (cloned from a built image) with every resource limit set.
    root.build_image();
    root.sc_ok(&["add-reseller", "alice"]);
    root.sc_ok(&["add-user", "bob", "--reseller", "alice"]);
    root.sc_ok(&["add-ve", CONTAINER, "--user", "bob"]);
    root.sc_ok(&["put", "container", CONTAINER, "memory_max", "512M"]);
    root.sc_ok(&["put", "container", CONTAINER, "cpu_weight", "200"]);
    root.sc_ok(&["put", "container", CONTAINER, "tasks_max", "300"]);
    // h1 is the CA host: its cluster certificate is signed directly, so the generator wants
    // its etcd member and the sync service.
    root.sc_ok(&["cluster", "request"]);

    // The generator, as systemd would call it, against the scratch root.
    let generated = tempfile::tempdir().unwrap();
    let g = generated.path();
    let out = output(
        root.program(
            r.join("usr/lib/systemd/system-generators/srvctl-generator")
                .to_str()
                .unwrap(),
        )
        .arg(g.join("normal"))
        .arg(g.join("early"))
        .arg(g.join("late"))
        .env("SRVCTL_ROOT", r),
    );
    assert!(out.status.success(), "srvctl-generator failed: {out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "srvctl-generator warned: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let drop_in_rel = format!("systemd-nspawn@{CONTAINER}.service.d/50-srvctl.conf");
    let drop_in_text = fs::read_to_string(g.join("normal").join(&drop_in_rel))
        .expect("the generator wrote the container's drop-in");
    for line in ["MemoryMax=512M", "CPUWeight=200", "TasksMax=300"] {
        assert!(
            drop_in_text.lines().any(|l| l == line),
            "drop-in lacks {line}:\n{drop_in_text}"
        );
    }
    for link in [
        "multi-user.target.wants/srvctl-mesh@server.service",
        "multi-user.target.wants/srvctl-mesh@client-2.service",
        "multi-user.target.wants/srvctl-etcd.service",
        "multi-user.target.wants/srvctl-sync.service",
        "sysinit.target.wants/srvctl-regenerate.service",
        "machines.target.wants/srvctl-start-0.target",
    ] {
        assert!(
            g.join("normal").join(link).is_symlink(),
            "the generator did not write {link}"
        );
    }
    let unit_dir = r.join("etc/systemd/system");
    fs::create_dir_all(&unit_dir).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(g.join("normal").join("."))
            .arg(&unit_dir),
    );

    let (code, text) = verify(r);
    assert!(
        code == Some(0) && text.is_empty(),
        "systemd-analyze verify is not silent (exit {code:?}):\n{text}"
    );

    // Negative control: a bad value in the copied drop-in must be reported.
    let drop_in = unit_dir.join(&drop_in_rel);
    let mut broken = fs::read_to_string(&drop_in).unwrap();
    broken.push_str("MemoryMax=lots\n");
    fs::write(&drop_in, broken).unwrap();
    let (code, text) = verify(r);
    assert!(
        text.contains("lots") && text.contains("50-srvctl.conf"),
        "verify did not complain about MemoryMax=lots (exit {code:?}):\n{text}"
    );
}
