//! What both accounting adapters need of HTTP: one client with firm timeouts, `Retry-After`,
//! and amounts read from JSON numbers without going through floating point arithmetic; and
//! the parts of a posting, checked before any of them is written.

use std::time::Duration;

use app::ports::PaymentPosting;
use domain::{Allocation, Currency, Money};
use reqwest::header::HeaderMap;

/// Past this an accounting call has failed: the payer is asked to try again shortly, and a
/// write-back is tried again later (never assumed lost or done).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// When a 429 names no wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a reqwest client with rustls builds")
}

/// The wait a 429 (or 503) asks for: `Retry-After` in seconds; an HTTP date or nothing is
/// taken as [`DEFAULT_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// An amount from a JSON number as the API wrote it (`1234.5`, `100`, `100.00`): its decimal
/// text is parsed exactly in the currency's precision. Trailing zeros past the precision are
/// fine; anything else finer than a minor unit is refused rather than rounded.
pub fn money(number: &serde_json::Number, currency: Currency) -> Result<Money, String> {
    let text = number.to_string();
    let trimmed = match text.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => text.clone(),
    };
    Money::parse(&trimmed, currency)
        .map_err(|e| format!("{text} is not an amount in {currency:?}: {e}"))
}

/// An amount as a JSON number for a request body (`12.30` as `12.3`): exact, since the decimal
/// text is what goes on the wire.
pub fn number(amount: Money) -> serde_json::Number {
    amount
        .amount_string()
        .parse()
        .expect("a decimal amount is a JSON number")
}

/// What each invoice gets of a posting (`posting.parts()`), checked when it is split: every
/// part more than zero and in the payment's currency, no invoice twice, the parts adding up
/// to the amount. A posting of one invoice is taken as it is (the system judges its amount).
/// The error is the refusal's text.
pub fn parts(posting: &PaymentPosting) -> Result<Vec<Allocation>, String> {
    let parts = posting.parts();
    if posting.allocations.is_empty() {
        return Ok(parts);
    }
    let currency = posting.amount.currency();
    for (i, part) in parts.iter().enumerate() {
        if part.amount.currency() != currency {
            return Err(format!(
                "payment {}'s part for invoice {} is in {}, the payment in {currency}",
                posting.payment,
                part.invoice,
                part.amount.currency()
            ));
        }
        if part.amount.is_zero() {
            return Err(format!(
                "payment {} has nothing to post to invoice {}",
                posting.payment, part.invoice
            ));
        }
        if parts[..i].iter().any(|p| p.invoice == part.invoice) {
            return Err(format!(
                "payment {} names invoice {} twice",
                posting.payment, part.invoice
            ));
        }
    }
    let total = Money::sum(currency, parts.iter().map(|p| p.amount));
    if total.ok() != Some(posting.amount) {
        return Err(format!(
            "payment {}'s parts do not add up to its amount of {}",
            posting.payment,
            posting.amount.amount_string()
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Money {
        Money::parse(s, Currency::Usd).unwrap()
    }

    #[test]
    fn amounts_come_from_the_number_text() {
        for (json, want) in [
            ("1234.5", "1234.50"),
            ("100", "100.00"),
            ("100.00", "100.00"),
            ("0.1", "0.10"),
        ] {
            let n: serde_json::Number = serde_json::from_str(json).unwrap();
            assert_eq!(money(&n, Currency::Usd).unwrap(), usd(want), "{json}");
        }
        let finer: serde_json::Number = serde_json::from_str("1.005").unwrap();
        assert!(money(&finer, Currency::Usd).is_err());
        let negative: serde_json::Number = serde_json::from_str("-1").unwrap();
        assert!(money(&negative, Currency::Usd).is_err());
    }

    #[test]
    fn numbers_for_requests_are_exact() {
        assert_eq!(number(usd("12.30")).to_string(), "12.3");
        assert_eq!(number(usd("0.10")).to_string(), "0.1");
    }

    fn posting(amount: &str, parts: &[(&str, Money)]) -> PaymentPosting {
        PaymentPosting {
            org: domain::OrgSlug::parse("acme").unwrap(),
            payment: domain::PaymentId::from_ulid("01JCW0000000000000000000AA").unwrap(),
            invoice: domain::InvoiceNumber::parse("INV-1").unwrap(),
            amount: usd(amount),
            allocations: parts
                .iter()
                .map(|(n, amount)| Allocation {
                    invoice: domain::InvoiceNumber::parse(n).unwrap(),
                    amount: *amount,
                })
                .collect(),
            surcharge: usd("0.00"),
            paid_on: time::macros::date!(2026 - 11 - 15),
            reference: "Paybridge".to_owned(),
        }
    }

    #[test]
    fn parts_are_checked_before_anything_is_written() {
        let whole = parts(&posting("0.00", &[])).unwrap();
        assert_eq!(whole.len(), 1, "one invoice is the system's to judge");
        let good = posting("15.00", &[("INV-1", usd("10.00")), ("INV-2", usd("5.00"))]);
        assert_eq!(parts(&good).unwrap(), good.allocations);
        let eur = Money::parse("5.00", Currency::Eur).unwrap();
        for (bad, why) in [
            (
                posting("15.00", &[("INV-1", usd("10.00")), ("INV-2", usd("4.99"))]),
                "do not add up",
            ),
            (
                posting("10.00", &[("INV-1", usd("10.00")), ("INV-2", usd("0.00"))]),
                "nothing to post to invoice INV-2",
            ),
            (
                posting("20.00", &[("INV-1", usd("10.00")), ("INV-1", usd("10.00"))]),
                "names invoice INV-1 twice",
            ),
            (
                posting("15.00", &[("INV-1", usd("10.00")), ("INV-2", eur)]),
                "invoice INV-2 is in EUR",
            ),
        ] {
            let e = parts(&bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), DEFAULT_RETRY_AFTER);
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(7));
    }
}
