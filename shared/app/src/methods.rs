//! Saved cards and bank accounts: a payer of an org saves what the browser tokenized with the
//! gateway; Paybridge keeps the gateway's references and what may be shown, never a number.
//!
//! Saving: the payer's customer at the gateway (made once per payer, org and gateway), the token
//! attached to it, then one transaction for the method, its fingerprint marker (the same card
//! saved twice is one method) and its mandate. A bank account needs a direct-debit authority;
//! a card may carry a stored-credential authority, which later lets schedules and automatic
//! payments charge it without the payer present.

use std::collections::HashMap;

use askama::Template;
use domain::{CustomerId, Email, MandateId, Membership, MethodId, Org, OrgSlug, Secret, UserId};
use time::{Date, Duration, Month, OffsetDateTime};

use crate::Services;
use crate::notices::summary_label;
use crate::ports::{DeleteWrite, EmailMessage, Mandate, SaveWrite, SavedMethod, StoreError, User};

/// The version of the authority texts in `templates/terms/`: a change of their words is a new
/// version, and a save that was shown an older one is refused.
pub const TERMS_VERSION: &str = "2026-12-01";

/// How often a save is tried again when the default moved meanwhile.
const SAVE_TRIES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    Card,
    Bank,
}

impl MethodKind {
    pub fn parse(text: &str) -> Option<MethodKind> {
        match text {
            "card" => Some(MethodKind::Card),
            "bank" => Some(MethodKind::Bank),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Card => "card",
            MethodKind::Bank => "bank",
        }
    }

    /// The authority a method of this kind is saved under.
    pub fn mandate_kind(self) -> &'static str {
        match self {
            MethodKind::Card => "stored_credential",
            MethodKind::Bank => "direct_debit",
        }
    }
}

#[derive(Template)]
#[template(path = "terms/direct_debit.txt")]
struct DirectDebitTerms<'a> {
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "terms/stored_credential.txt")]
struct StoredCredentialTerms<'a> {
    org_name: &'a str,
}

/// An authority's words as the payer is shown them, and what identifies them.
#[derive(Debug, Clone)]
pub struct Terms {
    /// "direct_debit" or "stored_credential"
    pub kind: &'static str,
    pub version: &'static str,
    pub text: String,
    /// SHA-256 of `text`: what the mandate records.
    pub hash: String,
}

pub fn terms(kind: MethodKind, org_name: &str) -> Terms {
    let text = match kind {
        MethodKind::Bank => DirectDebitTerms { org_name }.render(),
        MethodKind::Card => StoredCredentialTerms { org_name }.render(),
    }
    .expect("the terms templates render");
    Terms {
        kind: kind.mandate_kind(),
        version: TERMS_VERSION,
        hash: domain::token_hash(&text),
        text,
    }
}

/// The payer's acceptance of the authority, as the form or API sends it.
pub struct MandateAcceptance {
    pub signer_name: String,
    /// The version of the terms the payer was shown.
    pub terms_version: String,
}

pub struct SaveCommand {
    pub org: OrgSlug,
    pub user: User,
    pub token: Secret<String>,
    pub kind: String,
    pub make_default: bool,
    pub nickname: Option<String>,
    pub mandate: Option<MandateAcceptance>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// Not a member of the org, or no such method of this payer: nobody learns which.
    #[error("no such payment method")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("a bank account can only be saved with a direct debit authority (mandate)")]
    MandateRequired,
    #[error("the terms changed (now version {0}); show the new terms and accept them again")]
    TermsChanged(&'static str),
    #[error("the card or account details expired or were used already; enter them again")]
    InvalidToken,
    #[error("the details are for a {actual}, not a {claimed}")]
    KindMismatch {
        claimed: &'static str,
        actual: String,
    },
    #[error("this method is used by {}; cancel that first", .0.join(", "))]
    InUse(Vec<String>),
    #[error("the payment gateway is unavailable; nothing was saved")]
    GatewayUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A method saved, or the one the payer had saved already for the same card or account.
pub struct Saved {
    pub method: SavedMethod,
    pub created: bool,
}

/// The org and the caller's membership of it; anyone else gets NotFound.
pub async fn membership(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
) -> Result<(Org, Membership), MethodError> {
    let (org, membership) =
        futures::try_join!(s.orgs.get_org(org), s.members.membership(org, user))?;
    match (org, membership) {
        (Some(org), Some(membership)) => Ok((org, membership)),
        _ => Err(MethodError::NotFound),
    }
}

fn check_nickname(nickname: Option<String>) -> Result<Option<String>, MethodError> {
    let nickname = nickname
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    match &nickname {
        Some(n) if n.chars().count() > 40 => Err(MethodError::Invalid(
            "nickname: at most 40 characters".into(),
        )),
        _ => Ok(nickname),
    }
}

/// Saves a tokenized card or bank account for the payer.
pub async fn save(s: &Services, cmd: SaveCommand) -> Result<Saved, MethodError> {
    let kind = MethodKind::parse(&cmd.kind)
        .ok_or_else(|| MethodError::Invalid("kind: card or bank".into()))?;
    let nickname = check_nickname(cmd.nickname)?;
    let (org, membership) = membership(s, &cmd.org, &cmd.user.id).await?;
    let terms = terms(kind, &org.name);
    match (&cmd.mandate, kind) {
        (None, MethodKind::Bank) => return Err(MethodError::MandateRequired),
        (Some(m), _) if m.terms_version != terms.version => {
            return Err(MethodError::TermsChanged(terms.version));
        }
        (Some(m), _) if !(1..=100).contains(&m.signer_name.trim().chars().count()) => {
            return Err(MethodError::Invalid(
                "signer_name: 1 to 100 characters".into(),
            ));
        }
        _ => {}
    }
    let gateway = s
        .gateway
        .name_for(&org.slug)
        .await
        .map_err(|_| MethodError::GatewayUnavailable)?;
    let customer = payer_customer(s, &org.slug, &cmd.user, gateway).await?;
    let attached = s
        .gateway
        .attach_method(&org.slug, &customer, &cmd.token)
        .await
        .map_err(|_| MethodError::GatewayUnavailable)?
        .ok_or(MethodError::InvalidToken)?;
    let detach_new = || async {
        if let Err(e) = s
            .gateway
            .detach_method(&org.slug, &customer, &attached.method_ref)
            .await
        {
            tracing::warn!(org = %org.slug, error = %e, "a method attached in vain was not detached");
        }
    };
    if attached.kind != kind.as_str() {
        detach_new().await;
        return Err(MethodError::KindMismatch {
            claimed: kind.as_str(),
            actual: attached.kind.clone(),
        });
    }
    let now = s.clock.now();
    let id = MethodId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs");
    let mandate = cmd.mandate.as_ref().map(|m| Mandate {
        id: MandateId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
        org: org.slug.clone(),
        user: cmd.user.id.clone(),
        email: cmd.user.email.clone(),
        method: id.clone(),
        kind: terms.kind.to_owned(),
        method_label: summary_label(&crate::payments::MethodSummary {
            kind: attached.kind.clone(),
            brand: attached.brand.clone(),
            last4: attached.last4.clone(),
        }),
        terms_version: terms.version.to_owned(),
        terms_hash: terms.hash.clone(),
        signer_name: m.signer_name.trim().to_owned(),
        accepted_at: now,
        client_ip: cmd.client_ip.clone(),
        user_agent: cmd.user_agent.clone(),
    });
    for _ in 0..SAVE_TRIES {
        let existing = s.methods.methods_of(&org.slug, &cmd.user.id).await?;
        if let Some(same) = existing
            .iter()
            .find(|m| m.fingerprint == attached.fingerprint)
        {
            detach_new().await;
            return Ok(Saved {
                method: same.clone(),
                created: false,
            });
        }
        let previous_default = existing.iter().find(|m| m.is_default).map(|m| m.id.clone());
        let method = SavedMethod {
            id: id.clone(),
            org: org.slug.clone(),
            user: cmd.user.id.clone(),
            kind: attached.kind.clone(),
            brand: attached.brand.clone(),
            last4: attached.last4.clone(),
            exp_month: attached.exp_month,
            exp_year: attached.exp_year,
            holder_name: attached.holder_name.clone(),
            fingerprint: attached.fingerprint.clone(),
            gateway: gateway.to_owned(),
            gateway_customer: customer.clone(),
            gateway_method: attached.method_ref.clone(),
            customer_ids: membership.customer_ids.clone(),
            nickname: nickname.clone(),
            is_default: cmd.make_default || previous_default.is_none(),
            mandate: mandate.as_ref().map(|m| m.id.clone()),
            used_by: Vec::new(),
            created_at: now,
        };
        match s
            .methods
            .save_method(&method, mandate.as_ref(), previous_default.as_ref())
            .await?
        {
            SaveWrite::Saved => {
                return Ok(Saved {
                    method,
                    created: true,
                });
            }
            SaveWrite::Duplicate(other) => {
                detach_new().await;
                if let Some(same) = s
                    .methods
                    .get_method(&org.slug, &cmd.user.id, &other)
                    .await?
                {
                    return Ok(Saved {
                        method: same,
                        created: false,
                    });
                }
            }
            SaveWrite::DefaultMoved => {}
        }
    }
    detach_new().await;
    Err(StoreError("the payer's methods kept changing; try again".into()).into())
}

/// The payer's customer at the org's gateway, made on first use.
async fn payer_customer(
    s: &Services,
    org: &OrgSlug,
    user: &User,
    gateway: &str,
) -> Result<String, MethodError> {
    if let Some(customer) = s.methods.payer_customer(org, &user.id, gateway).await? {
        return Ok(customer);
    }
    let reference = format!("{org}:{}", user.id);
    let made = s
        .gateway
        .create_customer(org, &reference, &user.email, &user.name)
        .await
        .map_err(|_| MethodError::GatewayUnavailable)?;
    Ok(s.methods
        .keep_payer_customer(org, &user.id, gateway, &made)
        .await?)
}

/// The payer's methods in the org: the default first, then the newest.
pub async fn list(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
) -> Result<Vec<SavedMethod>, MethodError> {
    membership(s, org, user).await?;
    Ok(in_order(s, org, user).await?)
}

/// The payer's methods, the default first, then the newest; for callers that checked the
/// membership already.
pub(crate) async fn in_order(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
) -> Result<Vec<SavedMethod>, StoreError> {
    let mut methods = s.methods.methods_of(org, user).await?;
    methods.sort_by(|a, b| {
        b.is_default
            .cmp(&a.is_default)
            .then(b.created_at.cmp(&a.created_at))
    });
    Ok(methods)
}

/// A change to a method: `nickname: Some(None)` removes the nickname.
#[derive(Default)]
pub struct MethodPatch {
    pub make_default: Option<bool>,
    pub nickname: Option<Option<String>>,
}

pub async fn update(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    id: &MethodId,
    patch: MethodPatch,
) -> Result<SavedMethod, MethodError> {
    if patch.make_default == Some(false) {
        return Err(MethodError::Invalid(
            "make_default: make another method the default instead".into(),
        ));
    }
    let nickname = patch.nickname.map(check_nickname).transpose()?;
    membership(s, org, user).await?;
    s.methods
        .get_method(org, user, id)
        .await?
        .ok_or(MethodError::NotFound)?;
    if let Some(nickname) = nickname
        && !s
            .methods
            .set_nickname(org, user, id, nickname.as_deref())
            .await?
    {
        return Err(MethodError::NotFound);
    }
    if patch.make_default == Some(true) {
        make_default(s, org, user, id).await?;
    }
    s.methods
        .get_method(org, user, id)
        .await?
        .ok_or(MethodError::NotFound)
}

async fn make_default(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    id: &MethodId,
) -> Result<(), MethodError> {
    for _ in 0..SAVE_TRIES {
        let methods = s.methods.methods_of(org, user).await?;
        if !methods.iter().any(|m| m.id == *id) {
            return Err(MethodError::NotFound);
        }
        let previous = methods.iter().find(|m| m.is_default).map(|m| &m.id);
        if previous == Some(id) || s.methods.set_default(org, user, id, previous).await? {
            return Ok(());
        }
    }
    Err(StoreError("the payer's methods kept changing; try again".into()).into())
}

/// Removes a method here and at the gateway, unless something uses it. When it was the default,
/// the newest other method becomes the default.
pub async fn remove(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    id: &MethodId,
) -> Result<(), MethodError> {
    membership(s, org, user).await?;
    let methods = s.methods.methods_of(org, user).await?;
    let method = methods
        .iter()
        .find(|m| m.id == *id)
        .ok_or(MethodError::NotFound)?;
    if !method.used_by.is_empty() {
        return Err(MethodError::InUse(method.used_by.clone()));
    }
    let promote = methods
        .iter()
        .filter(|m| m.id != *id)
        .max_by_key(|m| m.created_at)
        .map(|m| &m.id);
    match s.methods.delete_method(method, promote).await? {
        DeleteWrite::Deleted => {
            // Ours is gone, so nothing of Paybridge's can charge it any more; a detach that
            // fails leaves only an unused reference at the gateway.
            if let Err(e) = s
                .gateway
                .detach_method(org, &method.gateway_customer, &method.gateway_method)
                .await
            {
                tracing::warn!(%org, method = %id, error = %e, "removed method not detached at the gateway");
            }
            Ok(())
        }
        DeleteWrite::InUse(by) => Err(MethodError::InUse(by)),
        DeleteWrite::Gone => Err(MethodError::NotFound),
    }
}

/// The payer's saved method for paying an invoice of `customer`: the payer must pay for that
/// customer, and the method must have been saved for it. Anything else is NotFound.
pub async fn for_invoice(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    id: &MethodId,
    customer: &CustomerId,
) -> Result<SavedMethod, MethodError> {
    let (membership, method) = futures::try_join!(
        s.members.membership(org, user),
        s.methods.get_method(org, user, id)
    )?;
    match (membership, method) {
        (Some(m), Some(method))
            if m.customer_ids.contains(customer) && method.customer_ids.contains(customer) =>
        {
            Ok(method)
        }
        _ => Err(MethodError::NotFound),
    }
}

/// The payer's methods that can pay an invoice of `customer` (default first); none for someone
/// who does not pay for that customer.
pub async fn usable_for(
    s: &Services,
    org: &OrgSlug,
    user: &UserId,
    customer: &CustomerId,
) -> Result<Vec<SavedMethod>, MethodError> {
    let (_, membership) = membership(s, org, user).await?;
    if !membership.customer_ids.contains(customer) {
        return Ok(Vec::new());
    }
    let mut methods = in_order(s, org, user).await?;
    methods.retain(|m| m.customer_ids.contains(customer));
    Ok(methods)
}

/// The last day of a card's expiry month: it works until then.
fn last_day(year: i32, month: u8) -> Option<Date> {
    let month = Month::try_from(month).ok()?;
    Date::from_calendar_date(year, month, time::util::days_in_month(month, year)).ok()
}

/// Whether a card will have expired by `day` (a bank account never does).
pub fn expired_by(method: &SavedMethod, day: Date) -> bool {
    match (method.exp_year, method.exp_month) {
        (Some(year), Some(month)) => last_day(i32::from(year), month).is_some_and(|end| end < day),
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "email/card_expiring.txt")]
struct ExpiringText<'a> {
    org_name: &'a str,
    card: &'a str,
    expiry: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "email/card_expiring.html")]
struct ExpiringHtml<'a> {
    org_name: &'a str,
    card: &'a str,
    expiry: &'a str,
    link: &'a str,
}

/// How far ahead a card's holder is told that it expires.
pub const EXPIRY_NOTICE: Duration = Duration::days(30);

/// Tells the holder of every saved card that expires within 30 days, once per card: the card
/// is claimed (taken out of the expiry index) before its email goes. Answers how many were told.
/// Reads only the expiry index partitions of this month and the next (no scan).
pub async fn notify_expiring_cards(s: &Services, now: OffsetDateTime) -> Result<usize, StoreError> {
    let today = now.date();
    let horizon = today + EXPIRY_NOTICE;
    let mut months = vec![(today.year(), u8::from(today.month()))];
    if (horizon.year(), u8::from(horizon.month())) != months[0] {
        months.push((horizon.year(), u8::from(horizon.month())));
    }
    let mut org_names: HashMap<OrgSlug, String> = HashMap::new();
    let mut told = 0;
    for (year, month) in months {
        for card in s.methods.cards_expiring(year, month).await? {
            if last_day(year, month).is_none_or(|end| end > horizon) {
                continue;
            }
            if !s.methods.claim_expiry_notice(&card, now).await? {
                continue;
            }
            let Some(user) = s.users.get_user(&card.user).await? else {
                continue;
            };
            if !crate::account::wants(s, &user.id, crate::account::EmailKind::ExpiringCards).await {
                continue;
            }
            if !org_names.contains_key(&card.org) {
                let name = s
                    .orgs
                    .get_org(&card.org)
                    .await?
                    .map_or_else(|| card.org.to_string(), |o| o.name);
                org_names.insert(card.org.clone(), name);
            }
            let org_name = &org_names[&card.org];
            let message = expiring_email(s, &card, user.email, org_name, (year, month));
            match s.mailer.send(&message).await {
                Ok(()) => told += 1,
                Err(e) => {
                    tracing::error!(method = %card.id, error = %e, "card expiry email not sent")
                }
            }
        }
    }
    Ok(told)
}

fn expiring_email(
    s: &Services,
    card: &SavedMethod,
    to: Email,
    org_name: &str,
    (year, month): (i32, u8),
) -> EmailMessage {
    let label = summary_label(&card.summary());
    let card_text = format!("card ({label})");
    let expiry = format!("{month:02}/{year}");
    let link = format!("{}/login", s.public_url);
    let text = ExpiringText {
        org_name,
        card: &card_text,
        expiry: &expiry,
        link: &link,
    };
    let html = ExpiringHtml {
        org_name,
        card: &card_text,
        expiry: &expiry,
        link: &link,
    };
    EmailMessage {
        to,
        subject: format!("Your card saved with {org_name} expires soon"),
        text: text.render().expect("the expiry email renders"),
        html: html.render().expect("the expiry email renders"),
    }
}

/// The org's mandates (its Direct Debit Authority records), oldest first.
pub async fn mandates(s: &Services, org: &OrgSlug) -> Result<Vec<Mandate>, StoreError> {
    s.methods.list_mandates(org).await
}
