//! Paybridge's use cases over ports. No AWS, HTTP or Lambda crates: the compiler keeps it so.

pub mod account;
pub mod accounting;
pub mod anet_proxy;
pub mod autopay;
pub mod books;
pub mod idempotency;
pub mod invitations;
pub mod ledger;
pub mod methods;
pub mod notices;
pub mod orgs;
pub mod passwords;
pub mod pay_now;
pub mod payer;
pub mod payer_payments;
pub mod payments;
pub mod ports;
pub mod refunds;
pub mod schedules;
pub mod services;
pub mod sessions;
pub mod system;
pub mod two_factor;
pub mod velocity;
pub mod webhooks;
pub use services::Services;
