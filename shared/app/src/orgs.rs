//! Orgs, their first admins and their API keys.

use domain::{ApiKeyId, Email, Org, OrgSettings, OrgSlug, Role, Secret, UserId, token_hash};

use crate::passwords::{PasswordError, hash_password};
use crate::ports::{
    AddMemberError, ApiKeyRecord, ApiKeyRepo, Clock, CreateOrgError, FirstAdmin, Ids,
    MembershipRepo, OrgRepo, StoreError, User, UserRepo,
};

/// What API keys look like: `pbk_` + 43 base64url characters (256 random bits).
pub const API_KEY_PREFIX: &str = "pbk_";

#[derive(Debug, thiserror::Error)]
pub enum SetUpOrgError {
    #[error("an org named {0} exists already")]
    SlugTaken(OrgSlug),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("a new admin needs a password")]
    PasswordRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct NewOrg {
    pub slug: OrgSlug,
    pub name: String,
    pub settings: OrgSettings,
    pub admin_email: Email,
    pub admin_name: String,
    /// Needed only when the email has no account yet.
    pub admin_password: Option<Secret<String>>,
}

/// Creates an org and makes its first admin a member: the person's existing account if the
/// email has one (one person, many orgs), else a new account with the given password.
/// Returns the admin's user id.
pub async fn create_org(
    orgs: &dyn OrgRepo,
    users: &dyn UserRepo,
    clock: &dyn Clock,
    ids: &dyn Ids,
    new: NewOrg,
) -> Result<UserId, SetUpOrgError> {
    let now = clock.now();
    let org = Org {
        slug: new.slug.clone(),
        name: new.name,
        settings: new.settings,
    };
    // Two tries: the email's account may appear or vanish between the read and the transaction.
    for _ in 0..2 {
        let (admin, user_id) = match users.find_user_by_email(&new.admin_email).await? {
            Some(user) => (FirstAdmin::Existing(user.id.clone()), user.id),
            None => {
                let password = new
                    .admin_password
                    .as_ref()
                    .ok_or(SetUpOrgError::PasswordRequired)?;
                let user = User {
                    id: UserId::from_ulid(&ids.ulid()).expect("a ULID is a valid id"),
                    email: new.admin_email.clone(),
                    name: new.admin_name.clone(),
                    password_hash: Some(hash_password(password)?),
                    created_at: now,
                    two_factor: false,
                };
                let id = user.id.clone();
                (FirstAdmin::New(user), id)
            }
        };
        match orgs.create_org(&org, &admin, now).await {
            Ok(()) => return Ok(user_id),
            Err(CreateOrgError::SlugTaken) => return Err(SetUpOrgError::SlugTaken(org.slug)),
            Err(CreateOrgError::EmailTaken | CreateOrgError::UserMissing) => continue,
            Err(CreateOrgError::Store(e)) => return Err(e.into()),
        }
    }
    Err(StoreError("the admin's account kept changing; try again".into()).into())
}

/// Adds an existing user to an org with a role; used by seeding and, later, by invitations.
pub async fn add_member(
    members: &dyn MembershipRepo,
    clock: &dyn Clock,
    user: &UserId,
    org: &OrgSlug,
    role: Role,
    customer_ids: Vec<domain::CustomerId>,
) -> Result<(), AddMemberError> {
    let membership = domain::Membership {
        org: org.clone(),
        role,
        customer_ids,
    };
    members.add_member(user, &membership, clock.now()).await
}

/// A member of an org and who they are.
pub struct Member {
    pub user: User,
    pub membership: domain::Membership,
}

/// An org's members with their names and emails, by name: one query and one batch read.
pub async fn members(
    members: &dyn MembershipRepo,
    users: &dyn UserRepo,
    org: &OrgSlug,
) -> Result<Vec<Member>, StoreError> {
    let memberships = members.members_of_org(org).await?;
    let ids: Vec<UserId> = memberships.iter().map(|(id, _)| id.clone()).collect();
    let mut by_id: std::collections::HashMap<UserId, User> = users
        .get_users(&ids)
        .await?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let mut list: Vec<Member> = memberships
        .into_iter()
        .filter_map(|(id, membership)| {
            let user = by_id.remove(&id)?;
            Some(Member { user, membership })
        })
        .collect();
    list.sort_by_cached_key(|m| (m.user.name.to_lowercase(), m.user.email.to_string()));
    Ok(list)
}

/// An API key just issued: the secret is shown this once and never again.
pub struct IssuedApiKey {
    pub record: ApiKeyRecord,
    pub secret: Secret<String>,
}

/// Issues an org API key. `chosen` lets a local stack keep a well-known key (DEMO_API_KEY);
/// a deployment never passes one.
pub async fn issue_api_key(
    keys: &dyn ApiKeyRepo,
    clock: &dyn Clock,
    ids: &dyn Ids,
    org: &OrgSlug,
    label: &str,
    chosen: Option<Secret<String>>,
) -> Result<IssuedApiKey, StoreError> {
    let secret =
        chosen.unwrap_or_else(|| Secret::new(format!("{API_KEY_PREFIX}{}", ids.secret().expose())));
    let record = ApiKeyRecord {
        id: ApiKeyId::from_ulid(&ids.ulid()).expect("a ULID is a valid id"),
        org: org.clone(),
        label: label.to_owned(),
        secret_hash: token_hash(secret.expose()),
        created_at: clock.now(),
    };
    keys.put_api_key(&record).await?;
    Ok(IssuedApiKey { record, secret })
}

/// The org an API key belongs to, if the key is known. The org is never taken from the request.
pub async fn authenticate_api_key(
    keys: &dyn ApiKeyRepo,
    presented: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    if !presented.starts_with(API_KEY_PREFIX) || presented.len() > 200 {
        return Ok(None);
    }
    keys.find_api_key(&token_hash(presented)).await
}

/// A change to an org's settings: absent fields stay as they are.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub allow_partial: Option<bool>,
    pub invite_ttl_days: Option<u16>,
    pub timezone: Option<String>,
    pub default_currency: Option<domain::Currency>,
    pub surcharges: Option<Vec<domain::SurchargeRule>>,
    /// Replaces the auto-pay settings as a whole.
    pub autopay: Option<domain::AutoPaySettings>,
    /// Whether the org's members must use two-factor sign-in.
    pub require_two_factor: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("no such org")]
    NotFound,
    #[error("invite_ttl_days: an invitation is valid for 1 to 30 days")]
    InviteTtl,
    #[error("timezone: use an IANA name like \"Australia/Sydney\" or \"UTC\"")]
    Timezone,
    #[error("surcharges: {0}")]
    Surcharges(#[from] domain::SurchargeError),
    #[error("autopay.{0}")]
    AutoPay(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `patch` to the org's settings after checking every field; nothing is written when
/// any is refused.
pub async fn update_settings(
    orgs: &dyn OrgRepo,
    slug: &OrgSlug,
    patch: SettingsPatch,
) -> Result<OrgSettings, SettingsError> {
    let mut settings = orgs
        .get_org(slug)
        .await?
        .ok_or(SettingsError::NotFound)?
        .settings;
    if let Some(allow) = patch.allow_partial {
        settings.allow_partial = allow;
    }
    if let Some(days) = patch.invite_ttl_days {
        if !(1..=30).contains(&days) {
            return Err(SettingsError::InviteTtl);
        }
        settings.invite_ttl_days = days;
    }
    if let Some(zone) = patch.timezone {
        // A zone the bundled database knows: schedule days are computed in it.
        let known = domain::local_date(&zone, time::OffsetDateTime::UNIX_EPOCH).is_some();
        if zone.len() > 64 || !known {
            return Err(SettingsError::Timezone);
        }
        settings.timezone = zone;
    }
    if let Some(currency) = patch.default_currency {
        settings.default_currency = currency;
    }
    if let Some(rules) = patch.surcharges {
        domain::validate_surcharges(&rules)?;
        settings.surcharges = rules;
    }
    if let Some(autopay) = patch.autopay {
        if let Some(problem) = autopay.problem() {
            return Err(SettingsError::AutoPay(problem));
        }
        settings.autopay = autopay;
    }
    if let Some(required) = patch.require_two_factor {
        settings.require_two_factor = required;
    }
    if !orgs.update_settings(slug, &settings).await? {
        return Err(SettingsError::NotFound);
    }
    Ok(settings)
}
