//! Accounting systems behind the app's `Accounting` port: invoices and balances read live,
//! payments written back.

pub mod connectwise;
pub mod http;
pub mod xero;
