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
    /// How scheduled and automatic payments run.
    pub autopay: AutoPaySettings,
    /// Whether everyone who opens the org's portal or admin pages (or its payer API, or its
    /// admin API with a session) must sign in with a two-factor code: a member without it is
    /// sent to set it up first. Off by default.
    #[serde(default)]
    pub require_two_factor: bool,
}

/// How the org's scheduled and automatic payments run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoPaySettings {
    /// The hour of the org's day (0-23, its time zone) at which a day's payments are charged.
    pub run_hour: u8,
    /// Days to wait before each retry of a soft decline (insufficient funds, a generic
    /// decline); as many retries as entries, at most 5.
    pub retry_days: Vec<u16>,
    /// Days before an automatic debit that the payer is told of it (0: no advance notice).
    pub advance_notice_days: u16,
    /// Hours after an invoice is first seen before auto-pay may charge it.
    pub processing_delay_hours: u16,
    /// Whether payers may enrol their own customers in auto-pay (admins always may).
    pub payers_may_enrol: bool,
}

impl Default for AutoPaySettings {
    fn default() -> Self {
        AutoPaySettings {
            run_hour: 6,
            retry_days: vec![1, 3, 5],
            advance_notice_days: 3,
            processing_delay_hours: 24,
            payers_may_enrol: true,
        }
    }
}

impl AutoPaySettings {
    /// Why these settings are refused, if they are.
    pub fn problem(&self) -> Option<&'static str> {
        if self.run_hour > 23 {
            return Some("run_hour: 0 to 23");
        }
        if self.retry_days.len() > 5 || self.retry_days.iter().any(|d| !(1..=30).contains(d)) {
            return Some("retry_days: at most 5 retries, each 1 to 30 days after the last try");
        }
        if self.advance_notice_days > 14 {
            return Some("advance_notice_days: 0 to 14");
        }
        if self.processing_delay_hours > 24 * 14 {
            return Some("processing_delay_hours: 0 to 336");
        }
        None
    }
}

/// When a day's payments run: `hour`:00 of `date` in the IANA zone `zone`, as an instant. None
/// for a zone that does not exist. (On a day when that hour is skipped by a clock change, the
/// next existing instant.)
pub fn local_instant(zone: &str, date: time::Date, hour: u8) -> Option<time::OffsetDateTime> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let civil = jiff::civil::date(
        i16::try_from(date.year()).ok()?,
        i8::try_from(u8::from(date.month())).ok()?,
        i8::try_from(date.day()).ok()?,
    )
    .at(i8::try_from(hour).ok()?, 0, 0, 0);
    let instant = tz.to_zoned(civil).ok()?.timestamp();
    time::OffsetDateTime::from_unix_timestamp(instant.as_second()).ok()
}

/// The date in the IANA zone `zone` at instant `at` (None for an unknown zone).
pub fn local_date(zone: &str, at: time::OffsetDateTime) -> Option<time::Date> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let stamp = jiff::Timestamp::from_second(at.unix_timestamp()).ok()?;
    let civil = stamp.to_zoned(tz).date();
    let month = time::Month::try_from(u8::try_from(civil.month()).ok()?).ok()?;
    time::Date::from_calendar_date(
        i32::from(civil.year()),
        month,
        u8::try_from(civil.day()).ok()?,
    )
    .ok()
}

impl Default for OrgSettings {
    fn default() -> Self {
        OrgSettings {
            allow_partial: false,
            invite_ttl_days: 7,
            timezone: "UTC".into(),
            default_currency: Currency::Usd,
            surcharges: Vec::new(),
            autopay: AutoPaySettings::default(),
            require_two_factor: false,
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
