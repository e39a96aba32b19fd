//! Contacts as stored.

use serde::{Deserialize, Serialize};

use super::Timestamp;
use super::id::UserId;

/// A contact as stored: who, since when, and in which order it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The contact's user id.
    pub id: UserId,
    /// When it was added.
    pub since: Timestamp,
    /// One more than the highest `order` among the owner's contacts when
    /// it was added, so that links made within one millisecond still list
    /// newest first (0 for contacts stored before it existed).
    #[serde(default)]
    pub order: u64,
}

impl Contact {
    /// Newest link first: by `since`, then `order`, descending; ties by id.
    pub fn newest_first(a: &Self, b: &Self) -> std::cmp::Ordering {
        (b.since, b.order, &a.id).cmp(&(a.since, a.order, &b.id))
    }
}
