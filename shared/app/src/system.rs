//! The real clock and the OS random source.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use domain::Secret;
use rand::RngCore;
use time::OffsetDateTime;

use crate::ports::{Clock, Ids};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

pub struct RandomIds;

impl Ids for RandomIds {
    fn ulid(&self) -> String {
        ulid::Ulid::new().to_string()
    }

    fn secret(&self) -> Secret<String> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Secret::new(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn random_bytes(&self, len: usize) -> Secret<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        Secret::new(bytes)
    }
}

/// A clock stopped at one instant: for tests, and for a tick run "as if at" a given time.
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A clock that is moved by hand: tests that cross days and month ends.
pub struct ManualClock(std::sync::Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().expect("the clock's lock is never poisoned") = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("the clock's lock is never poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_and_distinct() {
        let (a, b) = (RandomIds.secret(), RandomIds.secret());
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
    }

    #[test]
    fn ulids_sort_by_time() {
        let a = RandomIds.ulid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = RandomIds.ulid();
        assert!(a < b);
    }
}
