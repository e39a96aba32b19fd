//! Rooms: conversations of any size. A room is a group record of kind
//! [`GroupKind::Room`] (same ids, owner, fields, join policy `open` or
//! `invite`, members and bans), but its messages are stored once, in its
//! log: no member's feed or index is written by a send, an edit, a delete
//! or a reaction. A member's read cursor is its index entry for the room,
//! written when it joins and when it reads or sends; the conversation list
//! works out a room's `last` and `unread` when it is read.
//!
//! A join or leave is two writes: the member set (the room's, where sends
//! check membership), then the member's entry (the member's own). Each
//! step is repeated harmlessly, so a join or leave that failed in between
//! is repaired by running it again.

use crate::data::{
    ConvEntry, ConversationId, FieldPatch, GroupId, GroupKind, JoinPolicy, Member, UserId,
};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::group::GroupView;
use crate::page::{ListQuery, Page};
use crate::store::{Changes, EntryChange, Store};

impl<S: Store> Engine<S> {
    /// Creates a room owned by the caller, or updates one (its owner or an
    /// admin), as [`Engine::put_group`] does for groups.
    ///
    /// # Errors
    ///
    /// As [`Engine::put_group`]; [`Error::Invalid`] for the `approval`
    /// policy, [`Error::Conflict`] when a group has the id or the caller is
    /// in too many rooms.
    pub async fn put_room(
        &self,
        actor: &Actor,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
    ) -> Result<(GroupView, bool), Error> {
        self.put_space(actor, GroupKind::Room, id, patch, join)
            .await
    }

    /// Updates a room as [`Engine::put_room`] does, then, when `owner` is
    /// given, hands it to that member, as [`Engine::update_group`] does.
    ///
    /// # Errors
    ///
    /// Those of [`Engine::put_room`], and [`Error::Conflict`] when `owner`
    /// is no member.
    pub async fn update_room(
        &self,
        actor: &Actor,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
        owner: Option<&UserId>,
    ) -> Result<(GroupView, bool), Error> {
        self.update_space(actor, GroupKind::Room, id, patch, join, owner)
            .await
    }

    /// A room, with its member count; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn room(&self, actor: &Actor, id: &GroupId) -> Result<GroupView, Error> {
        let _ = actor; // Anyone reads a room, as a group (policy rule 2).
        self.space(GroupKind::Room, id).await
    }

    /// A page of a room's members, by user id; for members and admins.
    ///
    /// # Errors
    ///
    /// As [`Engine::members`].
    pub async fn room_members(
        &self,
        actor: &Actor,
        id: &GroupId,
        query: &ListQuery,
    ) -> Result<Page<Member>, Error> {
        self.space_members(actor, GroupKind::Room, id, query).await
    }

    /// Adds `user` to a room: the user itself when it is open, its owner or
    /// an admin always. Adding a member again changes nothing (and writes
    /// its entry if an earlier join stopped before it).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Banned`],
    /// [`Error::Conflict`] when the room is full or `user` is in
    /// [`Limits::rooms_per_user`](crate::Limits::rooms_per_user) rooms,
    /// [`Error::Store`].
    pub async fn join_room(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<(), Error> {
        let room = self.require_space(GroupKind::Room, id).await?;
        self.require_user(user).await?;
        let conversation = ConversationId::room(id.clone());
        let entry = self
            .store()
            .entry(user, &conversation)
            .await
            .map_err(Error::store)?;
        if entry.is_none() {
            self.refuse_too_many_rooms(user).await?;
        }
        self.add_member(actor, &room, user).await?;
        if entry.is_none() {
            // After the member: a cursor at the log's head then counts
            // nothing from before the join as unread.
            let last = self
                .store()
                .last_seq(&conversation)
                .await
                .map_err(Error::store)?;
            let changes = Changes {
                entries: vec![(
                    user.clone(),
                    EntryChange::Put(ConvEntry::joined(conversation, last, self.now())),
                )],
                ..Changes::default()
            };
            self.commit(&changes).await?;
        }
        Ok(())
    }

    /// Removes `user` from a room: the user itself, its owner or an admin.
    /// Removing a non-member changes nothing (but its entry, if an earlier
    /// leave stopped before it).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Conflict`] for
    /// the owner, [`Error::Store`].
    pub async fn leave_room(
        &self,
        actor: &Actor,
        id: &GroupId,
        user: &UserId,
    ) -> Result<(), Error> {
        let room = self.require_space(GroupKind::Room, id).await?;
        self.require_user(user).await?;
        self.remove_member(actor, &room, user).await?;
        self.publish_room_left(id, user).await;
        let changes = Changes {
            entries: vec![(
                user.clone(),
                EntryChange::Remove(ConversationId::room(id.clone())),
            )],
            ..Changes::default()
        };
        self.commit(&changes).await
    }

    /// Fails with [`Error::Conflict`] when `user` is in as many rooms as
    /// [`Limits::rooms_per_user`](crate::Limits::rooms_per_user) allows.
    pub(crate) async fn refuse_too_many_rooms(&self, user: &UserId) -> Result<(), Error> {
        let entries = self.store().entries(user).await.map_err(Error::store)?;
        let rooms = entries
            .iter()
            .filter(|e| matches!(e.conversation, ConversationId::Room(_)))
            .count();
        let max = self.limits().rooms_per_user;
        if rooms >= max {
            return Err(Error::Conflict(format!(
                "{user} is in {max} rooms already, the most allowed"
            )));
        }
        Ok(())
    }

    /// After a room message `seq` by `from` committed: raises the sender's
    /// cursor (its own write: the room's log and the user's entry may live
    /// apart, as on a Redis Cluster). A failure here leaves the sender's
    /// own message unread to it, nothing worse.
    pub(crate) async fn room_sent(
        &self,
        from: &UserId,
        conversation: &ConversationId,
        seq: crate::Seq,
    ) -> Result<(), Error> {
        let changes = Changes {
            entries: vec![(
                from.clone(),
                EntryChange::Read {
                    conversation: conversation.clone(),
                    seq,
                },
            )],
            ..Changes::default()
        };
        self.commit(&changes).await
    }
}
