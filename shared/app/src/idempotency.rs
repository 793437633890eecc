//! Idempotency records: one `Idempotency-Key` and the same request give one effect and the same
//! response, whatever the retries (Stripe's model; research/reliability.md 3.1, architecture.md 3.2).

use sha2::{Digest, Sha256};
use time::Duration;

/// How long a claim locks its key while the first request works. A claim older than this was
/// abandoned (the function died) and may be taken over by a retry of the same request.
pub const IN_PROGRESS_LOCK: Duration = Duration::seconds(60);
/// How long a completed response is replayed. People retry later than machines do.
pub const RETENTION: Duration = Duration::hours(24);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key must be 1 to 255 printable ASCII characters")]
pub struct BadIdempotencyKey;

/// A client's key within a scope (the org and the operation, e.g. `demo#pay-now`), so that two
/// orgs' clients choosing the same key never meet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
}

impl IdempotencyKey {
    pub fn new(scope: impl Into<String>, key: &str) -> Result<Self, BadIdempotencyKey> {
        let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(BadIdempotencyKey);
        }
        Ok(IdempotencyKey {
            scope: scope.into(),
            key: key.to_owned(),
        })
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What a stored response replays: the status and the exact bytes of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First request with this key: do the work, then `complete`.
    Fresh { resource_id: String },
    /// The key's first request was abandoned mid-way: carry on with the same resource (look up
    /// what the gateway did with it before charging again), then `complete`.
    TakenOver { resource_id: String },
    /// The same request was completed before: answer this, exactly.
    Replay(StoredResponse),
    /// The same request is being worked on right now: 409, try again shortly.
    InProgress,
    /// The key was used with a different request: 422.
    Mismatch,
}

/// A stable hash of a request's meaningful parts (a canonical form built by the use case).
/// Parts are length-prefixed so that ("ab","c") and ("a","bc") differ.
pub fn request_fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(IdempotencyKey::new("demo#pay-now", "3f2b-1e").is_ok());
        assert!(IdempotencyKey::new("s", "").is_err());
        assert!(IdempotencyKey::new("s", "has space").is_err());
        assert!(IdempotencyKey::new("s", &"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(
            request_fingerprint(&["ab", "c"]),
            request_fingerprint(&["a", "bc"])
        );
        assert_eq!(request_fingerprint(&["a"]), request_fingerprint(&["a"]));
    }
}
