//! Money as integer minor units of an ISO 4217 currency. No floating point anywhere.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The currencies Paybridge takes, each with its ISO 4217 minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    Aud,
    Bhd,
    Cad,
    Chf,
    Eur,
    Gbp,
    Jpy,
    Kwd,
    Nzd,
    Omr,
    Sgd,
    Usd,
    Zar,
}

impl Currency {
    pub const ALL: [Currency; 13] = [
        Currency::Aud,
        Currency::Bhd,
        Currency::Cad,
        Currency::Chf,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
        Currency::Kwd,
        Currency::Nzd,
        Currency::Omr,
        Currency::Sgd,
        Currency::Usd,
        Currency::Zar,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Currency::Aud => "AUD",
            Currency::Bhd => "BHD",
            Currency::Cad => "CAD",
            Currency::Chf => "CHF",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Kwd => "KWD",
            Currency::Nzd => "NZD",
            Currency::Omr => "OMR",
            Currency::Sgd => "SGD",
            Currency::Usd => "USD",
            Currency::Zar => "ZAR",
        }
    }

    /// Digits after the decimal point (ISO 4217 "minor unit").
    pub const fn exponent(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            Currency::Bhd | Currency::Kwd | Currency::Omr => 3,
            _ => 2,
        }
    }

    /// Minor units in one major unit: 100 for USD, 1 for JPY, 1000 for KWD.
    pub const fn minor_per_major(self) -> u64 {
        10u64.pow(self.exponent())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported currency {0:?}: use an ISO 4217 code such as USD, EUR or JPY")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| UnknownCurrency(s.to_owned()))
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an amount was refused. The messages are shown to API callers as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("the amount is empty")]
    Empty,
    #[error("the amount must not be negative")]
    Negative,
    #[error("the amount must not have a sign")]
    Signed,
    #[error(
        "the amount has {0:?}; write it like 12.30 with '.' as the decimal point and no grouping"
    )]
    InvalidCharacter(char),
    #[error("the amount must have digits on both sides of the decimal point, like 12.30")]
    MisplacedPoint,
    #[error("{currency} amounts have at most {max} digits after the decimal point")]
    TooPrecise { currency: Currency, max: u32 },
    #[error("the amount is too large")]
    Overflow,
    #[error("the result would be negative")]
    Underflow,
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
}

/// An amount of one currency in its minor units (cents, yen, fils). Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: u64,
    currency: Currency,
}

impl Money {
    /// The largest amount accepted: far above any invoice, far below where u64 arithmetic ends,
    /// so that sums of many invoices cannot overflow silently anywhere.
    pub const MAX_MINOR: u64 = 1_000_000_000_000_000;

    pub fn from_minor(minor: u64, currency: Currency) -> Result<Self, MoneyError> {
        if minor > Self::MAX_MINOR {
            return Err(MoneyError::Overflow);
        }
        Ok(Money { minor, currency })
    }

    pub const fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    pub const fn minor(self) -> u64 {
        self.minor
    }

    pub const fn currency(self) -> Currency {
        self.currency
    }

    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// Strict parse of a decimal string in `currency`'s precision: "12.30", "12.3" and "12" are
    /// fine for USD; "12.305", "1e3", "12,30", "-1", "+1", " 1", ".5" and "" are refused.
    pub fn parse(s: &str, currency: Currency) -> Result<Self, MoneyError> {
        if s.is_empty() {
            return Err(MoneyError::Empty);
        }
        match s.as_bytes()[0] {
            b'-' => return Err(MoneyError::Negative),
            b'+' => return Err(MoneyError::Signed),
            _ => {}
        }
        if let Some(bad) = s.chars().find(|c| !(c.is_ascii_digit() || *c == '.')) {
            return Err(MoneyError::InvalidCharacter(bad));
        }
        let (whole, fraction) = match s.split_once('.') {
            None => (s, ""),
            Some((w, f)) => {
                if w.is_empty() || f.is_empty() || f.contains('.') {
                    return Err(MoneyError::MisplacedPoint);
                }
                (w, f)
            }
        };
        let exponent = currency.exponent();
        if fraction.len() > exponent as usize {
            return Err(MoneyError::TooPrecise {
                currency,
                max: exponent,
            });
        }
        let mut minor: u64 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(digit - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let pad = exponent - fraction.len() as u32;
        let minor = minor
            .checked_mul(10u64.pow(pad))
            .ok_or(MoneyError::Overflow)?;
        Money::from_minor(minor, currency)
    }

    /// The amount as a decimal string with exactly the currency's digits: "12.30", "1200", "1.234".
    pub fn amount_string(self) -> String {
        let exponent = self.currency.exponent();
        if exponent == 0 {
            return self.minor.to_string();
        }
        let per = self.currency.minor_per_major();
        format!(
            "{}.{:0width$}",
            self.minor / per,
            self.minor % per,
            width = exponent as usize
        )
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Money::from_minor(sum, self.currency)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Underflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    /// Sums amounts of one currency; an empty list is zero of `currency`.
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        amounts: I,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl PartialOrd for Money {
    /// Amounts of different currencies are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.currency == other.currency).then(|| self.minor.cmp(&other.minor))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency, self.amount_string())
    }
}

/// JSON shape: `{"amount": "12.34", "currency": "USD"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    amount: String,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyJson {
            amount: self.amount_string(),
            currency: self.currency,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = MoneyJson::deserialize(d)?;
        Money::parse(&json.amount, json.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const USD: Currency = Currency::Usd;

    fn usd(minor: u64) -> Money {
        Money::from_minor(minor, USD).unwrap()
    }

    #[test]
    fn exponents_follow_iso_4217() {
        let expected = [
            ("AUD", 2),
            ("BHD", 3),
            ("CAD", 2),
            ("CHF", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("JPY", 0),
            ("KWD", 3),
            ("NZD", 2),
            ("OMR", 3),
            ("SGD", 2),
            ("USD", 2),
            ("ZAR", 2),
        ];
        for (code, exponent) in expected {
            let c: Currency = code.parse().unwrap();
            assert_eq!(c.exponent(), exponent, "{code}");
            assert_eq!(c.code(), code);
        }
        assert_eq!(Currency::ALL.len(), expected.len());
    }

    #[test]
    fn parses_plain_decimals() {
        assert_eq!(Money::parse("12.30", USD), Ok(usd(1230)));
        assert_eq!(Money::parse("12.3", USD), Ok(usd(1230)));
        assert_eq!(Money::parse("12", USD), Ok(usd(1200)));
        assert_eq!(Money::parse("0.01", USD), Ok(usd(1)));
        assert_eq!(Money::parse("0", USD), Ok(usd(0)));
        assert_eq!(Money::parse("1200", Currency::Jpy).unwrap().minor(), 1200);
        assert_eq!(Money::parse("1.234", Currency::Kwd).unwrap().minor(), 1234);
        assert_eq!(Money::parse("1.2", Currency::Omr).unwrap().minor(), 1200);
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        use MoneyError::*;
        let cases: [(&str, Currency, MoneyError); 13] = [
            ("", USD, Empty),
            ("-1.00", USD, Negative),
            ("+1.00", USD, Signed),
            ("1e3", USD, InvalidCharacter('e')),
            ("12,30", USD, InvalidCharacter(',')),
            (" 12.30", USD, InvalidCharacter(' ')),
            ("12.30 ", USD, InvalidCharacter(' ')),
            ("1_000", USD, InvalidCharacter('_')),
            (".5", USD, MisplacedPoint),
            ("5.", USD, MisplacedPoint),
            ("1.2.3", USD, MisplacedPoint),
            (
                "12.305",
                USD,
                TooPrecise {
                    currency: USD,
                    max: 2,
                },
            ),
            (
                "1200.0",
                Currency::Jpy,
                TooPrecise {
                    currency: Currency::Jpy,
                    max: 0,
                },
            ),
        ];
        for (input, currency, error) in cases {
            assert_eq!(Money::parse(input, currency), Err(error), "{input:?}");
        }
        assert_eq!(
            Money::parse("1.2345", Currency::Kwd),
            Err(TooPrecise {
                currency: Currency::Kwd,
                max: 3
            })
        );
        assert_eq!(Money::parse("99999999999999999999999", USD), Err(Overflow));
        assert_eq!(Money::parse("10000000000000.01", USD), Err(Overflow));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            Money::parse("12.305", USD).unwrap_err().to_string(),
            "USD amounts have at most 2 digits after the decimal point"
        );
        assert_eq!(
            Money::parse("12,30", USD).unwrap_err().to_string(),
            "the amount has ','; write it like 12.30 with '.' as the decimal point and no grouping"
        );
    }

    #[test]
    fn formats_with_the_currency_precision() {
        assert_eq!(usd(1230).amount_string(), "12.30");
        assert_eq!(usd(5).amount_string(), "0.05");
        assert_eq!(usd(0).amount_string(), "0.00");
        let yen = Money::from_minor(1200, Currency::Jpy).unwrap();
        assert_eq!(yen.amount_string(), "1200");
        let dinar = Money::from_minor(1001, Currency::Kwd).unwrap();
        assert_eq!(dinar.amount_string(), "1.001");
        assert_eq!(usd(1230).to_string(), "USD 12.30");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(usd(100).checked_add(usd(23)), Ok(usd(123)));
        assert_eq!(usd(100).checked_sub(usd(23)), Ok(usd(77)));
        assert_eq!(usd(1).checked_sub(usd(2)), Err(MoneyError::Underflow));
        let max = usd(Money::MAX_MINOR);
        assert_eq!(max.checked_add(usd(1)), Err(MoneyError::Overflow));
        let eur = Money::from_minor(1, Currency::Eur).unwrap();
        assert_eq!(
            usd(1).checked_add(eur),
            Err(MoneyError::CurrencyMismatch(USD, Currency::Eur))
        );
        assert_eq!(usd(1).partial_cmp(&eur), None);
        assert!(usd(1) < usd(2));
        assert_eq!(Money::sum(USD, [usd(1), usd(2), usd(3)]), Ok(usd(6)));
    }

    #[test]
    fn json_shape_is_a_decimal_string_and_a_code() {
        let json = serde_json::to_value(usd(1234)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount": "12.34", "currency": "USD"})
        );
        let back: Money = serde_json::from_value(json).unwrap();
        assert_eq!(back, usd(1234));
        let float = serde_json::json!({"amount": 12.34, "currency": "USD"});
        assert!(serde_json::from_value::<Money>(float).is_err());
        let precise = serde_json::json!({"amount": "12.345", "currency": "USD"});
        assert!(serde_json::from_value::<Money>(precise).is_err());
        let unknown = serde_json::json!({"amount": "1", "currency": "XXX"});
        assert!(serde_json::from_value::<Money>(unknown).is_err());
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in 0..=Money::MAX_MINOR, currency in any_currency()) {
            let money = Money::from_minor(minor, currency).unwrap();
            prop_assert_eq!(Money::parse(&money.amount_string(), currency), Ok(money));
        }

        #[test]
        fn parse_then_format_is_canonical(whole in 0u64..10_000_000, fraction in 0u64..1000, currency in any_currency()) {
            let exponent = currency.exponent() as usize;
            let text = if exponent == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{:0exponent$}", fraction % 10u64.pow(exponent as u32))
            };
            let money = Money::parse(&text, currency).unwrap();
            prop_assert_eq!(money.amount_string(), text);
        }

        #[test]
        fn add_then_sub_restores(a in 0..=Money::MAX_MINOR, b in 0..=Money::MAX_MINOR) {
            let (a, b) = (usd(a), usd(b));
            match a.checked_add(b) {
                Ok(sum) => {
                    prop_assert_eq!(sum.minor(), a.minor() + b.minor());
                    prop_assert_eq!(sum.checked_sub(b), Ok(a));
                }
                Err(e) => {
                    prop_assert_eq!(e, MoneyError::Overflow);
                    prop_assert!(a.minor() + b.minor() > Money::MAX_MINOR);
                }
            }
        }

        #[test]
        fn sub_never_goes_negative(a in 0..=Money::MAX_MINOR, b in 0..=Money::MAX_MINOR) {
            let result = usd(a).checked_sub(usd(b));
            prop_assert_eq!(result.is_ok(), a >= b);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}", currency in any_currency()) {
            let _ = Money::parse(&s, currency);
        }
    }
}
