//! `sc cluster request|sign|accept` as the operator sees them: PEM on standard output (or a
//! file), JSON under `--json`, standard input for `-`, and refusals as one line with the
//! failure's exit status that change nothing in the trust root.

// Tests may use the real file system and processes directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{Farm, Run, TWO_HOSTS};

const PKI: &str = "var/lib/srvctl/pki/cluster";

/// `sc ARGS…` on `farm` with `input` on its standard input.
fn sc_with_input(farm: &Farm, args: &[&str], input: &str) -> Run {
    let mut child = farm
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sc");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Run::from_output(child.wait_with_output().unwrap())
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
    assert_eq!(bundle.matches("BEGIN CERTIFICATE-----").count(), 2);
    let accepted = sc_with_input(&h2, &["cluster", "accept", "-"], bundle);
    assert!(
        accepted
            .ok()
            .starts_with("h2.test: cluster certificate installed")
    );
    let names: Vec<String> = trust_root(&h2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["ca.crt", "host.crt", "host.csr", "host.key"]);
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
