//! What a card number's leading digits say: its brand (the surcharge rules and receipts name
//! it). Only the proxy ever holds a number; everything else knows a brand and last four.

/// The brand of a card number by its issuer identification range, lowercase as gateways name
/// it ("visa", "mastercard", "amex", "discover", "jcb", "diners"); "card" when unknown.
pub fn card_brand(number: &str) -> &'static str {
    let digits: String = number
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    match (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6)) {
        (Some(4), ..) => "visa",
        (_, Some(34 | 37), ..) => "amex",
        (_, Some(51..=55), ..) | (_, _, _, Some(2221..=2720), _) => "mastercard",
        (_, Some(65), ..) | (_, _, Some(644..=649), ..) | (_, _, _, Some(6011), _) => "discover",
        (_, _, _, Some(3528..=3589), _) => "jcb",
        (_, Some(36 | 38 | 39), ..) | (_, _, Some(300..=305), ..) => "diners",
        (.., Some(622_126..=622_925)) => "discover",
        _ => "card",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_follow_the_issuer_ranges() {
        for (number, brand) in [
            ("4111111111111111", "visa"),
            ("4242 4242 4242 4242", "visa"),
            ("5424000000000015", "mastercard"),
            ("2223000010309703", "mastercard"),
            ("370000000000002", "amex"),
            ("378282246310005", "amex"),
            ("6011000000000012", "discover"),
            ("6500000000000002", "discover"),
            ("3088000000000017", "card"),
            ("3530111333300000", "jcb"),
            ("38000000000006", "diners"),
            ("", "card"),
        ] {
            assert_eq!(card_brand(number), brand, "{number}");
        }
    }
}
