//! The store's error, and how it becomes the engine's [`StoreError`].

use std::time::Duration;

use im_engine::StoreError;

/// What can go wrong in a [`RedisStore`](crate::RedisStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable (URL, prefix).
    #[error("invalid redis store configuration: {0}")]
    Config(String),
    /// Redis answered with an error, or the connection failed.
    #[error("redis failed")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time: it is down, restarting or overloaded.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The data was written by a format version this build does not read.
    #[error("unsupported stored format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found in Redis.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A value could not be encoded.
    #[error("could not encode a value")]
    Encode(#[source] serde_json::Error),
    /// A write lost every race for a record that others kept changing.
    #[error("{0}")]
    Contended(String),
}

/// The crate's result.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupt(what) => StoreError::Corrupt(what),
            Error::UnsupportedVersion { found, supported } => {
                StoreError::UnsupportedVersion { found, supported }
            }
            other => StoreError::backend(other),
        }
    }
}

/// A decoding failure of `what`.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meaningful_variants_survive_conversion() {
        let e: StoreError = Error::Corrupt("bad entry".into()).into();
        assert!(matches!(e, StoreError::Corrupt(m) if m == "bad entry"));
        let e: StoreError = Error::UnsupportedVersion {
            found: 9,
            supported: 1,
        }
        .into();
        assert!(matches!(
            e,
            StoreError::UnsupportedVersion {
                found: 9,
                supported: 1
            }
        ));
        let e: StoreError = Error::Timeout(Duration::from_secs(2)).into();
        assert!(matches!(e, StoreError::Backend(_)));
    }
}
