//! Groups: creation, fields, the join policy, members and their roles.

use serde::Serialize;

use crate::data::{
    ConvEntry, Event, FieldPatch, Fields, Group, GroupId, JoinPolicy, Member, Membership, Role,
    Timestamp, UserId,
};
use crate::engine::{Actor, Engine, page_limit};
use crate::error::Error;
use crate::moderation::{Joined, banned};
use crate::page::{self, LIST_PAGE_DEFAULT, LIST_PAGE_MAX, ListQuery, Page};
use crate::policy::{self, Action};
use crate::store::{Changes, EntryChange, MemberChange, MemberUpdate, Store, Updated};
use crate::user::{apply_patch, check_patch};

/// A group as answered, with its member count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The id.
    pub id: GroupId,
    /// The owner.
    pub owner: UserId,
    /// Group fields.
    pub fields: Fields,
    /// The join policy.
    pub join: JoinPolicy,
    /// How many members it has.
    pub members: usize,
    /// When it was created.
    pub created_at: Timestamp,
}

impl<S: Store> Engine<S> {
    pub(crate) async fn require_group(&self, id: &GroupId) -> Result<Group, Error> {
        self.store()
            .group(id)
            .await
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound(format!("group {id}")))
    }

    /// Creates a group owned by the caller, or updates one (its owner or an
    /// admin): fields are merged, `join` replaced when given. Answers the
    /// group and whether it was created.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad patch, [`Error::NotFound`] when the
    /// caller does not exist, [`Error::Forbidden`], [`Error::Store`].
    pub async fn put_group(
        &self,
        actor: &Actor,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
    ) -> Result<(GroupView, bool), Error> {
        check_patch(&patch, self.limits())?;
        let existing = self.store().group(id).await.map_err(Error::store)?;
        let now = self.now();
        let mut changes = Changes {
            trim: self.feed_trim(),
            ..Changes::default()
        };
        let (mut group, created) = match existing {
            Some(group) => {
                policy::check(actor, Action::UpdateGroup { group: &group })?;
                (group, false)
            }
            None => {
                self.require_user(&actor.user).await?;
                let owner = Member {
                    id: actor.user.clone(),
                    role: Role::Owner,
                    since: now,
                };
                let group = Group {
                    id: id.clone(),
                    owner: owner.id.clone(),
                    fields: Fields::new(),
                    join: JoinPolicy::default(),
                    created_at: now,
                };
                changes.members.push((id.clone(), MemberChange::Put(owner)));
                changes.entries.push((
                    actor.user.clone(),
                    EntryChange::Put(ConvEntry::joined(id, 0, now)),
                ));
                changes.events.push((
                    actor.user.clone(),
                    now,
                    Event::member(id, &actor.user, Membership::Joined),
                ));
                (group, true)
            }
        };
        apply_patch(&mut group.fields, patch, self.limits())?;
        if let Some(join) = join {
            group.join = join;
        }
        changes.groups.push(group);
        self.commit(&changes).await?;
        Ok((self.group(actor, id).await?, created))
    }

    /// A group, with its member count; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn group(&self, actor: &Actor, id: &GroupId) -> Result<GroupView, Error> {
        let _ = actor; // Anyone reads a group (policy rule 2).
        let g = self.require_group(id).await?;
        let members = self.store().members(id).await.map_err(Error::store)?.len();
        Ok(GroupView {
            id: g.id,
            owner: g.owner,
            fields: g.fields,
            join: g.join,
            members,
            created_at: g.created_at,
        })
    }

    /// A page of a group's members, by user id; for members and admins.
    /// Reads only the page where the store can ([`Store::members_after`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Invalid`] for a
    /// bad cursor or limit, [`Error::Store`].
    pub async fn members(
        &self,
        actor: &Actor,
        id: &GroupId,
        query: &ListQuery,
    ) -> Result<Page<Member>, Error> {
        let limit = page_limit(query.limit, LIST_PAGE_DEFAULT, LIST_PAGE_MAX)?;
        let after = page::member_cursor(query.after.as_deref())?;
        self.require_group(id).await?;
        let member = self
            .store()
            .member(id, &actor.user)
            .await
            .map_err(Error::store)?
            .is_some();
        policy::check(actor, Action::ListMembers { group: id, member })?;
        let members = self
            .store()
            .members_after(id, after.as_ref(), limit + 1)
            .await
            .map_err(Error::store)?;
        Ok(Page::cut(members, limit, |m| m.id.to_string()))
    }

    /// Adds `user` to a group: the user itself when the group is open, its
    /// owner or an admin always (approving the user's request, if any).
    /// Adding a member again changes nothing. The user itself, asking to
    /// join an `approval` group, records a request instead
    /// ([`Joined::Requested`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown group or user, [`Error::Forbidden`],
    /// [`Error::Banned`] for a banned user, [`Error::Conflict`] when the
    /// group is full, [`Error::Store`].
    pub async fn join(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<Joined, Error> {
        let group = self.require_group(id).await?;
        self.require_user(user).await?;
        if group.join == JoinPolicy::Approval
            && actor.user == *user
            && group.owner != *user
            && !actor.admin
        {
            let member = self.store().member(id, user).await.map_err(Error::store)?;
            return match member {
                Some(_) => Ok(Joined::Member),
                None => self.request_join(actor, &group, user).await,
            };
        }
        policy::check(
            actor,
            Action::AddMember {
                group: &group,
                user,
            },
        )?;
        let now = self.now();
        let update = MemberUpdate {
            group: id.clone(),
            change: MemberChange::Put(Member {
                id: user.clone(),
                role: Role::Member,
                since: now,
            }),
            at: now,
            max_members: self.limits().group_members,
            trim: self.feed_trim(),
        };
        match self.update_member(&update).await? {
            Updated::Changed | Updated::Unchanged => {
                self.clear_request(id, user).await?;
                Ok(Joined::Member)
            }
            Updated::Banned => Err(banned(id, user)),
            Updated::Full => Err(Error::Conflict(format!(
                "{id} is full ({} members)",
                self.limits().group_members
            ))),
        }
    }

    /// Removes `user` from a group: the user itself (quitting), its owner or
    /// an admin. Removing a non-member changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown group or user, [`Error::Forbidden`],
    /// [`Error::Conflict`] for the owner, [`Error::Store`].
    pub async fn leave(&self, actor: &Actor, id: &GroupId, user: &UserId) -> Result<(), Error> {
        let group = self.require_group(id).await?;
        self.require_user(user).await?;
        policy::check(
            actor,
            Action::RemoveMember {
                group: &group,
                user,
            },
        )?;
        let update = MemberUpdate {
            group: id.clone(),
            change: MemberChange::Remove(user.clone()),
            at: self.now(),
            max_members: self.limits().group_members,
            trim: self.feed_trim(),
        };
        self.update_member(&update).await.map(drop)
    }
}

impl<S: Store> Engine<S> {
    /// Checks that the actor may hand group `id` to `owner`, and answers the
    /// group and the new owner's membership.
    async fn check_hand_over(
        &self,
        actor: &Actor,
        id: &GroupId,
        owner: &UserId,
    ) -> Result<(Group, Member), Error> {
        let group = self.require_group(id).await?;
        policy::check(actor, Action::UpdateGroup { group: &group })?;
        let member = self.store().member(id, owner).await.map_err(Error::store)?;
        let member = member.ok_or_else(|| {
            Error::Conflict(format!("{owner} must be a member of {id} to own it"))
        })?;
        Ok((group, member))
    }

    /// Updates a group as [`Engine::put_group`] does, then, when `owner` is
    /// given, hands the group to that member (policy rule 3): the old owner
    /// stays a member. A bad hand-over is refused before anything changes.
    ///
    /// # Errors
    ///
    /// Those of [`Engine::put_group`], and [`Error::Conflict`] when `owner`
    /// is no member.
    pub async fn update_group(
        &self,
        actor: &Actor,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
        owner: Option<&UserId>,
    ) -> Result<(GroupView, bool), Error> {
        let Some(owner) = owner else {
            return self.put_group(actor, id, patch, join).await;
        };
        self.check_hand_over(actor, id, owner).await?;
        self.put_group(actor, id, patch, join).await?;
        let (mut group, new) = self.check_hand_over(actor, id, owner).await?;
        if group.owner != *owner {
            let old = self
                .store()
                .member(id, &group.owner)
                .await
                .map_err(Error::store)?;
            let mut changes = Changes::default();
            if let Some(old) = old {
                changes.members.push((
                    id.clone(),
                    MemberChange::Put(Member {
                        role: Role::Member,
                        ..old
                    }),
                ));
            }
            changes.members.push((
                id.clone(),
                MemberChange::Put(Member {
                    role: Role::Owner,
                    ..new
                }),
            ));
            group.owner = owner.clone();
            changes.groups.push(group);
            self.commit(&changes).await?;
        }
        Ok((self.group(actor, id).await?, false))
    }
}
