//! Authorization: every rule of who may do what, in one place.
//!
//! An operation gathers the facts a rule needs (does the user exist, is the
//! caller a member) and asks [`check`] whether its [`Actor`] may do the
//! [`Action`]; the answer is `Ok` or the [`Error::Forbidden`] (or, for the
//! owner leaving its group, [`Error::Conflict`]) the caller gets. What must
//! hold at the instant of a write (that a group's sender is still a member
//! when its message commits) the store checks again in that write: see
//! [`Recipients::Members`](crate::store::Recipients::Members).
//!
//! The rules, in the order [`check`] applies them:
//!
//! 1. An admin may do anything the rules below allow someone, but take part
//!    in a conversation it is no participant of: it reads any, and sends
//!    as a participant, but has no read cursor of its own there. A group's
//!    owner is never removed from it, by anyone (the group would have no
//!    owner; 409).
//! 2. Users: an admin creates them, suspends them and erases them; a user
//!    changes its own profile. Anyone reads a profile and a group. A
//!    suspended user may do nothing at all (checked before any rule).
//! 3. Groups: any user creates one and owns it; its owner updates it and
//!    hands it to another member.
//! 4. Members: a group's members list them. Its owner adds and removes
//!    anyone; a user adds itself to an open group, asks to join an
//!    `approval` group (its owner approves by adding it), withdraws its own
//!    request, and removes itself from any. The owner lists the requests,
//!    withdraws any, and bans and unbans users; nobody adds a banned user,
//!    which the store checks again at the join's commit.
//! 5. Conversations: a participant (one of a direct conversation's two
//!    users, a member of a group) reads, sends, reacts and moves its read
//!    cursor; only an admin sends as another user. A message's sender edits
//!    it; its sender or its group's owner deletes it (a participant still:
//!    a former member keeps no access).
//! 6. Contacts, blocks, the conversation list and the event feed are the
//!    caller's own: they name no one else's. While either of two users
//!    blocks the other, no direct message between them commits (the store
//!    checks it at the commit).
//! 7. The store: only an admin exports it whole or reads its firehose
//!    (every user's events).
//! 8. Passwords: a user sets its own, giving the one it replaces once one
//!    is set; an admin sets anyone's without it. Logging in needs no
//!    actor: whoever gives a user's password acts as that user, never as
//!    an admin.
//! 9. Private fields: a profile's fields named `_…` are shown only to the
//!    user itself and to admins.

use crate::data::{ConversationId, Group, GroupId, JoinPolicy, Message, UserId};
use crate::engine::Actor;
use crate::error::Error;

/// What an actor asks to do, with the facts the rules look at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action<'a> {
    /// Create `user` (when it does not `exist`) or change its profile.
    PutUser { user: &'a UserId, exists: bool },
    /// Update a group's fields or join policy.
    UpdateGroup { group: &'a Group },
    /// List a group's members; `member`: whether the actor is one.
    ListMembers { group: &'a GroupId, member: bool },
    /// Add `user` to a group.
    AddMember { group: &'a Group, user: &'a UserId },
    /// Remove `user` from a group.
    RemoveMember { group: &'a Group, user: &'a UserId },
    /// Ask to join an `approval` group as `user`.
    RequestJoin { group: &'a Group, user: &'a UserId },
    /// List a group's join requests.
    ListRequests { group: &'a Group },
    /// Withdraw `user`'s request to join a group.
    Withdraw { group: &'a Group, user: &'a UserId },
    /// Ban or unban `user`, or list the bans, of a group (`user` is `None`
    /// for the list).
    Ban {
        group: &'a Group,
        user: Option<&'a UserId>,
    },
    /// Suspend `user`, lift its suspension, or erase it.
    Administer { user: &'a UserId },
    /// Send a message as `from` (not yet knowing whether `from` takes part:
    /// see [`Action::Take`]).
    SendAs { from: &'a UserId },
    /// Take part in a conversation: send into it (as the sender), move
    /// one's read cursor. `participant`: whether the sender, or the user
    /// moving its cursor, is one.
    Take {
        conversation: &'a ConversationId,
        participant: bool,
    },
    /// Read a conversation's history or one of its messages.
    Read {
        conversation: &'a ConversationId,
        participant: bool,
    },
    /// Replace a message's body.
    Edit { message: &'a Message },
    /// Export the whole store.
    Export,
    /// Read the firehose, every user's events.
    Firehose,
    /// Delete a message; `group_owner`: its group's owner, for a group's.
    Delete {
        message: &'a Message,
        group_owner: Option<&'a UserId>,
    },
    /// Set `user`'s password. `old_matches`: whether the caller gave the
    /// password it replaces, when [`needs_old_password`] says it must.
    SetPassword { user: &'a UserId, old_matches: bool },
}

/// Whether `actor` may do `action`: `Ok`, or the error to answer.
///
/// # Errors
///
/// [`Error::Forbidden`], or [`Error::Conflict`] for the owner leaving its
/// group.
pub(crate) fn check(actor: &Actor, action: Action<'_>) -> Result<(), Error> {
    let me = &actor.user;
    // Rule 1 (but for taking part), then the rule of the action.
    let stands_in = actor.admin && !matches!(action, Action::Take { .. });
    let allowed = stands_in
        || match action {
            // Rule 2.
            Action::PutUser { user, exists } => exists && me == user,
            // Rule 3.
            Action::UpdateGroup { group } => group.owner == *me,
            // Rule 4.
            Action::ListMembers { member, .. } => member,
            Action::AddMember { group, user } => {
                group.owner == *me || (me == user && group.join == JoinPolicy::Open)
            }
            Action::RemoveMember { group, user } | Action::Withdraw { group, user } => {
                group.owner == *me || me == user
            }
            Action::RequestJoin { user, .. } => me == user,
            Action::ListRequests { group } | Action::Ban { group, .. } => group.owner == *me,
            Action::Administer { .. } => false,
            // Rule 5.
            Action::SendAs { from } => from == me,
            Action::Edit { message } => message.from == *me,
            Action::Delete {
                message,
                group_owner,
            } => message.from == *me || group_owner == Some(me),
            Action::Take { participant, .. } | Action::Read { participant, .. } => participant,
            // Rule 8.
            Action::SetPassword { user, old_matches } => me == user && old_matches,
            // Rule 7: no one but an admin, who stands in above.
            Action::Export | Action::Firehose => false,
        };
    if !allowed {
        return Err(forbidden(action));
    }
    // Rule 1's exception.
    if let Action::RemoveMember { group, user }
    | Action::Ban {
        group,
        user: Some(user),
    } = action
        && group.owner == *user
    {
        return Err(Error::Conflict(format!(
            "the owner cannot leave {}",
            group.id
        )));
    }
    Ok(())
}

/// Whether `actor` must give `user`'s current password to set a new one
/// (rule 8): the user itself once it has one. Asked before [`check`], so
/// that the costly check of the old password runs only when it counts.
pub(crate) fn needs_old_password(actor: &Actor, user: &UserId, has_password: bool) -> bool {
    !actor.admin && actor.user == *user && has_password
}

/// Whether `actor` sees `user`'s private fields, those named `_…` (rule 9).
pub(crate) fn sees_private_fields(actor: &Actor, user: &UserId) -> bool {
    actor.admin || actor.user == *user
}

/// Whether a profile field is private (rule 9).
pub(crate) fn is_private_field(name: &str) -> bool {
    name.starts_with('_')
}

/// The refusal of `action`, for a check the store made (a sender no longer
/// a member when its message commits).
pub(crate) fn forbidden(action: Action<'_>) -> Error {
    Error::Forbidden(match action {
        Action::PutUser { user, exists: true } => {
            format!("only {user} or an admin may change this profile")
        }
        Action::PutUser { exists: false, .. } => "only an admin may create users".into(),
        Action::UpdateGroup { group } => {
            format!("only the owner of {} or an admin may update it", group.id)
        }
        Action::ListMembers { group, .. } => format!("only members of {group} may list them"),
        Action::AddMember { group, .. } => {
            format!("only the owner of {} or an admin may add members", group.id)
        }
        Action::RemoveMember { group, .. } => format!(
            "only the owner of {} or an admin may remove others",
            group.id
        ),
        Action::RequestJoin { group, .. } => {
            format!("only the user itself may ask to join {}", group.id)
        }
        Action::ListRequests { group } => format!(
            "only the owner of {} or an admin may list its join requests",
            group.id
        ),
        Action::Withdraw { group, .. } => format!(
            "only the requester, the owner of {} or an admin may withdraw a request",
            group.id
        ),
        Action::Ban { group, .. } => {
            format!("only the owner of {} or an admin may ban", group.id)
        }
        Action::Administer { user } => {
            format!("only an admin may suspend or erase {user}")
        }
        Action::SendAs { .. } => "only an admin may send as another user".into(),
        Action::Edit { message } => format!(
            "only {} or an admin may edit message {} of {}",
            message.from, message.seq, message.conversation
        ),
        Action::Delete { message, .. } => format!(
            "only {}, the group's owner or an admin may delete message {} of {}",
            message.from, message.seq, message.conversation
        ),
        Action::Take { conversation, .. } | Action::Read { conversation, .. } => {
            format!("not a participant of {conversation}")
        }
        Action::SetPassword {
            old_matches: false, ..
        } => "old_password is missing or wrong".into(),
        Action::SetPassword { user, .. } => {
            format!("only {user} or an admin may set this password")
        }
        Action::Export => "only an admin may export the store".into(),
        Action::Firehose => "only an admin may read every user's events".into(),
    })
}
