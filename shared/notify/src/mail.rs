//! Mail through SES (v2): one SendEmail per message, subject, text and HTML as UTF-8.

use app::ports::{EmailMessage, Mailer, NotifyError};
use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::error::sdk_error;

/// Sends from one verified address (or an address of a verified domain), optionally through a
/// configuration set (event publishing, dedicated IPs).
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// `from` is what SES puts in From: `billing@example.com` or `Example Billing <billing@example.com>`.
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        SesMailer {
            client,
            from: from.into(),
            configuration_set,
        }
    }
}

/// SES's default charset is 7-bit ASCII: say UTF-8 so that names like "Māori" arrive intact.
fn utf8(data: &str) -> Result<Content, NotifyError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| NotifyError(format!("SendEmail: {e}")))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), NotifyError> {
        let simple = Message::builder()
            .subject(utf8(&message.subject)?)
            .body(
                Body::builder()
                    .text(utf8(&message.text)?)
                    .html(utf8(&message.html)?)
                    .build(),
            )
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(
                Destination::builder()
                    .to_addresses(message.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(simple).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| sdk_error("SendEmail", e))?;
        // The recipient is personal data: the message id is enough to find it in SES's records.
        tracing::info!(message_id = out.message_id().unwrap_or("-"), "mail sent");
        Ok(())
    }
}
