//! Passwords: kept only as Argon2id hashes (the `argon2` crate's default
//! parameters, the ones RFC 9106 and OWASP recommend: 19 MiB, two passes,
//! one lane), never shown.
//!
//! A hash costs tens of milliseconds of CPU and 19 MiB of memory on
//! purpose, so it runs on Tokio's blocking threads, never on the async
//! workers that serve the event streams, and at most one per core at once:
//! a flood of logins waits in line instead of taking every blocking thread
//! and a gigabyte of memory.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash as Phc, Version};
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

/// What a new Argon2id hash costs. The default is the `argon2` crate's
/// (19 MiB, two passes, one lane: RFC 9106's and OWASP's recommendation);
/// lower it only for tests. A stored hash is checked with the cost it was
/// made with, so raising it later keeps old passwords working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory, in KiB (at least 8 per lane).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub passes: u32,
    /// Lanes (at least 1).
    pub lanes: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            passes: Params::DEFAULT_T_COST,
            lanes: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordCost {
    /// The hasher of this cost; the crate's default where the cost is out
    /// of the ranges Argon2 allows.
    fn argon2(self) -> Argon2<'static> {
        let params =
            Params::new(self.memory_kib, self.passes, self.lanes, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

fn hash_now(
    argon2: &Argon2<'_>,
    password: &Password,
) -> Result<PasswordHash, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    let phc = argon2.hash_password(password.bytes(), &salt)?;
    Ok(PasswordHash(phc.to_string()))
}

/// Whether `password` is the one `hash` was made of.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when the stored hash is not a PHC string.
fn verify_now(
    argon2: &Argon2<'_>,
    password: &Password,
    hash: &PasswordHash,
) -> Result<bool, StoreError> {
    let phc = Phc::new(&hash.0)
        .map_err(|_| StoreError::Corrupt("a stored password hash is not a PHC string".into()))?;
    // The parameters come from the stored string, so hashes made with other
    // parameters (stronger ones, later) still verify.
    Ok(argon2.verify_password(password.bytes(), &phc).is_ok())
}

/// Hashes and checks passwords off the async workers, at most one per core
/// at once.
#[derive(Debug)]
pub(crate) struct Hasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A hash of no one's password, of the same cost as every new one:
    /// checking a password against it takes as long as against a real one,
    /// so an unknown user and a wrong password are answered alike. Made
    /// on first use.
    dummy: OnceLock<PasswordHash>,
}

impl Hasher {
    pub(crate) fn new(cost: PasswordCost) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            argon2: cost.argon2(),
            permits: Arc::new(Semaphore::new(cores)),
            dummy: OnceLock::new(),
        }
    }

    /// Runs `work` on a blocking thread once a permit is free. The work
    /// holds the permit: a caller that stops waiting (a client gone before
    /// the answer) does not stop the hash, so its permit stays taken until
    /// the hash is done, and clients that ask and hang up cannot run more
    /// hashes at once than there are permits.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::store(StoreError::backend(e)))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| Error::store(StoreError::backend(e)))
    }

    /// A new hash of `password`, with a fresh random salt.
    pub(crate) async fn hash(&self, password: &Password) -> Result<PasswordHash, Error> {
        let (argon2, password) = (self.argon2.clone(), password.clone());
        self.run(move || hash_now(&argon2, &password))
            .await?
            .map_err(|e| Error::store(StoreError::backend(e)))
    }

    async fn dummy(&self) -> Result<PasswordHash, Error> {
        if let Some(dummy) = self.dummy.get() {
            return Ok(dummy.clone());
        }
        let random: [u8; 16] = rand::random();
        let made = self.hash(&Password(format!("{random:x?}"))).await?;
        // Two first uses at once make two; either will do.
        Ok(self.dummy.get_or_init(|| made).clone())
    }

    /// Whether `password` matches `hash`; against a dummy hash, in the same
    /// time, when there is none (no such user, or no password set), and
    /// then always `false`.
    pub(crate) async fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, Error> {
        let (argon2, password) = (self.argon2.clone(), password.clone());
        let (hash, real) = match hash {
            Some(h) => (h.clone(), true),
            None => (self.dummy().await?, false),
        };
        let matches = self
            .run(move || verify_now(&argon2, &password, &hash))
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
        let hasher = Hasher::new(PasswordCost::default());
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

    /// A hash whose caller stopped waiting keeps its permit until it is
    /// done: the next one waits for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_hash_keeps_its_permit_until_done() {
        use std::time::{Duration, Instant};
        let hasher = Hasher::new(PasswordCost::default());
        // One permit left: the others stay taken for the test's time.
        let others = u32::try_from(hasher.permits.available_permits() - 1).unwrap();
        let _others = Arc::clone(&hasher.permits)
            .acquire_many_owned(others)
            .await
            .unwrap();
        let done_at = Arc::new(OnceLock::new());
        let (started, mut running) = tokio::sync::oneshot::channel();
        let done = Arc::clone(&done_at);
        let slow = hasher.run(move || {
            started.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            done.set(Instant::now()).unwrap();
        });
        tokio::select! {
            _ = slow => panic!("the slow hash ended before it was abandoned"),
            _ = &mut running => {}
        }
        // `slow` is dropped: its caller stopped waiting, the work goes on.
        let next_started = hasher.run(Instant::now).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let first_done = loop {
            if let Some(at) = done_at.get() {
                break *at;
            }
            assert!(Instant::now() < deadline, "the abandoned hash never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            next_started >= first_done,
            "the next hash started {:?} before the abandoned one was done",
            first_done - next_started
        );
    }

    #[tokio::test]
    async fn a_hash_of_another_cost_still_checks() {
        let cheap = PasswordCost {
            memory_kib: 64,
            passes: 1,
            lanes: 1,
        };
        let pw = Password::new("correct horse");
        let hash = Hasher::new(cheap).hash(&pw).await.unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{}",
            hash.0
        );
        let hasher = Hasher::new(PasswordCost::default());
        assert!(hasher.verify(&pw, Some(&hash)).await.unwrap());
    }

    #[test]
    fn debug_shows_neither_password_nor_hash() {
        let pw = Password::new("hunter2hunter2");
        let hash = hash_now(&PasswordCost::default().argon2(), &pw).unwrap();
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
        let argon2 = PasswordCost::default().argon2();
        assert!(matches!(
            verify_now(&argon2, &Password::new("whatever1"), &bad),
            Err(StoreError::Corrupt(_))
        ));
    }
}
