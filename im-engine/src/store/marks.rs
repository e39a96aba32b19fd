//! Marks: who asks to join a group, who is banned from it, whom a user
//! blocks, who is suspended. Each is a set of users with the time they were
//! marked, which the store keeps beside what it concerns and checks itself
//! where a write must see it at its commit: a ban at a join
//! ([`Updated::Banned`](super::Updated::Banned)), a block at a direct send
//! ([`Sent::Blocked`](super::Sent::Blocked)).

use serde::{Deserialize, Serialize};

use crate::data::{GroupId, Timestamp, UserId};

/// One set of marked users. In an export: `{"requests": "<gid>"}`,
/// `{"bans": "<gid>"}`, `{"blocks": "<uid>"}` or `"suspended"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marks {
    /// Users asking to join this group (its `join` is `approval`).
    Requests(GroupId),
    /// Users banned from this group: a join of theirs is refused at its
    /// commit.
    Bans(GroupId),
    /// Users this user blocks: no direct message between the two commits.
    Blocks(UserId),
    /// Suspended users, one set for the store.
    Suspended,
}

/// A marked user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Who.
    pub user: UserId,
    /// Since when.
    pub since: Timestamp,
}

/// A change to one set of marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkChange {
    /// Mark the user (keeping the first `since` if it is marked already is
    /// the engine's business: a store replaces it).
    Put(Mark),
    /// Unmark the user, if marked.
    Remove(UserId),
}
