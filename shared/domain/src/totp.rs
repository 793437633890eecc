//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 30-second steps,
//! 6 digits, as every authenticator app does by default; the secret's base32 text (RFC 4648)
//! and the `otpauth://` URI that apps scan. The HMAC and SHA-1 are the RustCrypto crates'; this
//! module only counts steps, truncates (RFC 4226 5.3) and encodes.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// The length of a new secret: 160 bits, the HMAC-SHA-1 output size (RFC 4226 4, R6).
pub const SECRET_BYTES: usize = 20;
/// Steps either side of the current one that a code may come from (a clock a little off, a code
/// typed as it changed): RFC 6238 5.2 recommends at most one.
pub const SKEW_STEPS: u64 = 1;

/// The time step of a Unix time (0 before 1970).
pub fn step_at(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds.div_euclid(STEP_SECONDS)).unwrap_or(0)
}

/// HOTP (RFC 4226): the `digits`-digit code of `secret` for `counter`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // Dynamic truncation: the low four bits of the last byte pick four bytes, top bit cleared.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The 6-digit code of `secret` at time step `step`, zero-padded.
pub fn code_at(secret: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

/// A typed code as its number: exactly six digits once spaces are taken out ("123 456").
pub fn parse_code(typed: &str) -> Option<u32> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The time step, within `SKEW_STEPS` of `now_step`, whose code is `code`; the latest when more
/// than one match. Every candidate is computed, matched or not.
pub fn matching_step(secret: &[u8], code: u32, now_step: u64) -> Option<u64> {
    let first = now_step.saturating_sub(SKEW_STEPS);
    let mut found = None;
    for step in first..=now_step + SKEW_STEPS {
        if hotp(secret, step, DIGITS) == code {
            found = Some(step);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding (what authenticator apps take).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 text back to bytes: either case, spaces, dashes and `=` padding ignored; None for any
/// other character. Trailing bits that make no whole byte are dropped.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars() {
        if c.is_whitespace() || c == '-' || c == '=' {
            continue;
        }
        let upper = c.to_ascii_uppercase() as u8;
        let value = BASE32.iter().position(|&b| b == upper)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The key URI that authenticator apps scan: `otpauth://totp/<issuer>:<account>?secret=..&issuer=..`
/// (Google Authenticator's key URI format; SHA-1, 6 digits and 30 seconds are its defaults).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}",
        percent_encode(account),
        base32_encode(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed is the ASCII "12345678901234567890", 8 digits.
    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, expected) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(seed, step_at(time), 8), expected, "T = {time}");
        }
        // The same steps at six digits are the last six of those.
        assert_eq!(code_at(seed, step_at(1111111109)), "081804");
        assert_eq!(code_at(seed, step_at(59)), "287082");
    }

    /// RFC 4226 Appendix D: HOTP of the same seed for counters 0 to 9.
    #[test]
    fn rfc_4226_hotp_test_vectors() {
        let seed = b"12345678901234567890";
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(hotp(seed, counter as u64, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn steps_are_thirty_seconds() {
        assert_eq!(step_at(0), 0);
        assert_eq!(step_at(29), 0);
        assert_eq!(step_at(30), 1);
        assert_eq!(step_at(59), 1);
        assert_eq!(step_at(-5), 0, "before 1970: step 0, never a panic");
    }

    #[test]
    fn a_code_matches_within_one_step_either_side_only() {
        let seed = b"12345678901234567890";
        let now = step_at(1111111111);
        for step in [now - 1, now, now + 1] {
            let code = hotp(seed, step, DIGITS);
            assert_eq!(matching_step(seed, code, now), Some(step));
        }
        for step in [now - 2, now + 2] {
            let code = hotp(seed, step, DIGITS);
            // (A code of a far step may collide with a near one's by chance: not with these.)
            assert_eq!(matching_step(seed, code, now), None, "step {step}");
        }
        assert_eq!(
            matching_step(seed, hotp(seed, 0, DIGITS), 0),
            Some(0),
            "step 0 has no step before it"
        );
    }

    #[test]
    fn typed_codes_are_six_digits() {
        assert_eq!(parse_code("081804"), Some(81804));
        assert_eq!(parse_code(" 081 804 "), Some(81804));
        assert_eq!(parse_code("81804"), None);
        assert_eq!(parse_code("0818041"), None);
        assert_eq!(parse_code("08180a"), None);
        assert_eq!(parse_code("+81804"), None);
        assert_eq!(parse_code(""), None);
    }

    /// RFC 4648 section 10, without padding.
    #[test]
    fn base32_is_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(
            base32_decode("mzxw 6ytb-oi======").unwrap(),
            b"foobar",
            "either case, spaces, dashes and padding"
        );
        assert_eq!(base32_decode("MZXW1"), None, "1 is not base32");
        let secret: Vec<u8> = (0u8..20).collect();
        let text = base32_encode(&secret);
        assert_eq!(text.len(), 32, "160 bits are 32 characters");
        assert_eq!(base32_decode(&text).unwrap(), secret);
    }

    #[test]
    fn the_key_uri_names_the_issuer_and_the_account() {
        let uri = otpauth_uri("Paybridge", "pat+ap@harbor.test", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Paybridge:pat%2Bap%40harbor.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Paybridge"
        );
    }
}
