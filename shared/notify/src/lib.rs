//! Paybridge's mail and event adapters for AWS: [`SesMailer`] (SES v2) for the `Mailer` port and
//! [`EventBridgePublisher`] for the `EventPublisher` port. The local stack uses the outbox in
//! `store` instead; `runtime` picks these when MAIL_FROM and EVENT_BUS_NAME are set.

mod error;
mod events;
mod mail;

pub use events::{EVENT_SOURCE, EventBridgePublisher};
pub use mail::SesMailer;
