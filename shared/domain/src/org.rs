//! Orgs, their settings, and who belongs to them.

use serde::{Deserialize, Serialize};

use crate::{Currency, CustomerId, OrgSlug, SurchargeRule};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    /// Whether guests and payers may pay less than the whole balance.
    pub allow_partial: bool,
    /// How long an emailed invitation stays valid.
    pub invite_ttl_days: u16,
    /// IANA time zone for dates shown to payers and schedule days.
    pub timezone: String,
    /// The currency of ledger invoices created without one.
    pub default_currency: Currency,
    /// Card surcharges by brand; empty means none.
    pub surcharges: Vec<SurchargeRule>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            allow_partial: false,
            invite_ttl_days: 7,
            timezone: "UTC".into(),
            default_currency: Currency::Usd,
            surcharges: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub slug: OrgSlug,
    pub name: String,
    pub settings: OrgSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    Payer,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Payer => "payer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Admin, Role::Staff, Role::Payer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A user's place in one org: a role and, for payers, the customers they may pay for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub org: OrgSlug,
    pub role: Role,
    pub customer_ids: Vec<CustomerId>,
}
