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

/// What a group record is: a group (messages fan out to its members'
/// feeds) or a room (messages are stored once and read by its members).
/// Both share one namespace of ids, members, bans and join rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum GroupKind {
    /// A group: up to thousands of members, every message in each feed.
    #[default]
    Group,
    /// A room: up to a million members, nothing written per member.
    Room,
}

impl GroupKind {
    /// Whether this is [`GroupKind::Group`] (which records do not write).
    pub fn is_group(&self) -> bool {
        *self == Self::Group
    }

    /// `"group"` or `"room"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Room => "room",
        }
    }
}

/// A group (or a room) as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The id.
    pub id: GroupId,
    /// A group or a room; records written before rooms have none.
    #[serde(default, skip_serializing_if = "GroupKind::is_group")]
    pub kind: GroupKind,
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
