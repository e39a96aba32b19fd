//! Users as stored, and their presence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Timestamp;
use super::id::UserId;

/// Named string fields of a profile or a group.
pub type Fields = BTreeMap<String, String>;

/// A change to [`Fields`]: `Some` sets a field, `None` deletes it.
pub type FieldPatch = BTreeMap<String, Option<String>>;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The id.
    pub id: UserId,
    /// Profile fields.
    pub fields: Fields,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Whether a user has a live stream open, and when its last one closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// At least one stream (or long poll) is open, on any node.
    pub online: bool,
    /// When its last stream closed; `None` if it never had one.
    pub last_seen: Option<Timestamp>,
}
