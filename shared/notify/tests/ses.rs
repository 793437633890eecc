//! SesMailer against moto's SES: what a recipient would get, and what an unverified sender gets.

use app::ports::{EmailMessage, Mailer};
use devtools::moto;
use domain::Email;
use notify::SesMailer;

/// A fresh sender per test: every test of this process shares one moto and its sent mail.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new()).to_lowercase()
}

fn ses(endpoint: &str) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::new(&devtools::aws_client_config(endpoint))
}

/// A sender address that moto has verified, new for this test.
async fn verified_sender(client: &aws_sdk_sesv2::Client, prefix: &str) -> String {
    let from = format!("{}@billing.paybridge.test", unique(prefix));
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender at once");
    from
}

fn receipt(to: &str) -> EmailMessage {
    EmailMessage {
        to: Email::parse(to).unwrap(),
        subject: "Receipt for invoice INV-0042 from Ngā Tāngata Ltd".into(),
        text: "We received NZD 150.00 for invoice INV-0042. Thank you.".into(),
        html: "<p>We received <b>NZD 150.00</b> for invoice INV-0042. Thank you.</p>".into(),
    }
}

#[tokio::test]
async fn a_verified_sender_delivers_subject_recipient_and_html() {
    let endpoint = moto::shared_for_tests();
    let client = ses(endpoint);
    let from = verified_sender(&client, "receipts").await;
    let message = receipt(&format!("{}@kiwi.test", unique("payer")));

    SesMailer::new(client, &from, None)
        .send(&message)
        .await
        .expect("SES accepts mail from a verified sender");

    let sent: Vec<_> = moto::sent_mail(endpoint)
        .expect("read moto's sent mail")
        .into_iter()
        .filter(|m| m.source == from)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].subject, message.subject, "UTF-8 subject intact");
    assert_eq!(sent[0].destinations.to, vec![message.to.to_string()]);
    assert_eq!(sent[0].destinations.cc, Vec::<String>::new());
    assert_eq!(sent[0].body, message.html);
}

#[tokio::test]
async fn an_unverified_sender_is_an_error_without_the_mail_in_it() {
    let endpoint = moto::shared_for_tests();
    let from = format!("{}@unverified.test", unique("nobody"));
    let message = receipt(&format!("{}@kiwi.test", unique("payer")));

    let error = SesMailer::new(ses(endpoint), &from, None)
        .send(&message)
        .await
        .expect_err("SES rejects an unverified sender");

    assert!(
        error.0.starts_with("SendEmail: MessageRejected: "),
        "{error}"
    );
    // Errors are logged: they must not carry what the payer was sent.
    for part in [&message.subject, &message.text, &message.html] {
        assert!(!error.0.contains(part.as_str()), "{error}");
    }
    let sent = moto::sent_mail(endpoint).expect("read moto's sent mail");
    assert!(sent.iter().all(|m| m.source != from), "{sent:#?}");
}

/// The invitation email as Paybridge renders it, through SES: the payer can read the link.
#[tokio::test]
async fn an_invitation_email_reaches_ses_with_its_accept_link() {
    use app::ports::{Invitation, InvitationState};
    let endpoint = moto::shared_for_tests();
    let client = ses(endpoint);
    let from = verified_sender(&client, "invites").await;
    let now = time::OffsetDateTime::now_utc();
    let to = format!("{}@harbor.test", unique("pat"));
    let invitation = Invitation {
        id: domain::InvitationId::from_ulid(&ulid::Ulid::new().to_string()).unwrap(),
        org: domain::OrgSlug::parse("demo").unwrap(),
        email: Email::parse(&to).unwrap(),
        name: "Pat Lee".into(),
        role: domain::Role::Payer,
        customer_ids: vec![],
        state: InvitationState::Pending,
        token_hash: "0".repeat(64),
        invited_by: "Dana Admin".into(),
        created_at: now,
        expires_at: now + time::Duration::days(7),
        updated_at: now,
    };
    let link = "https://pay.example.com/invite/tok_example";
    let message = app::invitations::invitation_email(&invitation, "Demo IT Services", link);

    SesMailer::new(client, &from, None)
        .send(&message)
        .await
        .expect("SES accepts the invitation");

    let sent: Vec<_> = moto::sent_mail(endpoint)
        .expect("read moto's sent mail")
        .into_iter()
        .filter(|m| m.source == from)
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].subject,
        "Demo IT Services invited you to pay your invoices online"
    );
    assert_eq!(sent[0].destinations.to, vec![to]);
    assert!(
        sent[0].body.contains(&format!("href=\"{link}\"")),
        "{}",
        sent[0].body
    );
    assert!(sent[0].body.contains("Dana Admin invited you"));
}
