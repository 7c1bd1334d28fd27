//! When to renew: the CA's suggested window from ACME Renewal Information (ARI, RFC 9773),
//! else [`RENEW_BEFORE`] before expiry.
//!
//! The CA's window is asked for each installed ACME certificate when the renewal policy runs.
//! A CA without ARI (its directory has no `renewalInfo`), a failed request or an unreadable
//! certificate falls back to the fixed rule. Within the window the point is fixed by the
//! container's name, so a host's renewals spread over the window and the time shown does not
//! change from one run to the next.

use jiff::{SignedDuration, Timestamp};

use super::{AcmeError, AcmeSettings, AcmeStore, RENEW_BEFORE};

/// A suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Renew no earlier than this.
    pub start: Timestamp,
    /// …and before this.
    pub end: Timestamp,
}

/// Where renewal windows come from.
pub trait RenewalInfo: Sync {
    /// The CA's window for the certificate chain `chain_pem` (leaf first), if it gives one.
    fn window(&self, chain_pem: &str) -> Option<Window>;
}

/// A number in 0..1000 fixed by `name` (FNV-1a).
fn spread(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::try_from(hash % 1000).expect("below 1000")
}

/// When the certificate of container `name`, expiring at `not_after`, is due for renewal: a
/// point of `window` fixed by the name, else [`RENEW_BEFORE`] before expiry.
pub fn renew_at(name: &str, not_after: Timestamp, window: Option<&Window>) -> Timestamp {
    let Some(w) = window.filter(|w| w.end >= w.start) else {
        return not_after - RENEW_BEFORE;
    };
    let span = w.end.duration_since(w.start).as_secs();
    w.start + SignedDuration::from_secs(span / 1000 * spread(name))
}

/// The ARI identifier of the leaf of `chain_pem`: its authority key identifier and its serial
/// number (both DER).
fn identifier(chain_pem: &str) -> Option<instant_acme::CertificateIdentifier<'static>> {
    use x509_parser::extensions::ParsedExtension;
    let leaf = chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .next()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.trim_start().as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })?;
    Some(
        instant_acme::CertificateIdentifier::new(aki.0.into(), cert.raw_serial().into())
            .into_owned(),
    )
}

/// Windows asked of the ACME CA with the account of `sc certificates renew`.
pub struct AcmeRenewalInfo {
    runtime: tokio::runtime::Runtime,
    account: Option<instant_acme::Account>,
}

impl AcmeRenewalInfo {
    /// Windows from the CA of `settings`: none before an account exists (then no ACME
    /// certificate does either) or while the CA cannot be reached (an order would report
    /// that).
    pub fn new(store: &dyn AcmeStore, settings: &AcmeSettings) -> Result<Self, AcmeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AcmeError::Io("async runtime".into(), e))?;
        let account = match super::order::stored_credentials(store, settings) {
            Ok(Some(credentials)) => runtime
                .block_on(super::order::from_credentials(settings, credentials))
                .ok(),
            _ => None,
        };
        Ok(Self { runtime, account })
    }
}

impl RenewalInfo for AcmeRenewalInfo {
    fn window(&self, chain_pem: &str) -> Option<Window> {
        let account = self.account.as_ref()?;
        let id = identifier(chain_pem)?;
        let (info, _) = self.runtime.block_on(account.renewal_info(&id)).ok()?;
        let window = info.suggested_window;
        Some(Window {
            start: Timestamp::from_second(window.start.unix_timestamp()).ok()?,
            end: Timestamp::from_second(window.end.unix_timestamp()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::acme::testutil::t;

    #[test]
    fn the_cas_window_decides_else_30_days_before_expiry() {
        let not_after = t("2026-08-31T00:00:00Z");
        assert_eq!(
            renew_at("a.example.com", not_after, None),
            t("2026-08-01T00:00:00Z")
        );
        let window = Window {
            start: t("2026-08-10T00:00:00Z"),
            end: t("2026-08-12T00:00:00Z"),
        };
        let a = renew_at("a.example.com", not_after, Some(&window));
        assert!(a >= window.start && a <= window.end, "{a}");
        assert_eq!(a, renew_at("a.example.com", not_after, Some(&window)));
        // Names spread over the window.
        let points: std::collections::BTreeSet<Timestamp> = (0..20)
            .map(|i| renew_at(&format!("s{i}.example.com"), not_after, Some(&window)))
            .collect();
        assert!(points.len() > 10, "{points:?}");
        assert!(
            points
                .iter()
                .all(|p| *p >= window.start && *p <= window.end)
        );
        // A window that ends before it starts is no window.
        let bad = Window {
            start: window.end,
            end: window.start,
        };
        assert_eq!(
            renew_at("a.example.com", not_after, Some(&bad)),
            t("2026-08-01T00:00:00Z")
        );
    }

    #[test]
    fn the_identifier_is_the_authority_key_id_and_the_serial() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![0xab; 20]);
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x01, 0x02, 0x03]));
        let pem = leaf.signed_by(&key, &issuer).unwrap().pem();
        let id = identifier(&pem).expect("an identifier");
        // base64url of 20 × 0xab, and of the serial's DER content.
        assert_eq!(id.authority_key_identifier, "q6urq6urq6urq6urq6urq6urq6s");
        assert_eq!(id.serial, "AQID");
        assert!(identifier("no certificate").is_none());
    }
}
