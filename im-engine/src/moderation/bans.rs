//! Bans: removing a member for good, until the ban is lifted.

use super::Marked;
use crate::data::{GroupId, UserId};
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::policy::{self, Action};
use crate::store::{Changes, Mark, MarkChange, Marks, MemberChange, Store};

impl<S: Store> Engine<S> {
    /// Fails with [`Error::Banned`] when `user` is banned from `group`.
    pub(crate) async fn refuse_banned(&self, group: &GroupId, user: &UserId) -> Result<(), Error> {
        let set = Marks::Bans(group.clone());
        match self.is_marked(&set, user).await? {
            true => Err(banned(group, user)),
            false => Ok(()),
        }
    }

    /// Bans `user` from a group (its owner, an admin): records the ban,
    /// then removes the member, so that from the ban's commit on no join
    /// of the user's commits and from the removal's on no message reaches
    /// it. Banning again changes nothing. Its join request goes too.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown group or user,
    /// [`Error::Forbidden`], [`Error::Conflict`] for the owner,
    /// [`Error::Store`].
    pub async fn ban(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<(), Error> {
        let group = self.require_group(id).await?;
        self.require_user(user).await?;
        policy::check(
            actor,
            Action::Ban {
                group: &group,
                user: Some(user),
            },
        )?;
        let set = Marks::Bans(id.clone());
        let now = self.now();
        let mut changes = Changes::default();
        if !self.is_marked(&set, user).await? {
            changes.marks.push((
                set,
                MarkChange::Put(Mark {
                    user: user.clone(),
                    since: now,
                }),
            ));
        }
        changes.marks.push((
            Marks::Requests(id.clone()),
            MarkChange::Remove(user.clone()),
        ));
        self.commit(&changes).await?;
        let update = self.member_update(&group, MemberChange::Remove(user.clone()));
        self.update_member(&update).await.map(drop)
    }

    /// Lifts a ban (the owner, an admin); lifting none changes nothing.
    ///
    /// # Errors
    ///
    /// As [`Engine::ban`].
    pub async fn unban(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<(), Error> {
        let group = self.require_group(id).await?;
        self.require_user(user).await?;
        policy::check(
            actor,
            Action::Ban {
                group: &group,
                user: None,
            },
        )?;
        let changes = Changes {
            marks: vec![(Marks::Bans(id.clone()), MarkChange::Remove(user.clone()))],
            ..Changes::default()
        };
        self.commit(&changes).await
    }

    /// A group's bans, newest first (the owner, an admin).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Store`].
    pub async fn bans(&self, actor: &Actor, id: &GroupId) -> Result<Vec<Marked>, Error> {
        let group = self.require_group(id).await?;
        policy::check(
            actor,
            Action::Ban {
                group: &group,
                user: None,
            },
        )?;
        let marks = self
            .store()
            .marks(&Marks::Bans(id.clone()))
            .await
            .map_err(Error::store)?;
        Ok(newest_first(marks))
    }
}

/// Marks as answered: newest first, ties by id.
pub(super) fn newest_first(mut marks: Vec<Mark>) -> Vec<Marked> {
    marks.sort_by(|a, b| (b.since, &a.user).cmp(&(a.since, &b.user)));
    marks.into_iter().map(Marked::from).collect()
}

/// The refusal of a banned user's join.
pub(crate) fn banned(group: &GroupId, user: &UserId) -> Error {
    Error::Banned(format!("{user} is banned from {group}"))
}
