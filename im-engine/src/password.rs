//! Passwords: kept only as Argon2id hashes (the `argon2` crate's default
//! parameters, the ones RFC 9106 and OWASP recommend: 19 MiB, two passes,
//! one lane), never shown.
//!
//! A hash costs tens of milliseconds of CPU and 19 MiB of memory on
//! purpose, so it runs on Tokio's blocking threads, never on the async
//! workers that serve the event streams, and at most one per core at once:
//! a flood of logins waits in line instead of taking every blocking thread
//! and a gigabyte of memory.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as Phc};
use tokio::sync::Semaphore;

use crate::data::PasswordHash;
use crate::error::{Error, StoreError};

/// The shortest password, in bytes.
pub const MIN_PASSWORD: usize = 8;
/// The longest password, in bytes: longer ones are refused before any
/// hashing, so a huge one costs nothing.
pub const MAX_PASSWORD: usize = 1024;

/// A password as a caller gave it. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Password(String);

impl Password {
    /// Wraps a password; its length is checked where it is used.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// Whether it is 8 to 1024 bytes long: the only passwords that can be
    /// set, and so the only ones that can match.
    pub fn is_acceptable(&self) -> bool {
        (MIN_PASSWORD..=MAX_PASSWORD).contains(&self.0.len())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A hash of no one's password, of the same parameters as every stored
/// one: checking a password against it takes as long as against a real
/// one, so an unknown user and a wrong password are answered alike.
static DUMMY: LazyLock<PasswordHash> = LazyLock::new(|| {
    let random: [u8; 16] = rand::random();
    hash_now(&Password(format!("{random:x?}"))).expect("the default parameters hash anything")
});

fn hash_now(password: &Password) -> Result<PasswordHash, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    let phc = Argon2::default().hash_password(password.bytes(), &salt)?;
    Ok(PasswordHash(phc.to_string()))
}

/// Whether `password` is the one `hash` was made of.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when the stored hash is not a PHC string.
fn verify_now(password: &Password, hash: &PasswordHash) -> Result<bool, StoreError> {
    let phc = Phc::new(&hash.0)
        .map_err(|_| StoreError::Corrupt("a stored password hash is not a PHC string".into()))?;
    // The parameters come from the stored string, so hashes made with other
    // parameters (stronger ones, later) still verify.
    Ok(Argon2::default()
        .verify_password(password.bytes(), &phc)
        .is_ok())
}

/// Hashes and checks passwords off the async workers, at most one per core
/// at once.
#[derive(Debug)]
pub(crate) struct Hasher {
    permits: Semaphore,
}

impl Hasher {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            permits: Semaphore::new(cores),
        }
    }

    /// Runs `work` on a blocking thread once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::store(StoreError::backend(e)))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::store(StoreError::backend(e)))
    }

    /// A new hash of `password`, with a fresh random salt.
    pub(crate) async fn hash(&self, password: &Password) -> Result<PasswordHash, Error> {
        let password = password.clone();
        self.run(move || hash_now(&password))
            .await?
            .map_err(|e| Error::store(StoreError::backend(e)))
    }

    /// Whether `password` matches `hash`; against a dummy hash, in the same
    /// time, when there is none (no such user, or no password set), and
    /// then always `false`.
    pub(crate) async fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, Error> {
        let password = password.clone();
        let (hash, real) = match hash {
            Some(h) => (h.clone(), true),
            None => (DUMMY.clone(), false),
        };
        let matches = self
            .run(move || verify_now(&password, &hash))
            .await?
            .map_err(Error::store)?;
        Ok(matches && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_argon2id_and_checks_only_its_password() {
        let hasher = Hasher::new();
        let pw = Password::new("correct horse");
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.0
        );
        assert!(hasher.verify(&pw, Some(&hash)).await.unwrap());
        let wrong = Password::new("correct horsf");
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
        // Salted: the same password hashes differently each time.
        assert_ne!(hasher.hash(&pw).await.unwrap(), hash);
        // No hash: never a match, even for the dummy's own password.
        assert!(!hasher.verify(&pw, None).await.unwrap());
    }

    #[test]
    fn debug_shows_neither_password_nor_hash() {
        let pw = Password::new("hunter2hunter2");
        let hash = hash_now(&pw).unwrap();
        let shown = format!("{pw:?} {hash:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("argon2"),
            "{shown}"
        );
    }

    #[test]
    fn lengths_are_8_to_1024_bytes() {
        assert!(!Password::new("1234567").is_acceptable());
        assert!(Password::new("12345678").is_acceptable());
        assert!(Password::new("x".repeat(1024)).is_acceptable());
        assert!(!Password::new("x".repeat(1025)).is_acceptable());
    }

    #[test]
    fn a_stored_hash_that_is_no_phc_string_is_corrupt_data() {
        let bad = PasswordHash("plain text".into());
        assert!(matches!(
            verify_now(&Password::new("whatever1"), &bad),
            Err(StoreError::Corrupt(_))
        ));
    }
}
