//! Inviting payers (and staff) by email, and accepting an invitation once.
//!
//! A link carries a 256-bit token; only its SHA-256 is stored. One pending invitation per email
//! and org: inviting the same email again reissues it (a new token; the old link stops working).
//! Accepting writes the membership, and for a new person the user and its email marker, in one
//! transaction guarded by the invitation still being pending with that token.

use askama::Template;
use domain::{CustomerId, Email, InvitationId, OrgSlug, Role, Secret, token_hash};
use time::{Duration, OffsetDateTime};

use crate::Services;
use crate::passwords::{PasswordError, check_policy, hash_password, verify_password};
use crate::ports::{
    AcceptWriteError, Acceptor, EmailMessage, Invitation, InvitationState, NewInvitation,
    StoreError, User,
};

pub struct InviteCommand {
    pub org: OrgSlug,
    pub email: String,
    pub name: String,
    pub customer_ids: Vec<String>,
    /// payer (default), staff or admin
    pub role: Option<String>,
    /// Who sends it, as the email names them; None names the org.
    pub invited_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is a member of this org already")]
    AlreadyMember(Email),
    #[error("no such invitation")]
    NotFound,
    #[error("the invitation is {0}; invite the person again")]
    NotPending(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An invitation that was sent (or reissued), and whether its email went out.
pub struct Sent {
    pub invitation: Invitation,
    pub reissued: bool,
    pub emailed: bool,
}

fn parse_role(role: Option<&str>) -> Result<Role, InviteError> {
    match role {
        None => Ok(Role::Payer),
        Some(text) => Role::parse(text)
            .ok_or_else(|| InviteError::Invalid("role: payer, staff or admin".into())),
    }
}

/// Invites a person, or reissues their pending invitation to this org.
pub async fn invite(s: &Services, cmd: InviteCommand) -> Result<Sent, InviteError> {
    let email = Email::parse(&cmd.email).map_err(|e| InviteError::Invalid(e.to_string()))?;
    let name = cmd.name.trim().to_owned();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(InviteError::Invalid("name: 1 to 100 characters".into()));
    }
    let role = parse_role(cmd.role.as_deref())?;
    let customer_ids = cmd
        .customer_ids
        .iter()
        .map(|c| CustomerId::parse(c.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InviteError::Invalid(format!("customer_ids: {e}")))?;
    if role == Role::Payer && customer_ids.is_empty() {
        return Err(InviteError::Invalid(
            "customer_ids: a payer pays for at least one customer".into(),
        ));
    }
    let org = s
        .orgs
        .get_org(&cmd.org)
        .await?
        .ok_or(InviteError::NotFound)?;
    if let Some(user) = s.users.find_user_by_email(&email).await?
        && s.members.membership(&org.slug, &user.id).await?.is_some()
    {
        return Err(InviteError::AlreadyMember(email));
    }
    let now = s.clock.now();
    let token = s.ids.secret();
    let invitation = Invitation {
        id: InvitationId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
        org: org.slug.clone(),
        email,
        name,
        role,
        customer_ids,
        state: InvitationState::Pending,
        token_hash: token_hash(token.expose()),
        invited_by: cmd.invited_by.unwrap_or_else(|| org.name.clone()),
        created_at: now,
        expires_at: now + lifetime(&org),
        updated_at: now,
    };
    let (invitation, reissued) = match s.invitations.create_invitation(&invitation).await? {
        NewInvitation::Created => (invitation, false),
        NewInvitation::PendingExists(id) => {
            let existing = s
                .invitations
                .get_invitation(&org.slug, &id)
                .await?
                .ok_or(InviteError::NotFound)?;
            let updated = Invitation {
                id: existing.id.clone(),
                created_at: existing.created_at,
                ..invitation
            };
            reissue(s, &existing, &updated).await?;
            (updated, true)
        }
    };
    let emailed = send_invitation(s, &invitation, &org.name, &token).await;
    Ok(Sent {
        invitation,
        reissued,
        emailed,
    })
}

/// How long the org's invitations stay valid.
fn lifetime(org: &domain::Org) -> Duration {
    Duration::days(i64::from(org.settings.invite_ttl_days))
}

/// Replaces `existing`'s token (and what else `updated` changes): its old link stops working.
async fn reissue(
    s: &Services,
    existing: &Invitation,
    updated: &Invitation,
) -> Result<(), InviteError> {
    if s.invitations
        .reissue_invitation(updated, &existing.token_hash)
        .await?
    {
        Ok(())
    } else {
        // Accepted or revoked since it was read.
        Err(InviteError::NotPending("no longer pending"))
    }
}

/// A new link for a pending invitation (the old one stops working), sent again.
pub async fn resend(
    s: &Services,
    org: &OrgSlug,
    id: &InvitationId,
    invited_by: Option<String>,
) -> Result<Sent, InviteError> {
    let existing = s
        .invitations
        .get_invitation(org, id)
        .await?
        .ok_or(InviteError::NotFound)?;
    let now = s.clock.now();
    let org = s.orgs.get_org(org).await?.ok_or(InviteError::NotFound)?;
    if existing.state != InvitationState::Pending {
        return Err(InviteError::NotPending(existing.status(now)));
    }
    let token = s.ids.secret();
    let updated = Invitation {
        token_hash: token_hash(token.expose()),
        expires_at: now + lifetime(&org),
        updated_at: now,
        invited_by: invited_by.unwrap_or_else(|| org.name.clone()),
        ..existing.clone()
    };
    reissue(s, &existing, &updated).await?;
    let emailed = send_invitation(s, &updated, &org.name, &token).await;
    Ok(Sent {
        invitation: updated,
        reissued: true,
        emailed,
    })
}

/// Withdraws a pending invitation: its link stops working.
pub async fn revoke(s: &Services, org: &OrgSlug, id: &InvitationId) -> Result<(), InviteError> {
    let existing = s
        .invitations
        .get_invitation(org, id)
        .await?
        .ok_or(InviteError::NotFound)?;
    let now = s.clock.now();
    if existing.state != InvitationState::Pending
        || !s.invitations.revoke_invitation(&existing, now).await?
    {
        return Err(InviteError::NotPending(existing.status(now)));
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "email/invitation.txt")]
struct InvitationText<'a> {
    org_name: &'a str,
    invited_by: &'a str,
    link: &'a str,
    expires: String,
}

#[derive(Template)]
#[template(path = "email/invitation.html")]
struct InvitationHtml<'a> {
    org_name: &'a str,
    invited_by: &'a str,
    link: &'a str,
    expires: String,
}

/// The invitation email: who invites, to which org, what a payer can do, the link and when it
/// expires. No credentials beyond the single-use link.
pub fn invitation_email(invitation: &Invitation, org_name: &str, link: &str) -> EmailMessage {
    let expires = format!(
        "{} {:02}:{:02} UTC",
        invitation.expires_at.date(),
        invitation.expires_at.hour(),
        invitation.expires_at.minute()
    );
    let text = InvitationText {
        org_name,
        invited_by: &invitation.invited_by,
        link,
        expires: expires.clone(),
    };
    let html = InvitationHtml {
        org_name,
        invited_by: &invitation.invited_by,
        link,
        expires,
    };
    EmailMessage {
        to: invitation.email.clone(),
        subject: format!("{} invited you to pay your invoices online", org_name),
        text: text.render().expect("invitation text renders"),
        html: html.render().expect("invitation html renders"),
    }
}

async fn send_invitation(
    s: &Services,
    invitation: &Invitation,
    org_name: &str,
    token: &Secret<String>,
) -> bool {
    let link = format!("{}/invite/{}", s.public_url, token.expose());
    let message = invitation_email(invitation, org_name, &link);
    match s.mailer.send(&message).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(invitation = %invitation.id, error = %e, "invitation email not sent");
            false
        }
    }
}

/// Why a link does not work, each with its own page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this invitation link is not valid")]
    Unknown,
    #[error("this invitation was accepted already")]
    Used,
    #[error("this invitation was withdrawn")]
    Revoked,
    #[error("a newer invitation was sent; this link no longer works")]
    Reissued,
    #[error("this invitation has expired")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the accept page shows: the invitation, its org's name, and whether the email has an
/// account already (then the person signs in instead of choosing a password).
pub struct OpenInvitation {
    pub invitation: Invitation,
    pub org_name: String,
    pub existing_user: Option<User>,
}

/// Looks a link's token up and says whether it can still be accepted.
pub async fn open(s: &Services, token: &str) -> Result<OpenInvitation, OpenError> {
    let hash = token_hash(token);
    let invitation = s
        .invitations
        .find_invitation_by_token(&hash)
        .await?
        .ok_or(LinkError::Unknown)?;
    let now = s.clock.now();
    match invitation.state {
        InvitationState::Accepted => return Err(LinkError::Used.into()),
        InvitationState::Revoked => return Err(LinkError::Revoked.into()),
        InvitationState::Pending if invitation.token_hash != hash => {
            return Err(LinkError::Reissued.into());
        }
        InvitationState::Pending if invitation.expires_at <= now => {
            return Err(LinkError::Expired.into());
        }
        InvitationState::Pending => {}
    }
    let org_name = s
        .orgs
        .get_org(&invitation.org)
        .await?
        .map(|o| o.name)
        .unwrap_or_else(|| invitation.org.to_string());
    let existing_user = s.users.find_user_by_email(&invitation.email).await?;
    Ok(OpenInvitation {
        invitation,
        org_name,
        existing_user,
    })
}

/// What the person sends to accept: a new person's name, password and acceptance of the terms,
/// or an existing user's password.
pub struct AcceptForm {
    pub name: Option<String>,
    pub password: Secret<String>,
    pub accept_terms: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{0}")]
    Invalid(String),
    #[error("the password is not right for this account")]
    WrongPassword,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("you are a member of this org already; sign in")]
    AlreadyMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpenError> for AcceptError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Link(l) => AcceptError::Link(l),
            OpenError::Store(s) => AcceptError::Store(s),
        }
    }
}

/// Accepts the invitation behind `token` once; answers the user who is now a member.
pub async fn accept(s: &Services, token: &str, form: AcceptForm) -> Result<User, AcceptError> {
    let opened = open(s, token).await?;
    let now: OffsetDateTime = s.clock.now();
    let (acceptor, user) = match opened.existing_user {
        Some(user) => {
            let verified = user
                .password_hash
                .as_ref()
                .is_some_and(|hash| verify_password(form.password.expose(), hash));
            if !verified {
                return Err(AcceptError::WrongPassword);
            }
            (Acceptor::Existing(user.id.clone()), user)
        }
        None => {
            if !form.accept_terms {
                return Err(AcceptError::Invalid("accept the terms to continue".into()));
            }
            let name = form
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| (1..=100).contains(&n.chars().count()))
                .ok_or_else(|| AcceptError::Invalid("name: 1 to 100 characters".into()))?
                .to_owned();
            check_policy(form.password.expose())?;
            let user = User {
                id: domain::UserId::from_ulid(&s.ids.ulid()).expect("ids mint ULIDs"),
                email: opened.invitation.email.clone(),
                name,
                password_hash: Some(hash_password(&form.password)?),
                created_at: now,
                two_factor: false,
            };
            (Acceptor::New(user.clone()), user)
        }
    };
    match s
        .invitations
        .accept_invitation(&opened.invitation, &acceptor, now)
        .await
    {
        Ok(()) => Ok(user),
        Err(AcceptWriteError::Spent) => Err(LinkError::Used.into()),
        Err(AcceptWriteError::AlreadyMember) => Err(AcceptError::AlreadyMember),
        // The email got an account between the page and the post: sign in to accept.
        Err(AcceptWriteError::EmailTaken) => Err(AcceptError::WrongPassword),
        Err(AcceptWriteError::Store(e)) => Err(e.into()),
    }
}
