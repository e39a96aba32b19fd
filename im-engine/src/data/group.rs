//! Groups and their members as stored.

use serde::{Deserialize, Serialize};

use super::Timestamp;
use super::id::{GroupId, UserId};
use super::user::Fields;

/// Who may add a user to a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum JoinPolicy {
    /// Any user may join by itself.
    Open,
    /// Only the owner (or an admin) adds members. The default.
    #[default]
    Invite,
    /// A user asks to join; the owner (or an admin) approves.
    Approval,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The creator: may update the group and add or remove anyone; cannot leave.
    Owner,
    /// Any other member.
    Member,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The id.
    pub id: GroupId,
    /// The user who created it.
    pub owner: UserId,
    /// Group fields.
    pub fields: Fields,
    /// The join policy.
    pub join: JoinPolicy,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's user id.
    pub id: UserId,
    /// Its role.
    pub role: Role,
    /// When it joined.
    pub since: Timestamp,
}
