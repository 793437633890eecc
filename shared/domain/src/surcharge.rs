//! Card surcharges: what an org adds on top of an invoice when it is paid by card (a percentage
//! and a fixed fee, per card brand). Off unless the org sets rules; bank payments never carry one.

use serde::{Deserialize, Serialize};

use crate::{Money, MoneyError};

/// The highest rate accepted, 10.00%: card-network rules cap surcharges far lower (Visa's 3% in
/// the US), so anything above this is a typo, not a policy.
pub const MAX_RATE_BPS: u32 = 1_000;
pub const MAX_RULES: usize = 12;
/// The brand of a rule that applies to every card without a rule of its own.
pub const ANY_BRAND: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurchargeRule {
    /// A card brand as gateways name it ("visa", "mastercard", "amex", "discover") or "*".
    pub brand: String,
    /// The percentage in basis points: 250 is 2.50%.
    pub rate_bps: u32,
    /// A fixed fee on top of the percentage, for invoices in its currency only.
    #[serde(default)]
    pub fixed: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SurchargeError {
    #[error("a surcharge rate is at most {} basis points (10.00%)", MAX_RATE_BPS)]
    RateTooHigh,
    #[error("at most {MAX_RULES} surcharge rules")]
    TooMany,
    #[error("brand {0:?}: use a lowercase card brand like \"visa\", or \"*\" for every card")]
    BadBrand(String),
    #[error("brand {0:?} has two surcharge rules")]
    Duplicate(String),
}

/// Checks an org's rules before they are stored.
pub fn validate_surcharges(rules: &[SurchargeRule]) -> Result<(), SurchargeError> {
    if rules.len() > MAX_RULES {
        return Err(SurchargeError::TooMany);
    }
    for (i, rule) in rules.iter().enumerate() {
        let brand_ok = rule.brand == ANY_BRAND
            || (!rule.brand.is_empty()
                && rule.brand.len() <= 24
                && rule
                    .brand
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'));
        if !brand_ok {
            return Err(SurchargeError::BadBrand(rule.brand.clone()));
        }
        if rule.rate_bps > MAX_RATE_BPS {
            return Err(SurchargeError::RateTooHigh);
        }
        if rules[..i].iter().any(|r| r.brand == rule.brand) {
            return Err(SurchargeError::Duplicate(rule.brand.clone()));
        }
    }
    Ok(())
}

/// The rule for a card of `brand`: its own, else the one for every card.
pub fn rule_for<'a>(rules: &'a [SurchargeRule], brand: &str) -> Option<&'a SurchargeRule> {
    rules
        .iter()
        .find(|r| r.brand == brand)
        .or_else(|| rules.iter().find(|r| r.brand == ANY_BRAND))
}

impl SurchargeRule {
    /// The surcharge on `amount`: the rate rounded half up to the minor unit, plus the fixed
    /// fee when it is in the amount's currency.
    pub fn on(&self, amount: Money) -> Result<Money, MoneyError> {
        let scaled = u128::from(amount.minor()) * u128::from(self.rate_bps) + 5_000;
        let rate_part = u64::try_from(scaled / 10_000).map_err(|_| MoneyError::Overflow)?;
        let rate_part = Money::from_minor(rate_part, amount.currency())?;
        match self.fixed {
            Some(fee) if fee.currency() == amount.currency() => rate_part.checked_add(fee),
            _ => Ok(rate_part),
        }
    }
}

/// What a card of `brand` pays on top of `amount` under the org's rules (zero without a rule).
pub fn card_surcharge(
    rules: &[SurchargeRule],
    brand: &str,
    amount: Money,
) -> Result<Money, MoneyError> {
    match rule_for(rules, brand) {
        Some(rule) => rule.on(amount),
        None => Ok(Money::zero(amount.currency())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency::{Jpy, Usd};

    fn usd(s: &str) -> Money {
        Money::parse(s, Usd).unwrap()
    }

    fn rule(brand: &str, rate_bps: u32, fixed: Option<Money>) -> SurchargeRule {
        SurchargeRule {
            brand: brand.into(),
            rate_bps,
            fixed,
        }
    }

    #[test]
    fn rate_and_fixed_fee() {
        let rules = [rule("*", 290, Some(usd("0.30")))];
        assert_eq!(
            card_surcharge(&rules, "visa", usd("10.00")).unwrap(),
            usd("0.59")
        );
        assert_eq!(
            card_surcharge(&rules, "visa", usd("100")).unwrap(),
            usd("3.20")
        );
    }

    #[test]
    fn rounds_half_up_to_the_minor_unit() {
        let rules = [rule("*", 250, None)];
        // 2.5% of 0.21 is 0.00525 -> 0.01; of 0.19 is 0.00475 -> 0.00.
        assert_eq!(
            card_surcharge(&rules, "visa", usd("0.21")).unwrap(),
            usd("0.01")
        );
        assert_eq!(
            card_surcharge(&rules, "visa", usd("0.19")).unwrap(),
            usd("0")
        );
        let yen = Money::parse("1000", Jpy).unwrap();
        assert_eq!(card_surcharge(&rules, "visa", yen).unwrap().minor(), 25);
    }

    #[test]
    fn a_brand_rule_beats_the_catch_all_and_no_rule_is_free() {
        let rules = [rule("*", 200, None), rule("amex", 350, None)];
        assert_eq!(
            card_surcharge(&rules, "amex", usd("100")).unwrap(),
            usd("3.50")
        );
        assert_eq!(
            card_surcharge(&rules, "visa", usd("100")).unwrap(),
            usd("2.00")
        );
        let only_amex = [rule("amex", 350, None)];
        assert!(
            card_surcharge(&only_amex, "visa", usd("100"))
                .unwrap()
                .is_zero()
        );
        assert!(card_surcharge(&[], "visa", usd("100")).unwrap().is_zero());
    }

    #[test]
    fn a_fixed_fee_in_another_currency_is_not_added() {
        let rules = [rule("*", 100, Some(usd("0.30")))];
        let yen = Money::parse("1000", Jpy).unwrap();
        assert_eq!(card_surcharge(&rules, "visa", yen).unwrap().minor(), 10);
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(
            validate_surcharges(&[rule("*", 1001, None)]),
            Err(SurchargeError::RateTooHigh)
        );
        assert_eq!(
            validate_surcharges(&[rule("Visa", 100, None)]),
            Err(SurchargeError::BadBrand("Visa".into()))
        );
        assert_eq!(
            validate_surcharges(&[rule("visa", 100, None), rule("visa", 200, None)]),
            Err(SurchargeError::Duplicate("visa".into()))
        );
        assert!(validate_surcharges(&[rule("*", 300, None), rule("amex", 400, None)]).is_ok());
    }
}
