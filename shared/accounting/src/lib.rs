//! Accounting systems behind the app's `Accounting` port: invoices and balances read live,
//! payments written back.

pub mod by_org;
pub mod connect;
pub mod connectwise;
pub mod http;
pub mod xero;

pub use by_org::OrgAccounting;

/// Where Xero's hosts are: production by default; a local double's origin in the local stack
/// and the tests (`XERO_BASE` serves all three there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://api.xero.com`: `/api.xro/2.0/...` and `/connections`.
    pub xero_api: String,
    /// `https://identity.xero.com`: `/connect/token`.
    pub xero_identity: String,
    /// `https://login.xero.com`: `/identity/connect/authorize` (the admin's browser goes there).
    pub xero_login: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            xero_api: "https://api.xero.com".to_owned(),
            xero_identity: "https://identity.xero.com".to_owned(),
            xero_login: "https://login.xero.com".to_owned(),
        }
    }
}

impl Endpoints {
    /// Every Xero host at one origin (a double's).
    pub fn xero_at(origin: &str) -> Endpoints {
        let origin = origin.trim_end_matches('/').to_owned();
        Endpoints {
            xero_api: origin.clone(),
            xero_identity: origin.clone(),
            xero_login: origin,
        }
    }
}
