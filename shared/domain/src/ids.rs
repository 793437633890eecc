//! Typed ids: a short prefix that says what the id names, then a ULID (time-ordered, 128 bits).
//! The domain only checks their shape; the app's `Ids` port mints them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} id")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

const ULID_LEN: usize = 26;
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// Wraps a freshly minted ULID (its 26-character text form).
            pub fn from_ulid(ulid: &str) -> Result<Self, IdError> {
                Self::parse(&format!("{}{}", $prefix, ulid))
            }

            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let valid = raw.strip_prefix($prefix).is_some_and(|rest| {
                    rest.len() == ULID_LEN && rest.chars().all(|c| CROCKFORD.contains(c))
                });
                if valid {
                    Ok($name(raw.to_owned()))
                } else {
                    Err(IdError { what: $what, value: raw.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
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
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A person, across all orgs.
    UserId, "usr_", "user"
);
typed_id!(
    /// One charge attempt and its life.
    PaymentId, "pay_", "payment"
);
typed_id!(
    /// An emailed invitation to join an org (its secret link token is kept only as a hash).
    InvitationId, "inv_", "invitation"
);
typed_id!(
    /// A payer's saved card or bank account in one org (a gateway reference, never a number).
    MethodId, "pm_", "payment method"
);
typed_id!(
    /// A payer's recorded acceptance of a direct-debit or stored-credential authority.
    MandateId, "mdt_", "mandate"
);
typed_id!(
    /// A payment due on a later date: one invoice, a saved method, a day.
    ScheduleId, "sch_", "schedule"
);
typed_id!(
    /// A customer's enrolment in automatic payments.
    EnrolmentId, "enr_", "enrolment"
);
typed_id!(
    /// An org API key (the id is public; the secret is shown once and kept only as a hash).
    ApiKeyId, "key_", "API key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix() {
        let id = UserId::from_ulid("01JD8X3Q9M6V4W2K7T5R1N0PZC").unwrap();
        assert_eq!(id.as_str(), "usr_01JD8X3Q9M6V4W2K7T5R1N0PZC");
        assert_eq!(UserId::parse(id.as_str()), Ok(id.clone()));
        assert!(PaymentId::parse(id.as_str()).is_err());
        assert!(UserId::parse("usr_short").is_err());
        assert!(
            UserId::parse("usr_01JD8X3Q9M6V4W2K7T5R1N0PZI").is_err(),
            "I is not Crockford"
        );
    }
}
