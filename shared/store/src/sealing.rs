//! Secrets sealed at rest: AES-256-GCM under a key-encryption key from configuration
//! (`SEALING_KEY`, 32 bytes in base64), so that a copy of the table (a backup, an export, a
//! stray scan) holds no usable secret. Each sealed value is bound to the item it belongs to
//! (the associated data), so that a ciphertext moved to another org's item does not open.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use domain::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};

use app::ports::StoreError;

/// The format of what `seal` writes: a version byte, the 96-bit nonce, ciphertext and tag.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SEALING_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")]
pub struct BadSealingKey;

/// The key-encryption key. Debug shows only its id.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Arc<Aes256Gcm>,
    id: String,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey({})", self.id)
    }
}

impl SealingKey {
    /// From its base64 text (standard or URL-safe alphabet, padded or not).
    pub fn from_base64(text: &str) -> Result<SealingKey, BadSealingKey> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| BadSealingKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| BadSealingKey)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// From its 32 bytes (a KMS data key's plaintext, say): the caller wipes its copy after.
    pub fn from_bytes(bytes: &[u8; 32]) -> SealingKey {
        // The id names the key in stored items (which key sealed this?) without revealing it.
        let mut hash = Sha256::new();
        hash.update(b"paybridge-sealing-key-id\0");
        hash.update(bytes);
        SealingKey {
            cipher: Arc::new(Aes256Gcm::new(bytes.into())),
            id: hex::encode(&hash.finalize()[..8]),
        }
    }

    /// A new random key and its base64 text, to be kept where the configuration reads it.
    pub fn generate() -> (SealingKey, Secret<String>) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        (
            Self::from_bytes(&bytes),
            Secret::new(STANDARD.encode(bytes)),
        )
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` for the item named by `context`.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message of this size");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what `seal` wrote for the same `context`. Fails for another key, another
    /// context, or any changed byte.
    pub(crate) fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, StoreError> {
        let refused = || StoreError(format!("a sealed value of {context} does not open"));
        let (format, rest) = sealed.split_first().ok_or_else(refused)?;
        if *format != FORMAT || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let (key, text) = SealingKey::generate();
        let sealed = key.seal(b"whsec_abc", "ORG#demo/WHSEC#sandbox/whs_1");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"whsec_abc");
        assert_eq!(
            key.open(&sealed, "ORG#demo/WHSEC#sandbox/whs_1").unwrap(),
            b"whsec_abc"
        );
        // The same key from its text opens it; another key or another item does not.
        let again = SealingKey::from_base64(text.expose()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(again.open(&sealed, "ORG#demo/WHSEC#sandbox/whs_1").is_ok());
        assert!(key.open(&sealed, "ORG#acme/WHSEC#sandbox/whs_1").is_err());
        let (other, _) = SealingKey::generate();
        assert!(other.open(&sealed, "ORG#demo/WHSEC#sandbox/whs_1").is_err());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(key.open(&changed, "ORG#demo/WHSEC#sandbox/whs_1").is_err());
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(
            sealed,
            key.seal(b"whsec_abc", "ORG#demo/WHSEC#sandbox/whs_1")
        );
    }

    #[test]
    fn keys_are_32_bytes_of_base64_and_never_print() {
        assert!(SealingKey::from_base64("c2hvcnQ=").is_err());
        assert!(SealingKey::from_base64("not base64 at all!").is_err());
        let (key, text) = SealingKey::generate();
        assert!(SealingKey::from_base64(&format!("  {}\n", text.expose())).is_ok());
        let url_safe = URL_SAFE_NO_PAD.encode(STANDARD.decode(text.expose()).unwrap());
        assert_eq!(SealingKey::from_base64(&url_safe).unwrap().id(), key.id());
        assert_eq!(format!("{key:?}"), format!("SealingKey({})", key.id()));
        assert!(!format!("{key:?}").contains(text.expose()));
    }
}
