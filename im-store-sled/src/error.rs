//! The store's error, and how it becomes the engine's [`StoreError`].

use std::path::PathBuf;

use im_engine::{ErrorChain, StoreError};

/// What can go wrong in a [`SledStore`](crate::SledStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process (or another open store in this one) holds the
    /// database's lock.
    #[error("database at {} is in use by another process", path.display())]
    Locked {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// sled refused to open the database.
    #[error("could not open the database at {}", path.display())]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// sled panicked while opening the database, which it does on some
    /// kinds of damaged files.
    #[error("sled panicked while opening the database at {}: it is likely damaged", path.display())]
    OpenPanicked {
        /// The database directory.
        path: PathBuf,
    },
    /// A read or write failed.
    #[error("sled failed")]
    Sled(#[from] sled::Error),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a format version this build does not read.
    #[error("unsupported stored format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found in the database.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A value could not be encoded.
    #[error("could not encode a value")]
    Encode(#[source] serde_json::Error),
    /// The store is shutting down: its flusher no longer answers.
    #[error("the store is closed")]
    Closed,
    /// A blocking task running a write failed.
    #[error("a store task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The flusher thread could not be started.
    #[error("could not start the flusher thread")]
    Thread(#[source] std::io::Error),
    /// [`SledStore::close`](crate::SledStore::close) gave up waiting for
    /// sled to release the database's lock.
    #[error("timed out waiting for the database at {} to close", path.display())]
    CloseTimeout {
        /// The database directory.
        path: PathBuf,
    },
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
            Error::Sled(sled::Error::Corruption { .. })
            | Error::Open {
                source: sled::Error::Corruption { .. },
                ..
            }
            | Error::OpenPanicked { .. } => StoreError::Corrupt(ErrorChain(&e).to_string()),
            other => StoreError::backend(other),
        }
    }
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
        let e: StoreError = Error::Sled(sled::Error::Corruption { at: None, bt: () }).into();
        assert!(matches!(e, StoreError::Corrupt(_)));
        let e: StoreError = Error::Closed.into();
        assert!(matches!(e, StoreError::Backend(_)));
    }
}
