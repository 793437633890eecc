//! Two-factor sign-in with TOTP (RFC 6238): enrolment from the account page, the second step of
//! signing in, turning it off, and an org's requirement of it.
//!
//! - Enrolment: a fresh 160-bit secret is shown once (base32 and an `otpauth://` URI) and kept
//!   sealed as pending; the first right code turns it on and gives 10 single-use recovery codes,
//!   shown once and stored only as SHA-256 (50 random bits each: no slow hash needed).
//! - Signing in: a right password of a user with two-factor on gives no session but a second-step
//!   token (256 bits, stored as SHA-256, 5 minutes, single use); a right code then gives the
//!   session. Codes of the current time step and one either side are accepted, and never one
//!   of a step at or before the last accepted one (a conditional write: a replayed or
//!   concurrent code is refused). Wrong codes count against the sign-in limits (per email and
//!   address, per address) and, since only someone with the password gets this far, per account.
//! - Turning it off takes the password and a code (or a recovery code).
//! - Each change is emailed to the user.

use askama::Template;
use domain::totp;
use domain::{Org, OrgSlug, Secret, UserId, token_hash};
use time::{Duration, OffsetDateTime};

use crate::Services;
use crate::passwords::verify_password;
use crate::ports::{ActiveTotp, EmailMessage, PendingTotp, SecondStep, StoreError, UsedCode, User};
use crate::velocity;

/// How long the second step of a sign-in waits for its code.
pub const SECOND_STEP_FOR: Duration = Duration::minutes(5);
/// How long a secret shown for enrolment waits for its first code.
pub const PENDING_FOR: Duration = Duration::minutes(30);
/// Recovery codes given when two-factor sign-in is turned on.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes per hour for one account, from anywhere (only reachable with its password).
pub const PER_ACCOUNT: u32 = 20;
/// The issuer that authenticator apps show.
pub const ISSUER: &str = "Paybridge";

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("two-factor sign-in is on already")]
    AlreadyOn,
    #[error("two-factor sign-in is not on")]
    NotOn,
    /// Nothing pending to confirm (never started, started again elsewhere, or too old).
    #[error("the set-up expired; start again")]
    NoEnrolment,
    #[error("the code is not right")]
    WrongCode,
    /// A right code of a time step already used (a replay), or a recovery code used already.
    #[error("that code was used already; wait for the next one")]
    UsedCode,
    #[error("the password is not right")]
    WrongPassword,
    /// The second step's token is unknown, used, or older than 5 minutes.
    #[error("the sign-in expired; sign in again")]
    SignInExpired,
    #[error("too many failed attempts; try again in {} minutes", (.0.whole_seconds() + 59) / 60)]
    TooMany(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the account page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enabled_at: Option<OffsetDateTime>,
    pub recovery_codes_left: usize,
}

/// A new secret, shown once: its base32 text and the URI that apps scan.
#[derive(Debug)]
pub struct Enrolment {
    pub secret: Secret<String>,
    pub uri: Secret<String>,
}

/// The user's two-factor sign-in: on since when, and how many recovery codes are left.
pub async fn status(s: &Services, user: &UserId) -> Result<Status, StoreError> {
    let active = s
        .two_factor
        .two_factor(user)
        .await?
        .and_then(|(_, state)| state.active);
    Ok(Status {
        enabled_at: active.as_ref().map(|a| a.enabled_at),
        recovery_codes_left: active.map_or(0, |a| a.recovery_hashes.len()),
    })
}

/// Starts an enrolment: a fresh random secret, pending until a code of it confirms it (any
/// earlier pending one is replaced). Writes: 1 (the user item).
pub async fn start(s: &Services, user: &User) -> Result<Enrolment, TwoFactorError> {
    let now = s.clock.now();
    let pending = PendingTotp {
        id: s.ids.ulid(),
        secret: s.ids.random_bytes(totp::SECRET_BYTES),
        started_at: now,
    };
    if !s.two_factor.start_totp(&user.id, &pending).await? {
        return Err(TwoFactorError::AlreadyOn);
    }
    let secret = pending.secret.expose();
    Ok(Enrolment {
        secret: Secret::new(totp::base32_encode(secret)),
        uri: Secret::new(totp::otpauth_uri(ISSUER, user.email.as_str(), secret)),
    })
}

/// Confirms the pending secret with a code of it: two-factor sign-in is on, the other sessions
/// end, and the recovery codes (shown once) are returned. A wrong code leaves it off. Reads: 1
/// and the session index; writes: 1 (the user item) and 2 per other session; and the email.
pub async fn confirm(
    s: &Services,
    user: &User,
    typed: &str,
    this_session: Option<&str>,
) -> Result<Vec<Secret<String>>, TwoFactorError> {
    let now = s.clock.now();
    let (_, state) = s
        .two_factor
        .two_factor(&user.id)
        .await?
        .ok_or(TwoFactorError::NoEnrolment)?;
    if state.active.is_some() {
        return Err(TwoFactorError::AlreadyOn);
    }
    let pending = state
        .pending
        .filter(|p| now < p.started_at + PENDING_FOR)
        .ok_or(TwoFactorError::NoEnrolment)?;
    let step = totp::parse_code(typed)
        .and_then(|code| totp::matching_step(pending.secret.expose(), code, step_now(now)))
        .ok_or(TwoFactorError::WrongCode)?;
    let codes: Vec<Secret<String>> = (0..RECOVERY_CODES)
        .map(|_| recovery_code(s.ids.as_ref()))
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| recovery_hash(c.expose()).expect("a recovery code we made is one"))
        .collect();
    if !s
        .two_factor
        .confirm_totp(&user.id, &pending, step, &hashes, now)
        .await?
    {
        return Err(TwoFactorError::NoEnrolment);
    }
    // Sessions begun before (with the password alone, which may be what was stolen) end;
    // this one stays.
    let keep = this_session.map(token_hash);
    crate::account::end_sessions(s, &user.id, keep.as_deref()).await?;
    tell(s, user, Change::On, now).await;
    Ok(codes)
}

/// Turns two-factor sign-in off: the current password and a code (or a recovery code) are both
/// needed; a wrong one counts against the sign-in limits. Reads: the counters and the user
/// item; writes: 2 (the code used, then the secrets removed); and the email.
pub async fn disable(
    s: &Services,
    user: &User,
    password: &Secret<String>,
    typed: &str,
    client: Option<&str>,
) -> Result<(), TwoFactorError> {
    let now = s.clock.now();
    let limits = limits(user, client);
    refuse_if_over(s, &limits, now).await?;
    let (stored, state) = s
        .two_factor
        .two_factor(&user.id)
        .await?
        .ok_or(TwoFactorError::NotOn)?;
    let active = state.active.ok_or(TwoFactorError::NotOn)?;
    let password_ok = stored
        .password_hash
        .as_ref()
        .is_some_and(|hash| verify_password(password.expose(), hash));
    let checked = check_code(&active, typed, now);
    let used = match (password_ok, checked) {
        (false, _) => Err(TwoFactorError::WrongPassword),
        (true, Err(e)) => Err(e),
        (true, Ok(used)) => Ok(used),
    };
    let used = match used {
        Ok(used) => used,
        Err(e) => {
            count_failure(s, &limits, now).await;
            return Err(e);
        }
    };
    if !s.two_factor.use_code(&user.id, &used).await? {
        count_failure(s, &limits, now).await;
        return Err(TwoFactorError::UsedCode);
    }
    if !s.two_factor.disable_totp(&user.id).await? {
        return Err(TwoFactorError::NotOn);
    }
    tell(s, user, Change::Off, now).await;
    Ok(())
}

/// The second step of a sign-in (after `sessions::login` answered `SecondStep`): the token from
/// its cookie and a code (6 digits, or a recovery code) give a new session. Reads: the token,
/// the counters (1 BatchGetItem), the user item; writes: the code used, the token deleted, the
/// session (2).
pub async fn second_step(
    s: &Services,
    token: &str,
    typed: &str,
    client: Option<&str>,
) -> Result<(Secret<String>, User), TwoFactorError> {
    let now = s.clock.now();
    let hash = token_hash(token);
    let step = s
        .two_factor
        .get_second_step(&hash)
        .await?
        .filter(|step| now < step.expires_at)
        .ok_or(TwoFactorError::SignInExpired)?;
    let (user, state) = s
        .two_factor
        .two_factor(&step.user)
        .await?
        .ok_or(TwoFactorError::SignInExpired)?;
    // Turned off since the password was given (elsewhere): sign in again.
    let active = state.active.ok_or(TwoFactorError::SignInExpired)?;
    let limits = limits(&user, client);
    refuse_if_over(s, &limits, now).await?;
    let used = match check_code(&active, typed, now) {
        Ok(used) => used,
        Err(e) => {
            count_failure(s, &limits, now).await;
            return Err(e);
        }
    };
    if !s.two_factor.use_code(&user.id, &used).await? {
        count_failure(s, &limits, now).await;
        return Err(TwoFactorError::UsedCode);
    }
    if !s.two_factor.take_second_step(&hash).await? {
        return Err(TwoFactorError::SignInExpired);
    }
    let session = crate::sessions::start_session(s, &user.id).await?;
    if let UsedCode::Recovery(_) = used {
        let left = active.recovery_hashes.len().saturating_sub(1);
        tell(s, &user, Change::RecoveryUsed(left), now).await;
    }
    Ok((session, user))
}

/// A new second-step token for the user (after a right password): 1 write.
pub(crate) async fn start_second_step(
    s: &Services,
    user: &UserId,
) -> Result<Secret<String>, StoreError> {
    let now = s.clock.now();
    let token = s.ids.secret();
    s.two_factor
        .put_second_step(&SecondStep {
            token_hash: token_hash(token.expose()),
            user: user.clone(),
            created_at: now,
            expires_at: now + SECOND_STEP_FOR,
        })
        .await?;
    Ok(token)
}

/// Whether the org holds this member back: it requires two-factor sign-in and they have not
/// turned it on. No read: the org and the user are both at hand wherever this is asked.
pub fn held_back(org: &Org, user: &User) -> bool {
    org.settings.require_two_factor && !user.two_factor
}

/// `held_back` for a request that names the org but has not read it (the payer API): whether
/// `user` is a member of an org that requires two-factor sign-in, which they have not turned
/// on. Reads: none for a user with two-factor on; else the org item, and the membership only
/// when the org requires it (a non-member is never told what an org requires).
pub async fn held_back_in(s: &Services, org: &OrgSlug, user: &User) -> Result<bool, StoreError> {
    if user.two_factor {
        return Ok(false);
    }
    let requires = s
        .orgs
        .get_org(org)
        .await?
        .is_some_and(|o| o.settings.require_two_factor);
    if !requires {
        return Ok(false);
    }
    Ok(s.members.membership(org, &user.id).await?.is_some())
}

fn step_now(now: OffsetDateTime) -> u64 {
    totp::step_at(now.unix_timestamp())
}

/// A typed code against the active secret: 6 digits are a TOTP code, anything else a recovery
/// code. What to record as used, or why it is refused.
fn check_code(
    active: &ActiveTotp,
    typed: &str,
    now: OffsetDateTime,
) -> Result<UsedCode, TwoFactorError> {
    if let Some(code) = totp::parse_code(typed) {
        return match totp::matching_step(active.secret.expose(), code, step_now(now)) {
            Some(step) if step <= active.last_step => Err(TwoFactorError::UsedCode),
            Some(step) => Ok(UsedCode::Step(step)),
            None => Err(TwoFactorError::WrongCode),
        };
    }
    match recovery_hash(typed) {
        Some(hash) if active.recovery_hashes.contains(&hash) => Ok(UsedCode::Recovery(hash)),
        _ => Err(TwoFactorError::WrongCode),
    }
}

/// Characters of a recovery code (base32, so 5 bits each: 50 bits).
const RECOVERY_LEN: usize = 10;

/// A new recovery code: `xxxxx-xxxxx`, lower-case base32.
fn recovery_code(ids: &dyn crate::ports::Ids) -> Secret<String> {
    let bytes = ids.random_bytes(7);
    let text = totp::base32_encode(bytes.expose()).to_ascii_lowercase();
    let text = &text[..RECOVERY_LEN];
    Secret::new(format!("{}-{}", &text[..5], &text[5..]))
}

/// The stored form of a typed recovery code: SHA-256 of its ten characters, lower case, without
/// the dash or spaces; None when it cannot be one.
fn recovery_hash(typed: &str) -> Option<String> {
    let plain: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let base32 = |c: char| c.is_ascii_lowercase() || ('2'..='7').contains(&c);
    (plain.len() == RECOVERY_LEN && plain.chars().all(base32)).then(|| token_hash(&plain))
}

/// The limits a code counts against: the sign-in's (email and address, address) and the
/// account's own.
fn limits(user: &User, client: Option<&str>) -> Vec<(String, u32)> {
    let mut limits = crate::sessions::login_keys(user.email.as_str(), client);
    limits.push((format!("two_factor#{}", user.id), PER_ACCOUNT));
    limits
}

async fn refuse_if_over(
    s: &Services,
    limits: &[(String, u32)],
    now: OffsetDateTime,
) -> Result<(), TwoFactorError> {
    let keys: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
    let counts = s
        .counters
        .counts(&keys, velocity::window_index(now))
        .await?;
    match velocity::refusal(limits, &counts, now) {
        Some(wait) => Err(TwoFactorError::TooMany(wait)),
        None => Ok(()),
    }
}

async fn count_failure(s: &Services, limits: &[(String, u32)], now: OffsetDateTime) {
    let keys: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
    let window = velocity::window_index(now);
    if let Err(e) = s
        .counters
        .count_failure(&keys, window, velocity::expires_at(window))
        .await
    {
        tracing::error!(error = %e, "failed two-factor code not counted");
    }
}

#[derive(Template)]
#[template(path = "email/two_factor_changed.txt")]
struct ChangedText<'a> {
    subject: &'a str,
    change: Change,
    name: &'a str,
    email: &'a str,
    when: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "email/two_factor_changed.html")]
struct ChangedHtml<'a> {
    subject: &'a str,
    change: Change,
    name: &'a str,
    email: &'a str,
    when: &'a str,
    link: &'a str,
}

/// What the user is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    On,
    Off,
    /// A recovery code signed them in; this many are left.
    RecoveryUsed(usize),
}

impl Change {
    fn is_on(&self) -> bool {
        *self == Change::On
    }
    fn is_off(&self) -> bool {
        *self == Change::Off
    }
    fn codes_left(&self) -> usize {
        match self {
            Change::RecoveryUsed(left) => *left,
            _ => 0,
        }
    }
}

/// Emails the user that two-factor sign-in was turned on or off, or that a recovery code was
/// used (a failure is logged: the change stands).
async fn tell(s: &Services, user: &User, change: Change, now: OffsetDateTime) {
    let when = format!(
        "{} at {:02}:{:02} UTC",
        now.date(),
        now.hour(),
        now.minute()
    );
    let link = format!("{}/account", s.public_url);
    let subject = match change {
        Change::On => "Two-factor sign-in is on for your Paybridge account",
        Change::Off => "Two-factor sign-in was turned off for your Paybridge account",
        Change::RecoveryUsed(_) => "A recovery code was used to sign in to your Paybridge account",
    };
    let (name, email) = (user.name.as_str(), user.email.as_str());
    let message = EmailMessage {
        to: user.email.clone(),
        subject: subject.to_owned(),
        text: ChangedText {
            subject,
            change,
            name,
            email,
            when: &when,
            link: &link,
        }
        .render()
        .expect("the two-factor email renders"),
        html: ChangedHtml {
            subject,
            change,
            name,
            email,
            when: &when,
            link: &link,
        }
        .render()
        .expect("the two-factor email renders"),
    };
    if let Err(e) = s.mailer.send(&message).await {
        tracing::error!(user = %user.id, error = %e, "two-factor email not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl crate::ports::Ids for Fixed {
        fn ulid(&self) -> String {
            "01J00000000000000000000000".into()
        }
        fn secret(&self) -> Secret<String> {
            Secret::new("s".into())
        }
        fn random_bytes(&self, len: usize) -> Secret<Vec<u8>> {
            Secret::new((0..len as u8).map(|b| b.wrapping_mul(37)).collect())
        }
    }

    #[test]
    fn recovery_codes_are_ten_base32_characters_and_typed_forgivingly() {
        let code = recovery_code(&Fixed);
        let text = code.expose();
        assert_eq!(text.len(), 11);
        assert_eq!(&text[5..6], "-");
        let hash = recovery_hash(text).unwrap();
        assert_eq!(recovery_hash(&text.to_uppercase()), Some(hash.clone()));
        assert_eq!(recovery_hash(&text.replace('-', " ")), Some(hash.clone()));
        assert_eq!(recovery_hash(&text.replace('-', "")), Some(hash));
        assert_eq!(
            recovery_hash("12345-67890"),
            None,
            "0, 1, 8, 9 are not base32"
        );
        assert_eq!(recovery_hash("abcde"), None);
    }

    #[test]
    fn codes_are_checked_against_the_last_step_used() {
        let secret = b"12345678901234567890".to_vec();
        let now = OffsetDateTime::from_unix_timestamp(1_111_111_111).unwrap();
        let step = step_now(now);
        let active = |last_step| ActiveTotp {
            secret: Secret::new(secret.clone()),
            enabled_at: now,
            last_step,
            recovery_hashes: vec![recovery_hash("abcde-fghij").unwrap()],
        };
        let code = totp::code_at(&secret, step);
        assert_eq!(
            check_code(&active(step - 5), &code, now).unwrap(),
            UsedCode::Step(step)
        );
        assert!(matches!(
            check_code(&active(step), &code, now),
            Err(TwoFactorError::UsedCode)
        ));
        // An older code is spent once a later one was used.
        let previous = totp::code_at(&secret, step - 1);
        assert!(matches!(
            check_code(&active(step), &previous, now),
            Err(TwoFactorError::UsedCode)
        ));
        assert!(matches!(
            check_code(&active(0), &totp::code_at(&secret, step + 3), now),
            Err(TwoFactorError::WrongCode)
        ));
        assert_eq!(
            check_code(&active(step), "ABCDE FGHIJ", now).unwrap(),
            UsedCode::Recovery(recovery_hash("abcde-fghij").unwrap())
        );
        assert!(matches!(
            check_code(&active(step), "abcde-fghik", now),
            Err(TwoFactorError::WrongCode)
        ));
    }
}
