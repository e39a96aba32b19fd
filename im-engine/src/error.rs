//! The engine's error: what went wrong, in terms a caller maps to a status.

/// Everything an engine operation can fail with.
///
/// Each variant but [`Error::Store`] is the caller's doing and changed
/// nothing; [`Error::kind`] groups them for callers that map errors to
/// statuses (HTTP: 400, 413, 404, 403, 409, 503).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A user, group or conversation id is malformed.
    #[error("{0}")]
    InvalidId(String),
    /// A field, query parameter or cursor is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// A message body or other input is over its configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The named user, group, conversation or message does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state (the owner leaving its
    /// group, a full group).
    #[error("{0}")]
    Conflict(String),
    /// `reply_to` names no message of the conversation (kind
    /// [`ErrorKind::Invalid`], code `invalid_reply`).
    #[error("{0}")]
    InvalidReply(String),
    /// The message is deleted: it takes no edit or reaction (kind
    /// [`ErrorKind::Conflict`], code `deleted`).
    #[error("{0}")]
    Deleted(String),
    /// The message has as many reaction keys as it may (kind
    /// [`ErrorKind::Conflict`], code `too_many_reactions`).
    #[error("{0}")]
    TooManyReactions(String),
    /// A direct message between a user and one who blocks it, or whom it
    /// blocks (kind [`ErrorKind::Forbidden`], code `blocked`).
    #[error("{0}")]
    Blocked(String),
    /// The user is banned from the group (kind [`ErrorKind::Forbidden`],
    /// code `banned`).
    #[error("{0}")]
    Banned(String),
    /// The caller is suspended (kind [`ErrorKind::Forbidden`], code
    /// `suspended`).
    #[error("{0}")]
    Suspended(String),
    /// The user owns a group, which must pass to another member first (kind
    /// [`ErrorKind::Conflict`], code `owner`).
    #[error("{0}")]
    Owner(String),
    /// The host's before-send hook refused the message (kind
    /// [`ErrorKind::Forbidden`], code: the hook's own).
    #[error("{message}")]
    Refused {
        /// The hook's code: lowercase snake_case, 1 to 64 characters.
        code: String,
        /// The hook's message.
        message: String,
    },
    /// The store failed; the operation may or may not have been applied only
    /// when the store says so (a send is atomic: it landed whole or not at all).
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

/// The class of an [`Error`], for mapping to statuses and for comparing with
/// the reference model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrorKind {
    InvalidId,
    Invalid,
    TooLarge,
    NotFound,
    Forbidden,
    Conflict,
    Store,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidId(_) => ErrorKind::InvalidId,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::TooLarge(_) => ErrorKind::TooLarge,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Forbidden(_)
            | Self::Blocked(_)
            | Self::Banned(_)
            | Self::Suspended(_)
            | Self::Refused { .. } => ErrorKind::Forbidden,
            Self::Conflict(_) | Self::Deleted(_) | Self::TooManyReactions(_) | Self::Owner(_) => {
                ErrorKind::Conflict
            }
            Self::InvalidReply(_) => ErrorKind::Invalid,
            Self::Store(_) => ErrorKind::Store,
        }
    }

    /// The machine-readable code of the errors that have one of their own;
    /// `None` for the others, which their [`kind`](Self::kind) names.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            Self::InvalidReply(_) => Some("invalid_reply"),
            Self::Deleted(_) => Some("deleted"),
            Self::TooManyReactions(_) => Some("too_many_reactions"),
            Self::Blocked(_) => Some("blocked"),
            Self::Banned(_) => Some("banned"),
            Self::Suspended(_) => Some("suspended"),
            Self::Owner(_) => Some("owner"),
            _ => None,
        }
    }

    pub(crate) fn store(e: impl Into<StoreError>) -> Self {
        Self::Store(e.into())
    }
}

/// The error every store converts into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The data was written by a format version this build does not read.
    #[error("unsupported stored format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found in the store.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The backend failed (I/O, connection, timeout).
    #[error("store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// Shows an error and its sources, one after the other, separated by `: `
/// (each error's own message does not repeat its source's, so this is how
/// the whole cause reaches a log line).
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_shows_every_source() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&e).to_string(), "outer: inner");
    }
}
