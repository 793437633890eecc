//! Stripe's webhook signature scheme, which the sandbox signs with (and a Stripe adapter will
//! check): `Paybridge-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`, where each `v1` is
//! HMAC-SHA256, keyed with the UTF-8 bytes of a secret, over `t + "." + raw body`. During a
//! secret's rotation the sender signs with every active secret (several `v1`), and the receiver
//! accepts any `v1` that matches any of its active secrets. A timestamp more than five minutes
//! from now is refused, so a captured delivery cannot be replayed later.

use domain::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

pub const HEADER: &str = "paybridge-signature";
pub const TOLERANCE: Duration = Duration::minutes(5);
/// More than this many signatures in one header is not a rotation: refused unread.
const MAX_SIGNATURES: usize = 8;
const MAX_HEADER_LEN: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature is refused (said in logs, never to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature header")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches an active secret")]
    NoMatch,
}

impl SignatureError {
    pub const fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Stale => "stale",
            SignatureError::NoMatch => "no match",
        }
    }
}

/// A parsed header: the timestamp and every `v1` signature (other schemes are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub signatures: Vec<Vec<u8>>,
}

fn mac(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex `v1` signature of `body` at `timestamp` with `secret`.
pub fn sign(secret: &Secret<String>, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The header's value: signed with each secret (the current one first).
pub fn header_value(secrets: &[Secret<String>], timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&sign(secret, timestamp, body));
    }
    value
}

pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match name {
            "t" if timestamp.is_none() => {
                let t = value
                    .parse::<i64>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(SignatureError::Malformed)?;
                timestamp = Some(t);
            }
            "t" => return Err(SignatureError::Malformed),
            "v1" => {
                let bytes = hex::decode(value).map_err(|_| SignatureError::Malformed)?;
                if bytes.len() != 32 {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(bytes);
            }
            _ => {} // v0 and schemes to come: not ours to check
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
        return Err(SignatureError::Malformed);
    }
    Ok(SignatureHeader {
        timestamp,
        signatures,
    })
}

/// Checks `header` against the raw `body` with the active `secrets` at `now`: the timestamp
/// within the tolerance either way, and some `v1` equal (in constant time) to the HMAC of some
/// secret.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret<String>],
    now: OffsetDateTime,
) -> Result<(), SignatureError> {
    let parsed = parse(header.ok_or(SignatureError::Missing)?)?;
    let age = now.unix_timestamp().saturating_sub(parsed.timestamp);
    if age.unsigned_abs() > TOLERANCE.whole_seconds().unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        parsed.signatures.iter().any(|signature| {
            mac(secret, parsed.timestamp, body)
                .verify_slice(signature)
                .is_ok()
        })
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 12:00 UTC);

    fn secret(s: &str) -> Secret<String> {
        Secret::new(s.to_owned())
    }

    #[test]
    fn a_known_answer_pins_the_scheme() {
        // HMAC-SHA256(key "whsec_test", "1795000000.{}"), computed apart (Python's hmac).
        assert_eq!(
            sign(&secret("whsec_test"), 1_795_000_000, b"{}"),
            "f50cd36baaae795dac63f86cd686693bcb16ea422cd6f180232b0f6ed3a6367d"
        );
    }

    #[test]
    fn a_signature_verifies_and_every_changed_part_does_not() {
        let key = secret("whsec_current");
        let t = NOW.unix_timestamp();
        let body = br#"{"id":"evt_1","type":"charge.settled"}"#;
        let keys = std::slice::from_ref(&key);
        let header = header_value(keys, t, body);
        assert_eq!(verify(Some(&header), body, keys, NOW), Ok(()));
        // One byte of the body changed.
        let mut changed = body.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify(Some(&header), &changed, keys, NOW),
            Err(SignatureError::NoMatch)
        );
        // Another secret.
        assert_eq!(
            verify(Some(&header), body, &[secret("whsec_other")], NOW),
            Err(SignatureError::NoMatch)
        );
        // The timestamp changed (the signature covers it).
        let moved = header.replacen(&format!("t={t}"), &format!("t={}", t - 1), 1);
        assert_eq!(
            verify(Some(&moved), body, keys, NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(verify(None, body, keys, NOW), Err(SignatureError::Missing));
    }

    #[test]
    fn five_minutes_either_way_and_no_more() {
        let key = secret("whsec_current");
        let body = b"{}";
        let at = |offset: i64| {
            let t = NOW.unix_timestamp() + offset;
            header_value(std::slice::from_ref(&key), t, body)
        };
        let check = |h: String| verify(Some(&h), body, std::slice::from_ref(&key), NOW);
        assert_eq!(check(at(-300)), Ok(()));
        assert_eq!(check(at(300)), Ok(()));
        assert_eq!(check(at(-360)), Err(SignatureError::Stale));
        assert_eq!(check(at(301)), Err(SignatureError::Stale));
    }

    #[test]
    fn during_a_rotation_any_signature_with_any_active_secret_counts() {
        let (old, new) = (secret("whsec_old"), secret("whsec_new"));
        let t = NOW.unix_timestamp();
        let body = b"{}";
        // The sender signs with both; a receiver that knows only one still accepts it.
        let both = header_value(&[new.clone(), old.clone()], t, body);
        assert_eq!(parse(&both).unwrap().signatures.len(), 2);
        assert_eq!(
            verify(Some(&both), body, std::slice::from_ref(&old), NOW),
            Ok(())
        );
        assert_eq!(
            verify(Some(&both), body, std::slice::from_ref(&new), NOW),
            Ok(())
        );
        // A receiver in its grace period accepts the old secret's signature alone.
        let old_only = header_value(std::slice::from_ref(&old), t, body);
        assert_eq!(
            verify(Some(&old_only), body, &[new.clone(), old], NOW),
            Ok(())
        );
        assert_eq!(
            verify(Some(&old_only), body, &[new], NOW),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused_before_any_hmac() {
        let sig = "a".repeat(64);
        for bad in [
            "",
            "t=",
            "v1=abc",
            &format!("v1={sig}"),
            &format!("t=abc,v1={sig}"),
            &format!("t=-5,v1={sig}"),
            &format!("t=1,t=2,v1={sig}"),
            "t=1",
            "t=1,v1=zz",
            &format!("t=1,v1={}", "a".repeat(62)),
            "t=1;v1=abc",
            &format!("t=1{}", format!(",v1={sig}").repeat(9)),
        ] {
            assert_eq!(parse(bad), Err(SignatureError::Malformed), "{bad:?}");
        }
        let ok = parse(&format!(" t=12 , v0=whatever, v1={sig}")).unwrap();
        assert_eq!(ok.timestamp, 12);
        assert_eq!(ok.signatures, vec![vec![0xaa; 32]]);
    }
}
