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
    let from = format!("{}@billing.paybridge.test", unique("receipts"));
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender at once");
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
