//! Ordering a certificate from the CA: the account, the order over HTTP-01.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AcmeError, AcmeSettings, AcmeStore};

/// How long one order may take, from the account to the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// A certificate obtained from the CA.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The private key (PEM).
    pub key_pem: String,
    /// The leaf's expiry.
    pub not_after: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: instant_acme::AccountCredentials,
}

fn builder(settings: &AcmeSettings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    Ok(match &settings.ca_file {
        Some(ca) => instant_acme::Account::builder_with_root(ca)?,
        None => instant_acme::Account::builder()?,
    })
}

/// The steps of one order, each run to its end on the order's runtime, so that the store
/// (which may talk to etcd on a runtime of its own) is only called between them.
struct Steps {
    runtime: tokio::runtime::Runtime,
    deadline: tokio::time::Instant,
}

impl Steps {
    fn new() -> Result<Self, AcmeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AcmeError::Io("async runtime".into(), e))?;
        Ok(Self {
            runtime,
            deadline: tokio::time::Instant::now() + ORDER_TIMEOUT,
        })
    }

    /// Run `step`, within what is left of the order's time.
    fn run<T>(&self, step: impl Future<Output = Result<T, AcmeError>>) -> Result<T, AcmeError> {
        self.runtime
            .block_on(async { tokio::time::timeout_at(self.deadline, step).await })
            .map_err(|_| AcmeError::Protocol("the order took more than 5 minutes".into()))?
    }
}

/// The credentials of the store's account for the configured directory, if it has one.
pub(super) fn stored_credentials(
    store: &dyn AcmeStore,
    settings: &AcmeSettings,
) -> Result<Option<instant_acme::AccountCredentials>, AcmeError> {
    match store.account(&settings.directory)? {
        Some(bytes) => credentials_of(&bytes, settings),
        None => Ok(None),
    }
}

/// The credentials in a stored account, if it is one of the configured directory.
fn credentials_of(
    bytes: &[u8],
    settings: &AcmeSettings,
) -> Result<Option<instant_acme::AccountCredentials>, AcmeError> {
    let stored: StoredAccount = serde_json::from_slice(bytes)
        .map_err(|e| AcmeError::Parse("the stored ACME account".into(), e))?;
    Ok((stored.directory == settings.directory).then_some(stored.credentials))
}

/// The account of `credentials` at the CA of `settings`.
pub(super) async fn from_credentials(
    settings: &AcmeSettings,
    credentials: instant_acme::AccountCredentials,
) -> Result<instant_acme::Account, AcmeError> {
    Ok(builder(settings)?.from_credentials(credentials).await?)
}

/// The account for the configured directory: the store's, or a new one stored there (when
/// another host stored one first, that one).
fn account(
    steps: &Steps,
    store: &dyn AcmeStore,
    settings: &AcmeSettings,
) -> Result<instant_acme::Account, AcmeError> {
    if let Some(credentials) = stored_credentials(store, settings)? {
        return steps.run(from_credentials(settings, credentials));
    }
    let (account, credentials) = steps.run(async {
        Ok(builder(settings)?
            .create(
                &instant_acme::NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory.clone(),
                None,
            )
            .await?)
    })?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored).expect("credentials serialise");
    let kept = store.put_account(&settings.directory, &json)?;
    if kept == json {
        return Ok(account);
    }
    let credentials = credentials_of(&kept, settings)?
        .ok_or_else(|| AcmeError::Protocol("the stored account is of another directory".into()))?;
    steps.run(from_credentials(settings, credentials))
}

/// Order a certificate for `names` over HTTP-01 from the configured CA, with the store's
/// account, publishing the challenges through the store (and withdrawing them after).
pub fn obtain(
    store: &dyn AcmeStore,
    settings: &AcmeSettings,
    names: &[String],
) -> Result<Issued, AcmeError> {
    let steps = Steps::new()?;
    let account = account(&steps, store, settings)?;
    let mut published = Vec::new();
    let issued = order(&steps, store, &account, names, &mut published);
    for token in &published {
        if let Err(e) = store.withdraw(token) {
            eprintln!("srvctl: withdrawing an ACME challenge: {e}");
        }
    }
    issued
}

fn order(
    steps: &Steps,
    store: &dyn AcmeStore,
    account: &instant_acme::Account,
    names: &[String],
    published: &mut Vec<String>,
) -> Result<Issued, AcmeError> {
    use instant_acme::{
        AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
    };
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order =
        steps.run(async { Ok(account.new_order(&NewOrder::new(&identifiers)).await?) })?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = steps.run(async { Ok(authorizations.next().await) })? {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Protocol(format!("authorization is {other:?}")));
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Protocol("the CA offers no http-01 challenge".to_owned()))?;
        store.publish(&challenge.token, challenge.key_authorization().as_str())?;
        published.push(challenge.token.clone());
        steps.run(async { Ok(challenge.set_ready().await?) })?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = steps.run(async { Ok(order.poll_ready(&retry).await?) })?;
    if status != OrderStatus::Ready {
        let why = steps.run(async { Ok(order_failure(&mut order, status).await) })?;
        return Err(AcmeError::Protocol(why));
    }
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let csr = params.serialize_request(&key)?;
    let chain_pem = steps.run(async {
        order.finalize_csr(csr.der()).await?;
        Ok(order.poll_certificate(&retry).await?)
    })?;
    let not_after = leaf_not_after(&chain_pem)?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// Why an order did not become ready: the CA's problem details of its failed challenges.
async fn order_failure(
    order: &mut instant_acme::Order,
    status: instant_acme::OrderStatus,
) -> String {
    let mut why = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for ch in &authz.challenges {
            if let Some(e) = &ch.error {
                why.push(format!(
                    "{}: {}",
                    authz.identifier(),
                    e.detail.as_deref().unwrap_or("validation failed")
                ));
            }
        }
    }
    if why.is_empty() {
        format!("order is {status:?}")
    } else {
        format!("order is {status:?}: {}", why.join("; "))
    }
}

/// The expiry of the first certificate of a PEM chain.
pub fn leaf_not_after(chain_pem: &str) -> Result<Timestamp, AcmeError> {
    let leaf = chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap_or_default();
    let bad = |e: String| AcmeError::Protocol(format!("the issued certificate: {e}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.trim_start().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| bad(e.to_string()))
}
