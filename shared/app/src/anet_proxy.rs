//! The Authorize.Net-compatible proxy (ConnectWise's customer portal can only pay through
//! Authorize.Net): credentials Paybridge issues per org, and a charge of an invoice's real
//! balance through the org's own gateway, whatever amount the caller sent.
//!
//! * Credentials: an API Login ID (`PB` + 10 characters, shown) and a 16-character Transaction
//!   Key (shown once, kept as its SHA-256), the shapes ConnectWise's Authorize.Net settings
//!   take. A wrong pair is answered as Authorize.Net does (E00007) and counted against the
//!   caller's address (see `velocity`), so that guessing is throttled.
//! * The amount: the invoice named by `invoiceNumber` / `x_invoice_num` is read through the
//!   accounting port; its balance is charged, or the posted amount where it is lower and the org
//!   allows partial payments. An unknown, paid or void invoice is refused before any gateway
//!   call.
//! * The card goes to the org's gateway in this request and is dropped: the payment records the
//!   brand and last four, as every payment does.

use domain::{Email, InvoiceNumber, OrgSlug, PaymentId, Secret, token_hash};
use time::OffsetDateTime;

use crate::Services;
use crate::pay_now::{PayCommand, PayError, PaySource};
use crate::payments::Payment;
use crate::ports::{CardDetails, ProxyCredential, StoreError};
use crate::velocity;

/// A credential as issued: the key is in it this once.
#[derive(Debug, Clone)]
pub struct Issued {
    pub login: String,
    pub transaction_key: Secret<String>,
    pub label: String,
    pub created_at: OffsetDateTime,
}

/// Letters and digits from a random secret (43 base64url characters), as many as asked.
fn alphanumeric(s: &Services, len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        out.extend(
            s.ids
                .secret()
                .expose()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(len - out.len()),
        );
    }
    out
}

/// The org's credentials (logins and labels; the keys are not kept).
pub async fn credentials(s: &Services, org: &OrgSlug) -> Result<Vec<ProxyCredential>, StoreError> {
    s.proxy_credentials.proxy_credentials(org).await
}

/// Revokes one: callers using it are refused from the next request. False: no such login.
pub async fn revoke(s: &Services, org: &OrgSlug, login: &str) -> Result<bool, StoreError> {
    let revoked = s
        .proxy_credentials
        .revoke_proxy_credential(org, login)
        .await?;
    if revoked {
        tracing::info!(org = %org, login = %login, "proxy credential revoked");
    }
    Ok(revoked)
}

pub async fn issue_credential(
    s: &Services,
    org: &OrgSlug,
    label: &str,
) -> Result<Issued, StoreError> {
    let now = s.clock.now();
    loop {
        let login = format!("PB{}", alphanumeric(s, 10));
        let key = Secret::new(alphanumeric(s, 16));
        let credential = ProxyCredential {
            org: org.clone(),
            login: login.clone(),
            key_hash: token_hash(key.expose()),
            label: label.to_owned(),
            created_at: now,
        };
        // A login is random: taken only by a one-in-10^17 chance, then another.
        if s.proxy_credentials
            .put_proxy_credential(&credential)
            .await?
        {
            tracing::info!(org = %org, login = %login, "proxy credential issued");
            return Ok(Issued {
                login,
                transaction_key: key,
                label: credential.label,
                created_at: now,
            });
        }
    }
}

/// Wrong credentials from one address per hour before every attempt from it is refused, and
/// per org (a spread-out guess at one org's key).
pub const FAILURES_PER_CLIENT: u32 = 10;
pub const FAILURES_PER_ORG: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown login, wrong key, or too many wrong ones lately: the caller is not told which
    /// (Authorize.Net's E00007 for all of them).
    #[error("the proxy credentials were refused")]
    Refused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a login and key against the org's credentials (the key compared as its hash, in
/// constant time), unless wrong ones from this address or at this org have passed their limits
/// within the hour; a wrong one is counted.
pub async fn authenticate(
    s: &Services,
    org: &OrgSlug,
    login: &str,
    key: &Secret<String>,
    client: Option<&str>,
) -> Result<(), AuthError> {
    let now = s.clock.now();
    let mut limits = vec![(format!("anet#{org}"), FAILURES_PER_ORG)];
    if let Some(client) = client {
        limits.push((format!("anet-ip#{client}"), FAILURES_PER_CLIENT));
    }
    let keys: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
    let window = velocity::window_index(now);
    let counts = s.counters.counts(&keys, window).await?;
    if velocity::refusal(&limits, &counts, now).is_some() {
        tracing::warn!(org = %org, "proxy sign-in refused: too many wrong credentials lately");
        return Err(AuthError::Refused);
    }
    let well_formed = (1..=25).contains(&login.len())
        && login.chars().all(|c| c.is_ascii_alphanumeric())
        && (1..=64).contains(&key.expose().len());
    let found = if well_formed {
        s.proxy_credentials.proxy_credential(org, login).await?
    } else {
        None
    };
    let given = token_hash(key.expose());
    if found.is_some_and(|f| constant_time_eq(given.as_bytes(), f.key_hash.as_bytes())) {
        return Ok(());
    }
    if let Err(e) = s
        .counters
        .count_failure(&keys, window, velocity::expires_at(window))
        .await
    {
        tracing::error!(error = %e, "a wrong proxy credential was not counted");
    }
    tracing::info!(org = %org, "proxy credentials refused");
    Err(AuthError::Refused)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A charge through the proxy, once the caller is authenticated.
#[derive(Debug)]
pub struct ProxyCharge {
    pub org: OrgSlug,
    pub invoice: String,
    /// The amount the caller sent: charged only where lower than the balance and the org
    /// allows partial payments.
    pub posted_amount: String,
    pub card: CardDetails,
    pub receipt_email: Option<Email>,
    pub payment_id: PaymentId,
    pub resumed: bool,
    pub client: Option<String>,
}

/// Charges the invoice's balance (see the module's doc) with the caller's card.
pub async fn charge(s: &Services, cmd: ProxyCharge) -> Result<Payment, PayError> {
    let invoice = InvoiceNumber::parse(cmd.invoice.trim()).map_err(|_| PayError::NotFound)?;
    let org = s.orgs.get_org(&cmd.org).await?.ok_or(PayError::NotFound)?;
    let amount = org
        .settings
        .allow_partial
        .then(|| cmd.posted_amount.trim().to_owned())
        .filter(|a| !a.is_empty());
    crate::pay_now::pay(
        s,
        PayCommand {
            org: cmd.org,
            invoice,
            payment_id: cmd.payment_id,
            resumed: cmd.resumed,
            source: PaySource::Card(cmd.card),
            amount,
            // "At most" the posted amount: a posted amount above the balance charges the balance.
            amount_at_most: true,
            receipt_email: cmd.receipt_email,
            // Typed into ConnectWise's portal, not asked of us: the account's preferences hold.
            receipt_asked: false,
            client: cmd.client,
        },
    )
    .await
}
