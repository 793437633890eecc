//! The signed-in person's own account: changing the password (with the current one), signing
//! out everywhere, and which emails they want.

use askama::Template;
use domain::{Email, Secret, UserId, token_hash};
use time::Duration;

use crate::Services;
use crate::passwords::{PasswordError, check_policy, hash_password, verify_password};
use crate::ports::{EmailMessage, NotificationPrefs, StoreError, User};
use crate::velocity;

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("the current password is not right")]
    WrongPassword,
    #[error("too many failed attempts; try again in {} minutes", (.0.whole_seconds() + 59) / 60)]
    TooMany(Duration),
    #[error(transparent)]
    Weak(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Template)]
#[template(path = "email/password_changed.txt")]
struct ChangedText<'a> {
    name: &'a str,
    email: &'a str,
    when: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "email/password_changed.html")]
struct ChangedHtml<'a> {
    name: &'a str,
    email: &'a str,
    when: &'a str,
    link: &'a str,
}

/// Changes the password of the signed-in `user`, who must give the current one: a wrong one
/// counts against the same limits as a failed sign-in (per email and address, per address).
/// On success every other session of the user ends (the one in `this_session` stays), and the
/// user is told by email. Writes: 1 (the user item) + 2 per other session.
pub async fn change_password(
    s: &Services,
    user: &User,
    current: &Secret<String>,
    new: &Secret<String>,
    this_session: &str,
    client: Option<&str>,
) -> Result<(), ChangePasswordError> {
    check_policy(new.expose())?;
    let now = s.clock.now();
    let limits = crate::sessions::login_keys(user.email.as_str(), client);
    let keys: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
    let window = velocity::window_index(now);
    let counts = s.counters.counts(&keys, window).await?;
    if let Some(wait) = velocity::refusal(&limits, &counts, now) {
        return Err(ChangePasswordError::TooMany(wait));
    }
    // The stored hash now, not the one read when the session was resolved.
    let stored = s
        .users
        .get_user(&user.id)
        .await?
        .and_then(|u| u.password_hash);
    let matches = stored
        .as_ref()
        .is_some_and(|hash| verify_password(current.expose(), hash));
    if !matches {
        let expires = velocity::expires_at(window);
        if let Err(e) = s.counters.count_failure(&keys, window, expires).await {
            tracing::error!(error = %e, "failed password check not counted");
        }
        return Err(ChangePasswordError::WrongPassword);
    }
    let hash = hash_password(new)?;
    if !s.users.set_password_hash(&user.id, &hash).await? {
        return Err(StoreError("the user is gone".into()).into());
    }
    let keep = token_hash(this_session);
    end_sessions(s, &user.id, Some(&keep)).await?;
    let message = password_changed_email(s, user, now);
    if let Err(e) = s.mailer.send(&message).await {
        tracing::error!(user = %user.id, error = %e, "password-changed email not sent");
    }
    Ok(())
}

fn password_changed_email(s: &Services, user: &User, now: time::OffsetDateTime) -> EmailMessage {
    let when = format!(
        "{} at {:02}:{:02} UTC",
        now.date(),
        now.hour(),
        now.minute()
    );
    let link = format!("{}/account", s.public_url);
    let (name, email) = (user.name.as_str(), user.email.as_str());
    EmailMessage {
        to: user.email.clone(),
        subject: "Your Paybridge password was changed".to_owned(),
        text: ChangedText {
            name,
            email,
            when: &when,
            link: &link,
        }
        .render()
        .expect("the password-changed email renders"),
        html: ChangedHtml {
            name,
            email,
            when: &when,
            link: &link,
        }
        .render()
        .expect("the password-changed email renders"),
    }
}

/// Ends every session of the user, the one presenting `this_session` too. Writes: 2 per
/// session (the session and its index entry), after one Query of the user's partition.
pub async fn sign_out_everywhere(
    s: &Services,
    user: &UserId,
    this_session: Option<&str>,
) -> Result<usize, StoreError> {
    // This one by its token as well, in case it began before sessions were indexed by user.
    if let Some(token) = this_session {
        s.sessions.delete_session(&token_hash(token)).await?;
    }
    end_sessions(s, user, None).await
}

/// Ends the user's sessions but `keep` (a token hash); how many ended.
pub(crate) async fn end_sessions(
    s: &Services,
    user: &UserId,
    keep: Option<&str>,
) -> Result<usize, StoreError> {
    let ending: Vec<String> = s
        .sessions
        .sessions_of_user(user)
        .await?
        .into_iter()
        .filter(|hash| Some(hash.as_str()) != keep)
        .collect();
    if !ending.is_empty() {
        s.sessions.delete_sessions(user, &ending).await?;
    }
    Ok(ending.len())
}

/// The user's notification preferences (all on until changed).
pub async fn notification_prefs(
    s: &Services,
    user: &UserId,
) -> Result<NotificationPrefs, StoreError> {
    Ok(s.users.notification_prefs(user).await?.unwrap_or_default())
}

/// Saves the user's notification preferences: 1 write (the user item).
pub async fn set_notification_prefs(
    s: &Services,
    user: &UserId,
    prefs: &NotificationPrefs,
) -> Result<(), StoreError> {
    if s.users.set_notification_prefs(user, prefs).await? {
        Ok(())
    } else {
        Err(StoreError("the user is gone".into()))
    }
}

/// The kinds of email a user may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    Receipts,
    PaymentFailures,
    UpcomingDebits,
    ExpiringCards,
}

impl EmailKind {
    fn wanted(self, prefs: &NotificationPrefs) -> bool {
        match self {
            EmailKind::Receipts => prefs.receipts,
            EmailKind::PaymentFailures => prefs.payment_failures,
            EmailKind::UpcomingDebits => prefs.upcoming_debits,
            EmailKind::ExpiringCards => prefs.expiring_cards,
        }
    }
}

/// Whether the user wants this kind of email (1 read). When the preferences cannot be read the
/// email goes: a notice too many is better than a failure nobody hears of.
pub async fn wants(s: &Services, user: &UserId, kind: EmailKind) -> bool {
    match s.users.notification_prefs(user).await {
        Ok(prefs) => kind.wanted(&prefs.unwrap_or_default()),
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "notification preferences not read; sending");
            true
        }
    }
}

/// Whether the person at this address wants this kind of email: an address that is no user's
/// (a guest's receipt) always gets it. Reads: the email marker, then the user item twice.
pub async fn wants_at(s: &Services, to: &Email, kind: EmailKind) -> bool {
    match s.users.find_user_by_email(to).await {
        Ok(Some(user)) => wants(s, &user.id, kind).await,
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "recipient not looked up; sending");
            true
        }
    }
}
