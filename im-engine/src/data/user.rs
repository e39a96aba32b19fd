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
    /// Its password's hash, once one is set. Users stored before passwords
    /// existed read as having none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordHash>,
}

/// Whether a user has a live stream open, and when its last one closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// At least one stream (or long poll) is open, on any node.
    pub online: bool,
    /// When its last stream closed; `None` if it never had one.
    pub last_seen: Option<Timestamp>,
}

/// A password's Argon2id hash as stored: a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Its `Debug` does not
/// show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub(crate) String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}
