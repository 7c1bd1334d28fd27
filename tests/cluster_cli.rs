//! `sc cluster request|sign|accept|join` as the operator sees them: PEM on standard output (or a
//! file), JSON under `--json`, standard input for `-`, and refusals as one line with the
//! failure's exit status that change nothing in the trust root.

// Tests may use the real file system and processes directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::Path;

use common::{Farm, Run, TWO_HOSTS};

const PKI: &str = "var/lib/srvctl/pki/cluster";

/// `sc ARGS…` on `farm` with `input` on its standard input.
fn sc_with_input(farm: &Farm, args: &[&str], input: &str) -> Run {
    common::run_with_input(&mut farm.command(args), input)
}

/// Every file of `farm`'s trust root with its bytes.
fn trust_root(farm: &Farm) -> Vec<(String, Vec<u8>)> {
    let dir = farm.join(PKI);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_host_joins_through_standard_input_and_output() {
    let h1 = Farm::with_clusters(TWO_HOSTS);
    let h2 = Farm::for_host(TWO_HOSTS, "h2.test");
    let own: serde_json::Value =
        serde_json::from_str(&h1.sc_ok(&["--json", "cluster", "request"])).unwrap();
    assert_eq!(own["host"], "h1.test");
    assert_eq!(own["installed"], true);
    assert!(own.get("csr").is_none(), "{own}");

    let csr = h2.sc_ok(&["cluster", "request"]);
    assert!(
        csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr}"
    );
    let signed = sc_with_input(&h1, &["--json", "cluster", "sign", "-"], &csr);
    let signed: serde_json::Value = serde_json::from_str(signed.ok()).unwrap();
    assert_eq!(signed["host"], "h2.test");
    let bundle = signed["bundle"].as_str().unwrap();
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE-----").count(),
        4,
        "the host's identity and the cluster CA, the host's site issuer and the site root"
    );
    let accepted = sc_with_input(&h2, &["cluster", "accept", "-"], bundle);
    assert!(
        accepted
            .ok()
            .starts_with("h2.test: cluster certificate and site issuer")
    );
    let names: Vec<String> = trust_root(&h2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["ca.crt", "host.crt", "host.csr", "host.key", "site-ca.crt"]
    );
}

/// `sc cluster join` with `ssh` on PATH standing in for the way to the CA host: it checks the
/// arguments srvctl gives ssh and runs `sc cluster sign -` of `ca` (the real ssh is driven
/// by tests/e2e/cluster-in-boxes.sh).
fn ssh_to(ca: &Farm) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = ca.tmp().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         [ \"$*\" = \"-o BatchMode=yes -T -- root@h1.test sc cluster sign -\" ] || \
         {{ echo \"ssh: unexpected arguments: $*\" >&2; exit 255; }}\n\
         exec env SRVCTL_HOSTNAME=h1.test {} --root {} cluster sign -\n",
        common::SC,
        ca.root().display()
    );
    let ssh = bin.join("ssh");
    std::fs::write(&ssh, script).unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn a_host_joins_in_one_step_through_the_ca_hosts_sc_cluster_sign() {
    let h1 = Farm::with_clusters(TWO_HOSTS);
    let h2 = Farm::for_host(TWO_HOSTS, "h2.test");
    let path = format!(
        "{}:{}",
        ssh_to(&h1).display(),
        std::env::var("PATH").unwrap()
    );
    let join = |farm: &Farm| {
        let out = farm
            .command(&["--json", "cluster", "join"])
            .env("PATH", &path)
            .output()
            .unwrap();
        Run::from_output(out)
    };
    h1.sc_ok(&["cluster", "request"]);
    let run = join(&h2);
    assert!(
        run.stderr.contains("asking the CA host h1.test"),
        "{run:#?}"
    );
    let accepted: serde_json::Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(accepted["host"], "h2.test");
    let names: Vec<String> = trust_root(&h2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["ca.crt", "host.crt", "host.csr", "host.key", "site-ca.crt"]
    );
    // The CA keys stayed on the CA host; h2's key never left h2.
    assert!(!h2.join(PKI).join("ca.key").exists());
    assert!(!h2.join(PKI).join("site-ca.key").exists());
    assert!(h1.join(PKI).join("site-ca.key").exists());
    assert_ne!(read(&h1, "host.key"), read(&h2, "host.key"));
    // A CA host that cannot be reached: the error names it.
    let h2b = Farm::for_host(TWO_HOSTS, "h2.test");
    let run = h2b
        .command(&["cluster", "join", "--via", "nobody@nowhere.test"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let run = Run::from_output(run);
    assert!(!run.success(), "{run:#?}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sc: error: asking the CA host h1.test to sign over ssh nobody@"),
        "{run:#?}"
    );
    // Its key and request stay for the next attempt; no certificate was installed.
    assert!(!h2b.join(PKI).join("host.crt").exists());
    // The CA host itself has nothing to join.
    let run = h1.sc(&["cluster", "join"]);
    assert!(run.refused().contains("is the CA host"), "{run:#?}");
}

#[test]
fn refusals_are_one_line_and_change_nothing() {
    let h1 = Farm::with_clusters(TWO_HOSTS);
    let h2 = Farm::for_host(TWO_HOSTS, "h2.test");
    h1.sc_ok(&["cluster", "request"]);
    let csr_file = h2.tmp().join("h2.csr");
    h2.sc_ok(&["cluster", "request", "-o", csr_file.to_str().unwrap()]);
    let csr = std::fs::read_to_string(&csr_file).unwrap();
    let (before1, before2) = (trust_root(&h1), trust_root(&h2));

    // Only the CA host signs.
    let run = sc_with_input(&h2, &["cluster", "sign", "-"], &csr);
    assert_eq!(run.code, Some(6), "{run:#?}");
    assert!(run.refused().contains("only the CA host"), "{run:#?}");
    // A CSR that is not one, a bundle that is not one, a missing file.
    let run = sc_with_input(&h1, &["cluster", "sign", "-"], "junk");
    assert!(run.refused().contains("not a valid certificate request"));
    let run = sc_with_input(&h2, &["cluster", "accept", "-"], &csr);
    assert!(run.refused().contains("certificates only"), "{run:#?}");
    let missing = h2.tmp().join("missing.pem");
    let run = h2.sc(&["cluster", "accept", missing.to_str().unwrap()]);
    assert!(run.refused().contains("missing.pem"), "{run:#?}");
    // h1's own bundle is no certificate of h2's.
    let h1_bundle = sc_with_input(&h1, &["cluster", "sign", "-"], &read(&h1, "host.csr"));
    let run = sc_with_input(&h2, &["cluster", "accept", "-"], h1_bundle.ok());
    assert!(
        run.refused().contains("not for this host's key"),
        "{run:#?}"
    );

    assert_eq!(trust_root(&h1), before1);
    assert_eq!(trust_root(&h2), before2);
}

fn read(farm: &Farm, file: &str) -> String {
    std::fs::read_to_string(Path::new(&farm.join(PKI)).join(file)).unwrap()
}
