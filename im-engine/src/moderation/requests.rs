//! Join requests: asking to join an `approval` group, and what the owner
//! and the requester do with a request.

use super::JoinRequest;
use crate::data::{Event, Group, GroupId, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::policy::{self, Action};
use crate::store::{Changes, Mark, MarkChange, Marks, Store};

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The user is a member (now, or already).
    Member,
    /// The group's `join` is `approval`: the user's request is recorded
    /// (now, or already), and its owner has heard of it.
    Requested,
}

impl<S: Store> Engine<S> {
    /// Records `user`'s request to join `group`, with a `join_request`
    /// event for the owner in the same commit; a request already there
    /// changes nothing.
    pub(crate) async fn request_join(
        &self,
        actor: &Actor,
        group: &Group,
        user: &UserId,
    ) -> Result<Joined, Error> {
        policy::check(actor, Action::RequestJoin { group, user })?;
        self.refuse_banned(&group.id, user).await?;
        let set = Marks::Requests(group.id.clone());
        if self.is_marked(&set, user).await? {
            return Ok(Joined::Requested);
        }
        let now = self.now();
        let event = Event::JoinRequest {
            group: group.id.clone(),
            user: user.clone(),
        };
        let changes = Changes {
            events: vec![(group.owner.clone(), now, event)],
            marks: vec![(
                set,
                MarkChange::Put(Mark {
                    user: user.clone(),
                    since: now,
                }),
            )],
            trim: self.feed_trim(),
            ..Changes::default()
        };
        self.commit(&changes).await?;
        Ok(Joined::Requested)
    }

    /// Removes `user`'s request to join `group`, if there is one.
    pub(crate) async fn clear_request(&self, group: &GroupId, user: &UserId) -> Result<(), Error> {
        let set = Marks::Requests(group.clone());
        if !self.is_marked(&set, user).await? {
            return Ok(());
        }
        let changes = Changes {
            marks: vec![(set, MarkChange::Remove(user.clone()))],
            ..Changes::default()
        };
        self.commit(&changes).await
    }

    /// A group's pending join requests, oldest first; for its owner and
    /// admins.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Store`].
    pub async fn requests(&self, actor: &Actor, id: &GroupId) -> Result<Vec<JoinRequest>, Error> {
        let group = self.require_group(id).await?;
        policy::check(actor, Action::ListRequests { group: &group })?;
        let mut marks = self
            .store()
            .marks(&Marks::Requests(id.clone()))
            .await
            .map_err(Error::store)?;
        marks.sort_by(|a, b| (a.since, &a.user).cmp(&(b.since, &b.user)));
        Ok(marks.into_iter().map(JoinRequest::from).collect())
    }

    /// Withdraws `user`'s request to join a group: the requester, the
    /// owner or an admin. Withdrawing none changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown group or user,
    /// [`Error::Forbidden`], [`Error::Store`].
    pub async fn withdraw(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<(), Error> {
        let group = self.require_group(id).await?;
        self.require_user(user).await?;
        policy::check(
            actor,
            Action::Withdraw {
                group: &group,
                user,
            },
        )?;
        self.clear_request(id, user).await
    }
}
