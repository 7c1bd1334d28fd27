//! The cluster trust root through `sc`, as an operator joins a host: `sc cluster request` on
//! the host, `sc cluster sign` on the CA host, `sc cluster accept` on the host. Only the CSR
//! and the signed bundle travel between the roots.

use std::path::Path;

use super::Farm;

/// Make `ca` (the CA host's root) its own identity: the cluster CA and its host certificate.
pub fn make_ca_host(ca: &Farm) {
    let out = ca.sc_ok(&["cluster", "request"]);
    assert!(out.contains("is the CA host"), "{out}");
}

/// Join `host` to the trust root of `ca`, passing files in `dir`.
pub fn join(ca: &Farm, host: &Farm, dir: &Path) {
    let csr = dir.join("request.csr");
    let bundle = dir.join("bundle.pem");
    let text = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    host.sc_ok(&["cluster", "request", "-o", &text(&csr)]);
    let signed = ca.sc_ok(&["cluster", "sign", &text(&csr)]);
    std::fs::write(&bundle, signed).expect("write the bundle");
    host.sc_ok(&["cluster", "accept", &text(&bundle)]);
}
