//! Ordering a certificate from the CA: the account, the order over HTTP-01, installing it.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AcmeError, AcmeSettings, Responder, acme_dir, io_at};
use crate::front::certs::{self, CertMeta, CertSource};
use crate::system::System;
use crate::system::paths::Paths;

fn account_path(paths: &Paths) -> std::path::PathBuf {
    acme_dir(paths).join("account.json")
}

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

/// The account for the configured directory in `account.json`, if there is one.
pub(super) async fn stored_account(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
) -> Result<Option<instant_acme::Account>, AcmeError> {
    let path = account_path(paths);
    let Some(bytes) = system.read(&path).map_err(io_at(&path))? else {
        return Ok(None);
    };
    let stored: StoredAccount = serde_json::from_slice(&bytes)
        .map_err(|e| AcmeError::Parse(path.display().to_string(), e))?;
    if stored.directory != settings.directory {
        return Ok(None);
    }
    Ok(Some(
        builder(settings)?
            .from_credentials(stored.credentials)
            .await?,
    ))
}

/// The account for the configured directory: loaded from `account.json`, or created there.
async fn account(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
) -> Result<instant_acme::Account, AcmeError> {
    if let Some(account) = stored_account(system, paths, settings).await? {
        return Ok(account);
    }
    let path = account_path(paths);
    let (account, credentials) = builder(settings)?
        .create(
            &instant_acme::NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials,
    };
    let dir = acme_dir(paths);
    system.create_dir(&dir, 0o700).map_err(io_at(&dir))?;
    let json = serde_json::to_vec_pretty(&stored).expect("credentials serialise");
    system
        .write(&path, &json, 0o600, true)
        .map_err(io_at(&path))?;
    Ok(account)
}

/// Order a certificate for `names` over HTTP-01, answering challenges with `responder`.
async fn order(
    account: &instant_acme::Account,
    responder: &Responder,
    names: &[String],
) -> Result<Issued, AcmeError> {
    use instant_acme::{
        AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
    };
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
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
        responder.add(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order.poll_ready(&retry).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Protocol(order_failure(&mut order, status).await));
    }
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(names.to_vec())?;
    let csr = params.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&retry).await?;
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

/// Obtain and install a certificate for container `name` covering `names`.
pub fn obtain(
    system: &dyn System,
    paths: &Paths,
    settings: &AcmeSettings,
    name: &str,
    names: &[String],
    now: Timestamp,
) -> Result<CertMeta, AcmeError> {
    let responder = Responder::start(settings.listen)
        .map_err(|e| AcmeError::Io(format!("challenge responder on {}", settings.listen), e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AcmeError::Io("async runtime".into(), e))?;
    let issued = runtime.block_on(async {
        let account = account(system, paths, settings).await?;
        tokio::time::timeout(Duration::from_secs(300), order(&account, &responder, names))
            .await
            .map_err(|_| AcmeError::Protocol("the order took more than 5 minutes".into()))?
    })?;
    let meta = CertMeta {
        source: CertSource::Acme,
        names: names.to_vec(),
        not_after: issued.not_after.to_string(),
        issued: now.to_string(),
    };
    let _lock = certs::lock(system, paths).map_err(io_at(&certs::dir(paths)))?;
    certs::install(
        system,
        paths,
        name,
        &issued.chain_pem,
        &issued.key_pem,
        &meta,
    )
    .map_err(io_at(&certs::pem_path(paths, name)))?;
    Ok(meta)
}
