//! Password hashing: Argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1), PHC strings.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use domain::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least 12 characters")]
    TooShort,
    #[error("the password must be at most 128 characters")]
    TooLong,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        n if n < 12 => Err(PasswordError::TooShort),
        n if n > 128 => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// Hashes a password that meets the policy into an Argon2id PHC string.
pub fn hash_password(password: &Secret<String>) -> Result<Secret<String>, PasswordError> {
    check_policy(password.expose())?;
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let phc = argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("Argon2 hashing with valid parameters does not fail")
        .to_string();
    Ok(Secret::new(phc))
}

/// Whether `password` matches the stored PHC string (constant time inside argon2).
pub fn verify_password(password: &str, phc: &Secret<String>) -> bool {
    PasswordHash::new(phc.expose())
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let pw = Secret::new("correct horse battery".to_owned());
        let a = hash_password(&pw).unwrap();
        let b = hash_password(&pw).unwrap();
        assert_ne!(a.expose(), b.expose(), "salted");
        assert!(a.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("wrong horse battery", &a));
        assert!(!verify_password("x", &Secret::new("not a phc".into())));
    }

    #[test]
    fn policy_is_enforced() {
        assert_eq!(
            hash_password(&Secret::new("short".into())).unwrap_err(),
            PasswordError::TooShort
        );
    }
}
