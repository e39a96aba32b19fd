//! Groups and rooms: creation, fields, the join policy, members and their
//! roles. A room is a group record of kind [`GroupKind::Room`]: the same
//! rules, ids, members and bans; what differs is how its messages travel
//! (see `room.rs`).

use serde::Serialize;

use crate::data::{
    ConvEntry, ConversationId, Event, FieldPatch, Fields, Group, GroupId, GroupKind, JoinPolicy,
    Member, Membership, Role, Timestamp, UserId,
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

impl GroupView {
    fn new(g: Group, members: usize) -> Self {
        Self {
            id: g.id,
            owner: g.owner,
            fields: g.fields,
            join: g.join,
            members,
            created_at: g.created_at,
        }
    }
}

/// The conversation of a group or room.
pub(crate) fn conversation_of(kind: GroupKind, id: &GroupId) -> ConversationId {
    match kind {
        GroupKind::Group => ConversationId::group(id.clone()),
        GroupKind::Room => ConversationId::room(id.clone()),
    }
}

impl<S: Store> Engine<S> {
    pub(crate) async fn require_group(&self, id: &GroupId) -> Result<Group, Error> {
        self.require_space(GroupKind::Group, id).await
    }

    /// The group (or room) of `kind` with this id; 404 when there is none
    /// of that kind.
    pub(crate) async fn require_space(
        &self,
        kind: GroupKind,
        id: &GroupId,
    ) -> Result<Group, Error> {
        self.store()
            .group(id)
            .await
            .map_err(Error::store)?
            .filter(|g| g.kind == kind)
            .ok_or_else(|| Error::NotFound(format!("{} {id}", kind.name())))
    }

    /// The group or room of a `group:` or `room:` conversation.
    pub(crate) async fn require_conversation_space(
        &self,
        c: &ConversationId,
        id: &GroupId,
    ) -> Result<Group, Error> {
        let kind = match c {
            ConversationId::Room(_) => GroupKind::Room,
            _ => GroupKind::Group,
        };
        self.require_space(kind, id).await
    }

    /// The join or leave of `user` to or from `group`, with its kind's limit.
    pub(crate) fn member_update(&self, group: &Group, change: MemberChange) -> MemberUpdate {
        MemberUpdate {
            group: group.id.clone(),
            change,
            at: self.now(),
            max_members: match group.kind {
                GroupKind::Group => self.limits().group_members,
                GroupKind::Room => self.limits().room_members,
            },
            trim: self.feed_trim(),
            kind: group.kind,
        }
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
        self.put_space(actor, GroupKind::Group, id, patch, join)
            .await
    }

    /// Creates or updates a group or room (see [`Engine::put_group`]). Ids
    /// are shared: a room's id is refused while a group has it, and the
    /// other way round. A room's join policy is `open` or `invite`.
    pub(crate) async fn put_space(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
    ) -> Result<(GroupView, bool), Error> {
        check_patch(&patch, self.limits())?;
        if kind == GroupKind::Room && join == Some(JoinPolicy::Approval) {
            return Err(Error::Invalid("a room's join is open or invite".into()));
        }
        let existing = self.store().group(id).await.map_err(Error::store)?;
        if let Some(other) = existing.as_ref().filter(|g| g.kind != kind) {
            return Err(Error::Conflict(format!(
                "{id} is a {}: groups and rooms share their ids",
                other.kind.name()
            )));
        }
        let conversation = conversation_of(kind, id);
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
                if kind == GroupKind::Room {
                    self.refuse_too_many_rooms(&actor.user).await?;
                }
                let owner = Member {
                    id: actor.user.clone(),
                    role: Role::Owner,
                    since: now,
                };
                let group = Group {
                    id: id.clone(),
                    kind,
                    owner: owner.id.clone(),
                    fields: Fields::new(),
                    join: JoinPolicy::default(),
                    created_at: now,
                };
                changes.members.push((id.clone(), MemberChange::Put(owner)));
                changes.entries.push((
                    actor.user.clone(),
                    EntryChange::Put(ConvEntry::joined(conversation, 0, now)),
                ));
                // A room's joins are no events (see `Engine::join_room`).
                if kind == GroupKind::Group {
                    changes.events.push((
                        actor.user.clone(),
                        now,
                        Event::member(id, &actor.user, Membership::Joined),
                    ));
                }
                (group, true)
            }
        };
        apply_patch(&mut group.fields, patch, self.limits())?;
        if let Some(join) = join {
            group.join = join;
        }
        changes.groups.push(group);
        self.commit(&changes).await?;
        Ok((self.space(kind, id).await?, created))
    }

    /// A group, with its member count; anyone may read it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn group(&self, actor: &Actor, id: &GroupId) -> Result<GroupView, Error> {
        let _ = actor; // Anyone reads a group (policy rule 2).
        self.space(GroupKind::Group, id).await
    }

    /// A group or room with its member count.
    pub(crate) async fn space(&self, kind: GroupKind, id: &GroupId) -> Result<GroupView, Error> {
        let g = self.require_space(kind, id).await?;
        let members = self.store().member_count(id).await.map_err(Error::store)?;
        Ok(GroupView::new(g, members))
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
        self.space_members(actor, GroupKind::Group, id, query).await
    }

    /// A page of a group's or room's members (see [`Engine::members`]).
    pub(crate) async fn space_members(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        query: &ListQuery,
    ) -> Result<Page<Member>, Error> {
        let limit = page_limit(query.limit, LIST_PAGE_DEFAULT, LIST_PAGE_MAX)?;
        let after = page::member_cursor(query.after.as_deref())?;
        self.require_space(kind, id).await?;
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
        self.add_member(actor, &group, user).await?;
        self.clear_request(id, user).await?;
        Ok(Joined::Member)
    }

    /// Adds `user` to a group or room, as the policy allows `actor`.
    pub(crate) async fn add_member(
        &self,
        actor: &Actor,
        group: &Group,
        user: &UserId,
    ) -> Result<(), Error> {
        policy::check(actor, Action::AddMember { group, user })?;
        let id = &group.id;
        let update = self.member_update(
            group,
            MemberChange::Put(Member {
                id: user.clone(),
                role: Role::Member,
                since: self.now(),
            }),
        );
        match self.update_member(&update).await? {
            Updated::Changed | Updated::Unchanged => Ok(()),
            Updated::Banned => Err(banned(id, user)),
            Updated::Full => Err(Error::Conflict(format!(
                "{id} is full ({} members)",
                update.max_members
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
        self.remove_member(actor, &group, user).await
    }

    /// Removes `user` from a group or room, as the policy allows `actor`.
    pub(crate) async fn remove_member(
        &self,
        actor: &Actor,
        group: &Group,
        user: &UserId,
    ) -> Result<(), Error> {
        policy::check(actor, Action::RemoveMember { group, user })?;
        let update = self.member_update(group, MemberChange::Remove(user.clone()));
        self.update_member(&update).await.map(drop)
    }
}

impl<S: Store> Engine<S> {
    /// Checks that the actor may hand group `id` to `owner`, and answers the
    /// group and the new owner's membership.
    async fn check_hand_over(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        owner: &UserId,
    ) -> Result<(Group, Member), Error> {
        let group = self.require_space(kind, id).await?;
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
        self.update_space(actor, GroupKind::Group, id, patch, join, owner)
            .await
    }

    /// Updates a group or room and hands it over (see
    /// [`Engine::update_group`]).
    pub(crate) async fn update_space(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        patch: FieldPatch,
        join: Option<JoinPolicy>,
        owner: Option<&UserId>,
    ) -> Result<(GroupView, bool), Error> {
        let Some(owner) = owner else {
            return self.put_space(actor, kind, id, patch, join).await;
        };
        self.check_hand_over(actor, kind, id, owner).await?;
        self.put_space(actor, kind, id, patch, join).await?;
        let (mut group, new) = self.check_hand_over(actor, kind, id, owner).await?;
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
        Ok((self.space(kind, id).await?, false))
    }
}
