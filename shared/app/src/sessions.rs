//! Signing in and out. A session token is 256 random bits, given to the browser once (a
//! cookie) and stored only as its SHA-256, with an idle and an absolute timeout.
//!
//! Login answers the same for an unknown email as for a wrong password, and takes as long
//! (a password hash is verified either way). Failures are limited per email and address pair and
//! per address, never per email alone, so that nobody can lock a user out by failing on purpose.

use std::sync::OnceLock;

use domain::{Email, Membership, Secret, UserId, token_hash};
use time::{Duration, OffsetDateTime};

use crate::Services;
use crate::passwords::{hash_password, verify_password};
use crate::ports::{Session, StoreError, User};
use crate::velocity;

/// A session ends after this long without a request...
pub const IDLE: Duration = Duration::minutes(30);
/// ...and after this long in any case.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// How stale `last_seen` may get before a request writes it again (one write per 5 minutes,
/// not one per request).
const TOUCH_EVERY: Duration = Duration::minutes(5);

/// Failed logins per hour for one email from one address, and from one address in all.
pub const PER_EMAIL_AND_CLIENT: u32 = 10;
pub const PER_CLIENT: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email and wrong password alike.
    #[error("the email or password is not right")]
    Invalid,
    #[error("too many failed sign-ins; try again in {} minutes", (.0.whole_seconds() + 59) / 60)]
    TooMany(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A hash to verify against when the email is unknown, so both answers take as long.
fn decoy_hash() -> &'static Secret<String> {
    static DECOY: OnceLock<Secret<String>> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&Secret::new("decoy password never matches".into()))
            .expect("hashing a constant works")
    })
}

/// The failed-sign-in limits of an email from an address (a wrong current password when
/// changing it counts against the same ones: `account::change_password`, and so do wrong
/// two-factor codes: `two_factor`).
pub(crate) fn login_keys(email: &str, client: Option<&str>) -> Vec<(String, u32)> {
    let client = client.unwrap_or("unknown");
    vec![
        (format!("login#{email}#{client}"), PER_EMAIL_AND_CLIENT),
        (format!("login#ip#{client}"), PER_CLIENT),
    ]
}

/// What a right email and password lead to.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the new session's token (for the cookie) and who.
    Session(Secret<String>, User),
    /// The user has two-factor sign-in on: no session yet, but the token of the second step
    /// (for its cookie), which a code turns into a session (`two_factor::second_step`).
    SecondStep(Secret<String>),
}

/// Checks the email and password; on success a new session, or for a user with two-factor
/// sign-in on the second step (a short-lived token, no session). A wrong password and an
/// unknown email answer the same, before any second step: nobody learns whether an account
/// has two-factor sign-in without its password.
pub async fn login(
    s: &Services,
    email: &str,
    password: &Secret<String>,
    client: Option<&str>,
) -> Result<SignIn, LoginError> {
    let email = Email::parse(email).ok();
    let normalised = email.as_ref().map(Email::to_string).unwrap_or_default();
    let now = s.clock.now();
    let limits = login_keys(&normalised, client);
    let keys: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
    let window = velocity::window_index(now);
    let counts = s.counters.counts(&keys, window).await?;
    if let Some(wait) = velocity::refusal(&limits, &counts, now) {
        return Err(LoginError::TooMany(wait));
    }
    let user = match &email {
        Some(email) => s.users.find_user_by_email(email).await?,
        None => None,
    };
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.as_ref())
        .unwrap_or_else(|| decoy_hash());
    let matches = verify_password(password.expose(), stored);
    match user {
        Some(user) if matches && user.password_hash.is_some() => Ok(sign_in_as(s, user).await?),
        _ => {
            let expires = velocity::expires_at(window);
            if let Err(e) = s.counters.count_failure(&keys, window, expires).await {
                tracing::error!(error = %e, "failed login not counted");
            }
            Err(LoginError::Invalid)
        }
    }
}

/// What a person whose password was just verified gets (signing in, or accepting an invitation
/// to another org with the password of their account): a new session, or for a user with
/// two-factor sign-in on only the second step, so that no way in skips the code.
pub async fn sign_in_as(s: &Services, user: User) -> Result<SignIn, StoreError> {
    if user.two_factor {
        let token = crate::two_factor::start_second_step(s, &user.id).await?;
        return Ok(SignIn::SecondStep(token));
    }
    let token = start_session(s, &user.id).await?;
    Ok(SignIn::Session(token, user))
}

/// A new session for the user (at every login and accept: never a token reused).
pub async fn start_session(s: &Services, user: &UserId) -> Result<Secret<String>, StoreError> {
    let now = s.clock.now();
    let token = s.ids.secret();
    s.sessions
        .create_session(&Session {
            token_hash: token_hash(token.expose()),
            user: user.clone(),
            created_at: now,
            last_seen: now,
            absolute_expiry: now + ABSOLUTE,
        })
        .await?;
    Ok(token)
}

/// The signed-in user behind a session token, if the session is live.
pub async fn resolve(s: &Services, token: &str) -> Result<Option<User>, StoreError> {
    let hash = token_hash(token);
    let Some(session) = s.sessions.get_session(&hash).await? else {
        return Ok(None);
    };
    let now: OffsetDateTime = s.clock.now();
    if now >= session.absolute_expiry || now >= session.last_seen + IDLE {
        return Ok(None);
    }
    if now >= session.last_seen + TOUCH_EVERY {
        s.sessions.touch_session(&hash, now).await?;
    }
    s.users.get_user(&session.user).await
}

pub async fn logout(s: &Services, token: &str) -> Result<(), StoreError> {
    s.sessions.delete_session(&token_hash(token)).await
}

/// The user's orgs: each membership with the org's name.
pub async fn my_orgs(s: &Services, user: &UserId) -> Result<Vec<(Membership, String)>, StoreError> {
    Ok(my_orgs_with_settings(s, user)
        .await?
        .into_iter()
        .map(|(membership, org)| {
            let name = org.map_or_else(|| membership.org.to_string(), |o| o.name);
            (membership, name)
        })
        .collect())
}

/// The user's orgs: each membership with the org (None if it is gone).
pub async fn my_orgs_with_settings(
    s: &Services,
    user: &UserId,
) -> Result<Vec<(Membership, Option<domain::Org>)>, StoreError> {
    let mut orgs = Vec::new();
    for membership in s.members.memberships_of_user(user).await? {
        let org = s.orgs.get_org(&membership.org).await?;
        orgs.push((membership, org));
    }
    Ok(orgs)
}
