//! Base images: the root filesystems site containers are cloned from (`sc regenerate rootfs`).
//!
//! An image holds systemd, systemd-networkd, an SSH server (host keys made inside each
//! container at its first boot, so no two containers share them) and busybox's small web
//! server, which serves `/var/www/html` (a placeholder page naming the site, written when the
//! container is created). The account `www` owns `/var/www/html`, so the site's files can be
//! uploaded with `sftp -P 2222 USER_CONTAINER_www@host` (docs/ssh-gateway.md). Debian images are built with debootstrap; Fedora images with
//! `dnf --installroot` (written, not tested: no Fedora mirror is reachable from the CI machines).
//! Nothing runs in an idle container that a site does not need: its journal is kept in memory
//! and capped ([`JOURNALD_CONF`]), no getty waits on its console (a login goes through
//! `sc NAME shell` or SSH), and sshd starts from its socket for each connection instead of
//! idling.
//! An image is built beside the old one and swapped in by rename, so a failed or interrupted
//! build never leaves a half image in place.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::system::paths::Paths;
use crate::system::{CommandLine, System};

/// The image a container gets when its record names none.
pub const DEFAULT_IMAGE: &str = "debian";

/// The images srvctl can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    /// Debian stable, through debootstrap.
    Debian,
    /// Fedora, through `dnf --installroot`.
    Fedora,
}

impl Distro {
    /// The distribution an image name stands for.
    pub fn of_image(name: &str) -> Option<Self> {
        match name {
            "debian" => Some(Self::Debian),
            "fedora" => Some(Self::Fedora),
            _ => None,
        }
    }
}

/// Packages of a Debian image.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "openssh-server",
    "busybox",
    "ca-certificates",
];
/// Packages of a Fedora image.
pub const FEDORA_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-networkd",
    "dbus",
    "iproute",
    "openssh-server",
    "busybox",
    "ca-certificates",
    "passwd",
];
/// Debian suite of the images.
const DEBIAN_SUITE: &str = "bookworm";

/// The placeholder web server of every image.
const SITE_UNIT: &str = "[Unit]
Description=Placeholder site of this container (srvctl)
After=network.target

[Service]
ExecStart=/bin/busybox httpd -f -p 80 -h /var/www/html
Restart=on-failure

[Install]
WantedBy=multi-user.target
";

/// Make the SSH host keys inside the container at its first boot (only the missing ones, so
/// at later boots it does nothing), before sshd's socket takes connections. Early at boot,
/// without the default dependencies: a service ordered after basic.target and before a
/// socket (itself before sockets.target, before basic.target) would be an ordering cycle,
/// which systemd breaks by dropping one of the jobs, the socket's or this one.
const SSH_KEYGEN_UNIT: &str = "[Unit]
Description=SSH host keys of this container (srvctl)
DefaultDependencies=no
After=local-fs.target
Before=ssh.socket sshd.socket sockets.target

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=sockets.target
";

/// journald of a container: in memory (the host keeps no copy to link), at most 8 MiB.
const JOURNALD_CONF: &str = "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n";

/// Units an image masks: the getty on the container's console, which nothing logs in through.
const MASKED: &[&str] = &["console-getty.service"];

/// The account that owns the site's files (systemd-sysusers: a system account, its UID
/// picked in the image).
const WWW_SYSUSERS: &str = "u www - \"Site files (srvctl)\" /var/www /bin/bash\n";

/// At every boot, after systemd-sysusers: `www` owns the site's directory and everything in
/// it (the placeholder page srvctl writes as root when it creates the container, files root
/// put there). Recursive (`Z`): tmpfiles refuses to adjust a root-owned file by its path
/// inside a directory `www` owns.
const WWW_TMPFILES: &str = "d /var/www/html 0755 www www -\nZ /var/www/html - www www -\n";

/// Where image `name` lives: beside the containers in /var/lib/machines (hidden from
/// machinectl by the leading dot), so that a container can be a snapshot or a reflink copy of
/// it, which only works inside one file system.
pub fn image_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.host(&format!("/var/lib/machines/.srvctl-images/{name}"))
}

/// Building an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name is not one srvctl can build.
    #[error("unknown image {0:?}: srvctl builds \"debian\" and \"fedora\"")]
    Unknown(String),
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

fn step(what: &str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Step(format!("{what}: {e}"))
}

/// The Debian mirror: `SRVCTL_DEBIAN_MIRROR`, else the one this machine's apt uses, else
/// deb.debian.org.
fn debian_mirror(system: &dyn System) -> String {
    if let Some(m) = system
        .env("SRVCTL_DEBIAN_MIRROR")
        .and_then(|m| m.into_string().ok())
    {
        return m;
    }
    let sources = [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ];
    for file in sources {
        let Some(text) = system.read(Path::new(file)).ok().flatten() else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        let found = text.split_whitespace().find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.trim_end_matches('/').ends_with("/debian")
        });
        if let Some(url) = found {
            return url.to_owned();
        }
    }
    "http://deb.debian.org/debian".into()
}

/// Run a long command, showing its output lines as progress with the elapsed time.
fn run_with_progress(system: &dyn System, command: &CommandLine) -> Result<(), ImageError> {
    let start = system.monotonic();
    let label = &command.program;
    system
        .run_lines(command, &mut |line| {
            let took = system.monotonic() - start;
            eprintln!("[{:>5.1}s] {label}: {line}", took.as_secs_f64());
        })
        .map_err(|e| ImageError::Step(e.to_string()))
}

/// Build image `name` and swap it in. Returns the time it took.
pub fn build(
    system: &dyn System,
    paths: &Paths,
    name: &str,
) -> Result<std::time::Duration, ImageError> {
    let distro = Distro::of_image(name).ok_or_else(|| ImageError::Unknown(name.to_owned()))?;
    let start = system.monotonic();
    let dir = image_dir(paths, name);
    let parent = dir.parent().expect("images dir");
    system
        .create_dir(parent, 0o700)
        .map_err(step("images directory"))?;
    let new = parent.join(format!(".{name}.new"));
    let old = parent.join(format!(".{name}.old"));
    for leftover in [&new, &old] {
        crate::containers::rootfs::remove(system, leftover)
            .map_err(step("removing a leftover build"))?;
    }
    crate::containers::rootfs::make_dir(system, &new)
        .map_err(step("creating the build directory"))?;
    eprintln!(
        "building image {name} in {} (a few minutes)…",
        new.display()
    );
    match distro {
        Distro::Debian => {
            let mirror = debian_mirror(system);
            let debootstrap = CommandLine::new(
                "debootstrap",
                [
                    OsString::from("--variant=minbase"),
                    format!("--include={}", DEBIAN_PACKAGES.join(",")).into(),
                    DEBIAN_SUITE.into(),
                    new.clone().into(),
                    mirror.into(),
                ],
            );
            run_with_progress(system, &debootstrap)?;
        }
        Distro::Fedora => {
            let release = system
                .env("SRVCTL_FEDORA_RELEASE")
                .and_then(|r| r.into_string().ok())
                .unwrap_or_else(|| "41".into());
            let options = ["--setopt=install_weak_deps=False", "-y", "install"];
            let dnf = CommandLine::new(
                "dnf",
                [
                    format!("--installroot={}", new.display()),
                    format!("--releasever={release}"),
                ]
                .into_iter()
                .chain(options.iter().chain(FEDORA_PACKAGES).map(|a| a.to_string())),
            );
            run_with_progress(system, &dnf)?;
        }
    }
    configure(system, &new, distro)?;
    if system.kind(&dir).is_some() {
        system
            .rename(&dir, &old)
            .map_err(step("moving the old image aside"))?;
    }
    system
        .rename(&new, &dir)
        .map_err(step("swapping in the new image"))?;
    crate::containers::rootfs::remove(system, &old).map_err(step("removing the old image"))?;
    Ok(system.monotonic() - start)
}

/// Turn a fresh root filesystem into a srvctl image.
fn configure(system: &dyn System, root: &Path, distro: Distro) -> Result<(), ImageError> {
    let write = |rel: &str, text: &str| {
        system
            .write(&root.join(rel), text.as_bytes(), 0o644, true)
            .map_err(step(rel))
    };
    write("etc/systemd/system/srvctl-site.service", SITE_UNIT)?;
    let ssh = if distro == Distro::Debian {
        "ssh"
    } else {
        "sshd"
    };
    write(
        "etc/systemd/system/srvctl-ssh-keygen.service",
        SSH_KEYGEN_UNIT,
    )?;
    write(
        "var/www/html/index.html",
        "<!doctype html><title>srvctl</title><h1>srvctl</h1>\n",
    )?;
    write("etc/sysusers.d/srvctl-www.conf", WWW_SYSUSERS)?;
    write("etc/systemd/journald.conf.d/50-srvctl.conf", JOURNALD_CONF)?;
    for unit in MASKED {
        let rel = format!("etc/systemd/system/{unit}");
        system
            .symlink(&root.join(&rel), Path::new("/dev/null"))
            .map_err(step(&rel))?;
    }
    write("etc/tmpfiles.d/srvctl-www.conf", WWW_TMPFILES)?;
    let sysusers = CommandLine::new("systemd-sysusers", [format!("--root={}", root.display())]);
    system
        .run(&sysusers)
        .map_err(step("creating the www account"))?;
    write("etc/machine-id", "")?;
    // sshd starts per connection from its socket (the distribution's `Accept=yes` socket
    // and template service) instead of idling in every container; the package's own
    // enabling of the daemon is undone.
    let systemctl = |verb: &str, units: &[String]| {
        CommandLine::new(
            "systemctl",
            [format!("--root={}", root.display()), verb.into()]
                .into_iter()
                .chain(units.iter().cloned()),
        )
    };
    system
        .run(&systemctl("disable", &[format!("{ssh}.service")]))
        .map_err(step("disabling the idle sshd in the image"))?;
    let enabled = [
        "systemd-networkd.service".to_owned(),
        "srvctl-site.service".to_owned(),
        "srvctl-ssh-keygen.service".to_owned(),
        format!("{ssh}.socket"),
    ];
    system
        .run(&systemctl("enable", &enabled))
        .map_err(step("enabling services in the image"))?;
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let _ = system.remove_tree(&root.join(dir));
    }
    crate::containers::rootfs::remove_host_keys(system, root)
        .map_err(step("removing SSH host keys"))?;
    Ok(())
}
