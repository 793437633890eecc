//! Validated names: emails, org slugs, invoice numbers, customer ids.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a valid email address")]
    Email(String),
    #[error(
        "{0:?} is not a valid org slug: use 2 to 40 lowercase letters, digits and single hyphens, starting with a letter"
    )]
    Slug(String),
    #[error("{0:?} is not a valid invoice number: use 1 to 50 letters, digits, '.', '_' or '-'")]
    InvoiceNumber(String),
    #[error("{0:?} is not a valid customer id: use 1 to 64 letters, digits, '.', '_' or '-'")]
    CustomerId(String),
}

/// Implements Display, FromStr, `as_str`, serde (as a string, validated on the way in) for a
/// newtype over String whose constructor is `parse`.
macro_rules! string_name {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An email address, normalised (trimmed, lowercased) so that one person is one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let normal = raw.trim().to_lowercase();
        let bad = || NameError::Email(raw.to_owned());
        let (local, domain) = normal.split_once('@').ok_or_else(bad)?;
        let valid = !local.is_empty()
            && local.len() <= 64
            && normal.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !normal
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
        if valid { Ok(Email(normal)) } else { Err(bad()) }
    }
}
string_name!(Email);

/// An org's slug: its immutable id and the `{org}` of every URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgSlug(String);

impl OrgSlug {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let b = raw.as_bytes();
        let valid = (2..=40).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1] != b'-'
            && !raw.contains("--")
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if valid {
            Ok(OrgSlug(raw.to_owned()))
        } else {
            Err(NameError::Slug(raw.to_owned()))
        }
    }
}
string_name!(OrgSlug);

fn is_reference_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// An invoice number as the accounting system prints it ("INV-0042", "10234").
/// The character set keeps it safe in URLs and in key strings (no '#', '/').
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceNumber(String);

impl InvoiceNumber {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if (1..=50).contains(&raw.len()) && raw.chars().all(is_reference_char) {
            Ok(InvoiceNumber(raw.to_owned()))
        } else {
            Err(NameError::InvoiceNumber(raw.to_owned()))
        }
    }
}
string_name!(InvoiceNumber);

/// The accounting system's id of the org's customer (a Xero contact, a ConnectWise company).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if (1..=64).contains(&raw.len()) && raw.chars().all(is_reference_char) {
            Ok(CustomerId(raw.to_owned()))
        } else {
            Err(NameError::CustomerId(raw.to_owned()))
        }
    }
}
string_name!(CustomerId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        let e = Email::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "jane.doe@example.com");
        assert_eq!(e, Email::parse("jane.doe@example.com").unwrap());
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "jane@@example.com",
            "jane doe@example.com",
            "jane@.example.com",
            "jane@example..com",
            "<jane@example.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slugs_are_strict() {
        for good in ["demo", "acme", "acme-it", "a1", "msp-2024"] {
            assert!(OrgSlug::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a", "Demo", "-demo", "demo-", "de--mo", "1demo", "de mo", "démo",
        ] {
            assert!(OrgSlug::parse(bad).is_err(), "{bad:?}");
        }
        assert!(OrgSlug::parse(&"a".repeat(41)).is_err());
    }

    #[test]
    fn invoice_numbers_and_customer_ids_are_key_safe() {
        assert!(InvoiceNumber::parse("INV-0042").is_ok());
        assert!(InvoiceNumber::parse("10234").is_ok());
        for bad in ["", "INV#1", "a/b", "a b", &"9".repeat(51)] {
            assert!(InvoiceNumber::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CustomerId::parse("3f2b2c1e-9d0a-4c7b-8f5e-1a2b3c4d5e6f").is_ok());
        assert!(CustomerId::parse("CUST#1").is_err());
    }

    #[test]
    fn names_deserialize_through_validation() {
        let ok: OrgSlug = serde_json::from_str("\"demo\"").unwrap();
        assert_eq!(ok.as_str(), "demo");
        assert!(serde_json::from_str::<OrgSlug>("\"Demo\"").is_err());
        let e: Email = serde_json::from_str("\"A@B.CO\"").unwrap();
        assert_eq!(e.as_str(), "a@b.co");
    }

    proptest! {
        #[test]
        fn email_normalisation_is_idempotent(local in "[A-Za-z0-9._%+-]{1,20}", domain in "[A-Za-z0-9-]{1,20}\\.[A-Za-z]{2,6}") {
            let raw = format!(" {local}@{domain} ");
            let once = Email::parse(&raw).unwrap();
            let twice = Email::parse(once.as_str()).unwrap();
            prop_assert_eq!(once, twice);
        }
    }
}
