//! The reference model: the IM semantics again, in plain std collections and
//! straight-line code, with none of the engine's structure. The property test
//! runs every command against both and compares the answers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::command::{Command, Outcome};
use crate::data::{Epoch, Membership};
use crate::engine::{Actor, Limits};
use crate::feed::{Cursor, Delivered, EventData, EventPage, ResetReason, Start};
use crate::page::{self, LIST_PAGE_DEFAULT, LIST_PAGE_MAX, Page};
use crate::{
    Contact, ContactNews, ContactView, ConvEntry, ConversationId, ConversationView, ErrorKind,
    Event, GroupId, GroupKind, GroupView, HistoryPage, JoinPolicy, JoinRequest, Marked, Member,
    Message, ReactionChange, ReadState, Role, Seq, Timestamp, UserId,
};
use crate::{Group, Password, Profile};

/// The epoch the model writes in its cursors; the test maps the store's own
/// to it before comparing.
pub const MODEL_EPOCH: Epoch = Epoch(0);

type Answer = Result<Outcome, ErrorKind>;

/// One feed event in the model: a reference, resolved when read (a
/// replayed message reads as it now is).
#[derive(Debug, Clone)]
struct ModelEvent {
    pos: u64,
    ts: Timestamp,
    event: Event,
}

#[derive(Debug, Clone, Default)]
struct ModelFeed {
    trimmed: u64,
    head: u64,
    events: VecDeque<ModelEvent>,
}

/// The whole state, in the simplest collections that will do.
#[derive(Debug, Clone)]
pub struct Model {
    /// The time every operation of the current step sees.
    pub now: Timestamp,
    /// The limits the engine under test is configured with.
    pub limits: Limits,
    /// Events kept per feed.
    pub keep: u64,
    users: BTreeMap<UserId, Profile>,
    passwords: BTreeMap<UserId, Password>,
    contacts: BTreeMap<UserId, BTreeMap<UserId, Contact>>,
    groups: BTreeMap<GroupId, Group>,
    members: BTreeMap<GroupId, BTreeMap<UserId, Member>>,
    logs: BTreeMap<ConversationId, Vec<Message>>,
    entries: BTreeMap<UserId, BTreeMap<ConversationId, ConvEntry>>,
    feeds: BTreeMap<UserId, ModelFeed>,
    requests: BTreeMap<GroupId, BTreeMap<UserId, Timestamp>>,
    bans: BTreeMap<GroupId, BTreeMap<UserId, Timestamp>>,
    blocks: BTreeMap<UserId, BTreeMap<UserId, Timestamp>>,
    suspended: BTreeSet<UserId>,
    /// What the last command committed, each event once: `(user, ts,
    /// event)` with the user only for the events of one user's feed.
    committed: Vec<(Option<UserId>, Timestamp, Event)>,
    /// Everything committed so far, each event once: what the firehose
    /// holds.
    fired: Vec<(Option<UserId>, Timestamp, Event)>,
}

fn err<T>(kind: ErrorKind) -> Result<T, ErrorKind> {
    Err(kind)
}

impl Model {
    /// An empty model.
    pub fn new(limits: Limits, keep: u64) -> Self {
        Self {
            now: 1,
            limits,
            keep,
            users: BTreeMap::new(),
            passwords: BTreeMap::new(),
            contacts: BTreeMap::new(),
            groups: BTreeMap::new(),
            members: BTreeMap::new(),
            logs: BTreeMap::new(),
            entries: BTreeMap::new(),
            feeds: BTreeMap::new(),
            requests: BTreeMap::new(),
            bans: BTreeMap::new(),
            blocks: BTreeMap::new(),
            suspended: BTreeSet::new(),
            committed: Vec::new(),
            fired: Vec::new(),
        }
    }

    /// The events the last command committed, each once, as an
    /// after-commit hook should hear of them: `(user, ts, event)`, `user`
    /// set only for the events of one user's feed.
    pub fn committed(&self) -> &[(Option<UserId>, Timestamp, Event)] {
        &self.committed
    }

    /// Every event committed so far, each once, in commit order: what the
    /// firehose should hold.
    pub fn fired(&self) -> &[(Option<UserId>, Timestamp, Event)] {
        &self.fired
    }

    /// The ids of every user created so far.
    pub fn user_ids(&self) -> Vec<UserId> {
        self.users.keys().cloned().collect()
    }

    /// Every message sent so far: its conversation, seq and sender.
    pub fn messages(&self) -> Vec<(ConversationId, Seq, UserId)> {
        self.logs
            .values()
            .flatten()
            .map(|m| (m.conversation.clone(), m.seq, m.from.clone()))
            .collect()
    }

    /// Every conversation that has a message, or a group's.
    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        let mut ids: Vec<_> = self.logs.keys().cloned().collect();
        ids.extend(self.groups.values().map(|g| match g.kind {
            GroupKind::Group => ConversationId::group(g.id.clone()),
            GroupKind::Room => ConversationId::room(g.id.clone()),
        }));
        ids.sort();
        ids.dedup();
        ids
    }

    fn push_event(&mut self, user: &UserId, event: Event) {
        // A conversation's or group's event is one event however many feeds
        // get it; a user's own event is that user's.
        let owner = (!crate::Committed::is_shared(&event)).then(|| user.clone());
        let once = (owner, self.now, event.clone());
        if once.0.is_some() || !self.committed.contains(&once) {
            self.committed.push(once.clone());
            self.fired.push(once);
        }
        let (now, keep) = (self.now, self.keep);
        let feed = self.feeds.entry(user.clone()).or_default();
        feed.head += 1;
        feed.events.push_back(ModelEvent {
            pos: feed.head,
            ts: now,
            event,
        });
        while feed.events.len() as u64 > keep {
            feed.trimmed = feed.events.pop_front().map_or(feed.trimmed, |e| e.pos);
        }
    }

    fn check_patch(&self, fields: &crate::FieldPatch) -> Result<(), ErrorKind> {
        let bad_name = |n: &String| n.is_empty() || n.len() > 64 || n.chars().any(char::is_control);
        let bad_value = |v: &Option<String>| {
            v.as_ref()
                .is_some_and(|v| v.len() > self.limits.field_bytes)
        };
        if fields.len() > self.limits.fields
            || fields.iter().any(|(n, v)| bad_name(n) || bad_value(v))
        {
            return err(ErrorKind::Invalid);
        }
        Ok(())
    }

    fn merged(
        &self,
        mut current: crate::Fields,
        patch: &crate::FieldPatch,
    ) -> Result<crate::Fields, ErrorKind> {
        for (n, v) in patch {
            match v {
                Some(v) => current.insert(n.clone(), v.clone()),
                None => current.remove(n),
            };
        }
        if current.len() > self.limits.fields {
            err(ErrorKind::Invalid)
        } else {
            Ok(current)
        }
    }

    fn user_exists(&self, id: &UserId) -> Result<(), ErrorKind> {
        if self.users.contains_key(id) {
            Ok(())
        } else {
            err(ErrorKind::NotFound)
        }
    }

    fn group_of(&self, id: &GroupId) -> Result<Group, ErrorKind> {
        self.space_of(GroupKind::Group, id)
    }

    fn space_of(&self, kind: GroupKind, id: &GroupId) -> Result<Group, ErrorKind> {
        self.groups
            .get(id)
            .filter(|g| g.kind == kind)
            .cloned()
            .ok_or(ErrorKind::NotFound)
    }

    /// Records a shared event that no feed gets (a room's): an after-commit
    /// hook still hears of it once, and the firehose holds it.
    fn commit_unfanned(&mut self, event: Event) {
        let once = (None, self.now, event);
        self.committed.push(once.clone());
        self.fired.push(once);
    }

    fn group_members(&self, id: &GroupId) -> Vec<UserId> {
        self.members
            .get(id)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Who takes part in `c`, after checking that it exists.
    fn participants(&self, c: &ConversationId) -> Result<Vec<UserId>, ErrorKind> {
        match c {
            ConversationId::Direct(a, b) => {
                self.user_exists(a)?;
                self.user_exists(b)?;
                Ok(vec![a.clone(), b.clone()])
            }
            ConversationId::Group(g) => {
                self.group_of(g)?;
                Ok(self.group_members(g))
            }
            ConversationId::Room(r) => {
                self.space_of(GroupKind::Room, r)?;
                Ok(self.group_members(r))
            }
        }
    }

    fn last_seq(&self, c: &ConversationId) -> Seq {
        self.logs.get(c).map_or(0, |l| l.len() as Seq)
    }

    fn limit(&self, limit: Option<usize>, default: usize, max: usize) -> Result<usize, ErrorKind> {
        match limit {
            None => Ok(default.min(max)),
            Some(n) if n >= 1 && n <= max => Ok(n),
            Some(_) => err(ErrorKind::Invalid),
        }
    }

    /// Whether `actor` may hand group or room `id` to `owner` (if any).
    fn check_hand_over(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        owner: Option<&UserId>,
    ) -> Result<(), ErrorKind> {
        if let Some(o) = owner {
            let g = self.space_of(kind, id)?;
            if !(actor.admin || g.owner == actor.user) {
                return err(ErrorKind::Forbidden);
            }
            if !self.group_members(id).contains(o) {
                return err(ErrorKind::Conflict);
            }
        }
        Ok(())
    }

    /// Hands `g` to `owner` (if any, and not its owner already).
    fn hand_over(&mut self, g: &mut Group, owner: Option<&UserId>) {
        if let Some(o) = owner
            && g.owner != *o
        {
            let members = self.members.entry(g.id.clone()).or_default();
            if let Some(old) = members.get_mut(&g.owner) {
                old.role = Role::Member;
            }
            if let Some(new) = members.get_mut(o) {
                new.role = Role::Owner;
            }
            g.owner = o.clone();
        }
    }

    /// Creates or updates a room, as `Command::PutRoom`.
    fn put_room(
        &mut self,
        actor: &Actor,
        id: &GroupId,
        fields: &crate::FieldPatch,
        join: Option<JoinPolicy>,
        owner: Option<&UserId>,
    ) -> Answer {
        let me = &actor.user;
        self.check_hand_over(actor, GroupKind::Room, id, owner)?;
        self.check_patch(fields)?;
        if join == Some(JoinPolicy::Approval) {
            return err(ErrorKind::Invalid);
        }
        let (mut g, created) = match self.groups.get(id) {
            Some(g) if g.kind == GroupKind::Group => return err(ErrorKind::Conflict),
            Some(g) if g.owner == *me || actor.admin => (g.clone(), false),
            Some(_) => return err(ErrorKind::Forbidden),
            None => {
                self.user_exists(me)?;
                if self.rooms_of(me) >= self.limits.rooms_per_user {
                    return err(ErrorKind::Conflict);
                }
                let g = Group {
                    id: id.clone(),
                    kind: GroupKind::Room,
                    owner: me.clone(),
                    fields: Default::default(),
                    join: JoinPolicy::Invite,
                    created_at: self.now,
                };
                (g, true)
            }
        };
        g.fields = self.merged(g.fields, fields)?;
        if let Some(j) = join {
            g.join = j;
        }
        if created {
            self.add_member(id, ConversationId::room(id.clone()), me, Role::Owner);
        }
        self.hand_over(&mut g, owner);
        self.groups.insert(id.clone(), g);
        Ok(Outcome::Group(self.group_view(id), created))
    }

    /// How many rooms `user` is in.
    fn rooms_of(&self, user: &UserId) -> usize {
        self.entries.get(user).map_or(0, |e| {
            e.keys()
                .filter(|c| matches!(c, ConversationId::Room(_)))
                .count()
        })
    }

    /// Makes `user` a member of group or room `id` (conversation
    /// `conversation`) with its index entry: read up to the newest message,
    /// active now.
    fn add_member(
        &mut self,
        id: &GroupId,
        conversation: ConversationId,
        user: &UserId,
        role: Role,
    ) {
        let now = self.now;
        self.members.entry(id.clone()).or_default().insert(
            user.clone(),
            Member {
                id: user.clone(),
                role,
                since: now,
            },
        );
        let read_seq = self.last_seq(&conversation);
        self.entries.entry(user.clone()).or_default().insert(
            conversation.clone(),
            ConvEntry {
                conversation,
                read_seq,
                activity: now,
            },
        );
    }

    /// Adds `user` to a room, as `Command::JoinRoom`.
    fn join_room(&mut self, actor: &Actor, room: &GroupId, user: &UserId) -> Answer {
        let me = &actor.user;
        let g = self.space_of(GroupKind::Room, room)?;
        self.user_exists(user)?;
        if self.group_members(room).contains(user) {
            // Checked by the policy even so.
            if !(actor.admin || g.owner == *me || (me == user && g.join == JoinPolicy::Open)) {
                return err(ErrorKind::Forbidden);
            }
            return Ok(Outcome::Done);
        }
        if self.rooms_of(user) >= self.limits.rooms_per_user {
            return err(ErrorKind::Conflict);
        }
        if !(actor.admin || g.owner == *me || (me == user && g.join == JoinPolicy::Open)) {
            return err(ErrorKind::Forbidden);
        }
        if Self::marked(&self.bans, room, user) {
            return err(ErrorKind::Forbidden);
        }
        if self.group_members(room).len() >= self.limits.room_members {
            return err(ErrorKind::Conflict);
        }
        self.add_member(room, ConversationId::room(room.clone()), user, Role::Member);
        Ok(Outcome::Done)
    }

    /// Removes `user` from a group or room, as `Command::Leave` and
    /// `Command::LeaveRoom`.
    fn leave(&mut self, actor: &Actor, kind: GroupKind, room: &GroupId, user: &UserId) -> Answer {
        let me = &actor.user;
        let g = self.space_of(kind, room)?;
        self.user_exists(user)?;
        if !(actor.admin || g.owner == *me || me == user) {
            return err(ErrorKind::Forbidden);
        }
        if g.owner == *user {
            return err(ErrorKind::Conflict);
        }
        self.remove_member(room, user);
        Ok(Outcome::Done)
    }

    /// A page of a group's or room's members, as `Command::Members`.
    fn members_page(
        &self,
        actor: &Actor,
        kind: GroupKind,
        id: &GroupId,
        query: &crate::ListQuery,
    ) -> Answer {
        let limit = self.limit(query.limit, LIST_PAGE_DEFAULT, LIST_PAGE_MAX)?;
        let after = page::member_cursor(query.after.as_deref()).map_err(|e| e.kind())?;
        self.space_of(kind, id)?;
        let list: Vec<Member> = self
            .members
            .get(id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        if !actor.admin && !list.iter().any(|m| m.id == actor.user) {
            return err(ErrorKind::Forbidden);
        }
        // The map is keyed by user id: already in page order.
        let start = after.map_or(0, |a| list.partition_point(|m| m.id <= a));
        Ok(Outcome::Members(model_page(list, start, limit, |m| {
            m.id.to_string()
        })))
    }

    fn group_view(&self, id: &GroupId) -> GroupView {
        let g = &self.groups[id];
        GroupView {
            id: g.id.clone(),
            owner: g.owner.clone(),
            fields: g.fields.clone(),
            join: g.join,
            members: self.group_members(id).len(),
            created_at: g.created_at,
        }
    }

    fn marked<K: Ord>(
        sets: &BTreeMap<K, BTreeMap<UserId, Timestamp>>,
        key: &K,
        user: &UserId,
    ) -> bool {
        sets.get(key).is_some_and(|s| s.contains_key(user))
    }

    /// Whether one of a direct conversation's users blocks the other.
    fn blocked(&self, c: &ConversationId) -> bool {
        match c {
            ConversationId::Direct(a, b) => {
                Self::marked(&self.blocks, a, b) || Self::marked(&self.blocks, b, a)
            }
            ConversationId::Group(_) | ConversationId::Room(_) => false,
        }
    }

    /// Marks as a list answers them: newest first, ties by id.
    fn newest_first(set: Option<&BTreeMap<UserId, Timestamp>>) -> Vec<Marked> {
        let mut list: Vec<Marked> = set
            .into_iter()
            .flatten()
            .map(|(id, since)| Marked {
                id: id.clone(),
                since: *since,
            })
            .collect();
        list.sort_by(|a, b| (b.since, &a.id).cmp(&(a.since, &b.id)));
        list
    }

    /// `user` leaves `group`, if a member: every member hears of it.
    fn remove_member(&mut self, group: &GroupId, user: &UserId) {
        let members = self.group_members(group);
        if self
            .groups
            .get(group)
            .is_some_and(|g| g.kind == GroupKind::Room)
        {
            self.members.entry(group.clone()).or_default().remove(user);
            self.entries
                .entry(user.clone())
                .or_default()
                .remove(&ConversationId::room(group.clone()));
            return;
        }
        if !members.contains(user) {
            return;
        }
        let data = Event::Member {
            group: group.clone(),
            user: user.clone(),
            change: Membership::Left,
        };
        for m in &members {
            self.push_event(m, data.clone());
        }
        self.members.entry(group.clone()).or_default().remove(user);
        self.entries
            .entry(user.clone())
            .or_default()
            .remove(&ConversationId::group(group.clone()));
    }

    /// Applies one command as `actor`, as the engine should.
    pub fn apply(&mut self, actor: &Actor, command: &Command) -> Answer {
        self.committed.clear();
        if self.suspended.contains(&actor.user) {
            return err(ErrorKind::Forbidden);
        }
        self.apply_unsuspended(actor, command)
    }

    fn apply_unsuspended(&mut self, actor: &Actor, command: &Command) -> Answer {
        let me = &actor.user;
        let now = self.now;
        match command {
            Command::PutUser { id, fields } => {
                self.check_patch(fields)?;
                let existing = self.users.get(id).cloned();
                if !(actor.admin || (existing.is_some() && me == id)) {
                    return err(ErrorKind::Forbidden);
                }
                let created = existing.is_none();
                let mut p = existing.unwrap_or(Profile {
                    id: id.clone(),
                    fields: Default::default(),
                    created_at: now,
                    online: false,
                    last_seen: None,
                    suspended: None,
                });
                p.fields = self.merged(p.fields, fields)?;
                self.users.insert(id.clone(), p.clone());
                Ok(Outcome::Profile(p, created))
            }
            Command::User { id } => {
                let mut p = self.users.get(id).cloned().ok_or(ErrorKind::NotFound)?;
                if !(actor.admin || me == id) {
                    p.fields.retain(|name, _| !name.starts_with('_'));
                }
                if actor.admin {
                    p.suspended = Some(self.suspended.contains(id));
                }
                Ok(Outcome::Profile(p, false))
            }
            Command::SetPassword {
                id,
                password,
                old_password,
            } => {
                if !password.is_acceptable() {
                    return err(ErrorKind::Invalid);
                }
                self.user_exists(id)?;
                let old_ok = match self.passwords.get(id) {
                    Some(current) => old_password.as_ref() == Some(current),
                    None => true,
                };
                if !(actor.admin || (me == id && old_ok)) {
                    return err(ErrorKind::Forbidden);
                }
                self.passwords.insert(id.clone(), password.clone());
                Ok(Outcome::NoContent)
            }
            Command::Link { id } => {
                if me == id {
                    return err(ErrorKind::Invalid);
                }
                self.user_exists(me)?;
                self.user_exists(id)?;
                let set = self.contacts.entry(me.clone()).or_default();
                if set.contains_key(id) {
                    return Ok(Outcome::Done);
                }
                let order = set.values().map(|c| c.order).max().unwrap_or(0) + 1;
                set.insert(
                    id.clone(),
                    Contact {
                        id: id.clone(),
                        since: now,
                        order,
                    },
                );
                if !Self::marked(&self.blocks, id, me) {
                    let event = Event::Contact {
                        user: me.clone(),
                        change: ContactNews::Added,
                    };
                    self.push_event(id, event);
                }
                Ok(Outcome::Done)
            }
            Command::Unlink { id } => {
                self.user_exists(me)?;
                self.user_exists(id)?;
                self.contacts.entry(me.clone()).or_default().remove(id);
                Ok(Outcome::Done)
            }
            Command::Contacts { query } => {
                let limit = self.limit(query.limit, LIST_PAGE_DEFAULT, LIST_PAGE_MAX)?;
                let after = page::contact_cursor(query.after.as_deref()).map_err(|e| e.kind())?;
                self.user_exists(me)?;
                let mut list: Vec<_> = self
                    .contacts
                    .get(me)
                    .map(|s| s.values().cloned().collect())
                    .unwrap_or_default();
                list.sort_by(Contact::newest_first);
                let start = after.map_or(0, |a| {
                    list.partition_point(|c| Contact::newest_first(c, &a).is_le())
                });
                let page = model_page(list, start, limit, page::contact_key);
                Ok(Outcome::Contacts(page.map(|c| ContactView {
                    id: c.id,
                    since: c.since,
                    online: false,
                })))
            }
            Command::PutGroup {
                id,
                fields,
                join,
                owner,
            } => {
                self.check_hand_over(actor, GroupKind::Group, id, owner.as_ref())?;
                self.check_patch(fields)?;
                let (mut g, created) = match self.groups.get(id) {
                    Some(g) if g.kind == GroupKind::Room => {
                        // The hand-over above already found no group.
                        return err(ErrorKind::Conflict);
                    }
                    Some(g) if g.owner == *me || actor.admin => (g.clone(), false),
                    Some(_) => return err(ErrorKind::Forbidden),
                    None => {
                        self.user_exists(me)?;
                        let g = Group {
                            id: id.clone(),
                            kind: GroupKind::Group,
                            owner: me.clone(),
                            fields: Default::default(),
                            join: JoinPolicy::Invite,
                            created_at: now,
                        };
                        (g, true)
                    }
                };
                g.fields = self.merged(g.fields, fields)?;
                if let Some(j) = join {
                    g.join = *j;
                }
                if created {
                    // A new group's conversation has no message: read_seq 0.
                    self.add_member(id, ConversationId::group(id.clone()), me, Role::Owner);
                    let data = Event::Member {
                        group: id.clone(),
                        user: me.clone(),
                        change: Membership::Joined,
                    };
                    self.push_event(me, data);
                }
                self.hand_over(&mut g, owner.as_ref());
                self.groups.insert(id.clone(), g);
                Ok(Outcome::Group(self.group_view(id), created))
            }
            Command::Group { id } => {
                self.group_of(id)?;
                Ok(Outcome::Group(self.group_view(id), false))
            }
            Command::Members { id, query } => self.members_page(actor, GroupKind::Group, id, query),
            Command::PutRoom {
                id,
                fields,
                join,
                owner,
            } => self.put_room(actor, id, fields, *join, owner.as_ref()),
            Command::Room { id } => {
                self.space_of(GroupKind::Room, id)?;
                Ok(Outcome::Group(self.group_view(id), false))
            }
            Command::RoomMembers { id, query } => {
                self.members_page(actor, GroupKind::Room, id, query)
            }
            Command::JoinRoom { room, user } => self.join_room(actor, room, user),
            Command::LeaveRoom { room, user } => self.leave(actor, GroupKind::Room, room, user),
            Command::Join { group, user } => {
                let g = self.group_of(group)?;
                self.user_exists(user)?;
                let members = self.group_members(group);
                if g.join == JoinPolicy::Approval && me == user && g.owner != *me && !actor.admin {
                    if members.contains(user) {
                        return Ok(Outcome::Done);
                    }
                    if Self::marked(&self.bans, group, user) {
                        return err(ErrorKind::Forbidden);
                    }
                    let requests = self.requests.entry(group.clone()).or_default();
                    if !requests.contains_key(user) {
                        requests.insert(user.clone(), now);
                        let event = Event::JoinRequest {
                            group: group.clone(),
                            user: user.clone(),
                        };
                        self.push_event(&g.owner, event);
                    }
                    return Ok(Outcome::Requested);
                }
                if !(actor.admin || g.owner == *me || (me == user && g.join == JoinPolicy::Open)) {
                    return err(ErrorKind::Forbidden);
                }
                if members.contains(user) {
                    self.requests.entry(group.clone()).or_default().remove(user);
                    return Ok(Outcome::Done);
                }
                if Self::marked(&self.bans, group, user) {
                    return err(ErrorKind::Forbidden);
                }
                if members.len() >= self.limits.group_members {
                    return err(ErrorKind::Conflict);
                }
                self.add_member(
                    group,
                    ConversationId::group(group.clone()),
                    user,
                    Role::Member,
                );
                let data = Event::Member {
                    group: group.clone(),
                    user: user.clone(),
                    change: Membership::Joined,
                };
                for m in self.group_members(group) {
                    self.push_event(&m, data.clone());
                }
                self.requests.entry(group.clone()).or_default().remove(user);
                Ok(Outcome::Done)
            }
            Command::Leave { group, user } => self.leave(actor, GroupKind::Group, group, user),
            Command::Requests { group } => {
                let g = self.group_of(group)?;
                if !(actor.admin || g.owner == *me) {
                    return err(ErrorKind::Forbidden);
                }
                let mut list: Vec<JoinRequest> = self
                    .requests
                    .get(group)
                    .into_iter()
                    .flatten()
                    .map(|(user, since)| JoinRequest {
                        user: user.clone(),
                        since: *since,
                    })
                    .collect();
                list.sort_by(|a, b| (a.since, &a.user).cmp(&(b.since, &b.user)));
                Ok(Outcome::Requests(list))
            }
            Command::Withdraw { group, user } => {
                let g = self.group_of(group)?;
                self.user_exists(user)?;
                if !(actor.admin || g.owner == *me || me == user) {
                    return err(ErrorKind::Forbidden);
                }
                self.requests.entry(group.clone()).or_default().remove(user);
                Ok(Outcome::Done)
            }
            Command::Ban { group, user } => {
                let g = self.group_of(group)?;
                self.user_exists(user)?;
                if !(actor.admin || g.owner == *me) {
                    return err(ErrorKind::Forbidden);
                }
                if g.owner == *user {
                    return err(ErrorKind::Conflict);
                }
                self.bans
                    .entry(group.clone())
                    .or_default()
                    .entry(user.clone())
                    .or_insert(now);
                self.requests.entry(group.clone()).or_default().remove(user);
                self.remove_member(group, user);
                Ok(Outcome::Done)
            }
            Command::Unban { group, user } => {
                let g = self.group_of(group)?;
                self.user_exists(user)?;
                if !(actor.admin || g.owner == *me) {
                    return err(ErrorKind::Forbidden);
                }
                self.bans.entry(group.clone()).or_default().remove(user);
                Ok(Outcome::Done)
            }
            Command::Bans { group } => {
                let g = self.group_of(group)?;
                if !(actor.admin || g.owner == *me) {
                    return err(ErrorKind::Forbidden);
                }
                Ok(Outcome::Bans(Self::newest_first(self.bans.get(group))))
            }
            Command::Block { id } => {
                if me == id {
                    return err(ErrorKind::Invalid);
                }
                self.user_exists(me)?;
                self.user_exists(id)?;
                self.blocks
                    .entry(me.clone())
                    .or_default()
                    .entry(id.clone())
                    .or_insert(now);
                Ok(Outcome::Done)
            }
            Command::Unblock { id } => {
                if me == id {
                    return err(ErrorKind::Invalid);
                }
                self.user_exists(me)?;
                self.user_exists(id)?;
                self.blocks.entry(me.clone()).or_default().remove(id);
                Ok(Outcome::Done)
            }
            Command::Blocks => {
                self.user_exists(me)?;
                Ok(Outcome::Blocks(Self::newest_first(self.blocks.get(me))))
            }
            Command::Suspend { id, suspended } => {
                if !actor.admin {
                    return err(ErrorKind::Forbidden);
                }
                self.user_exists(id)?;
                if *suspended {
                    self.suspended.insert(id.clone());
                } else {
                    self.suspended.remove(id);
                }
                // The profile as an admin sees it.
                self.apply_unsuspended(actor, &Command::User { id: id.clone() })
            }
            Command::Erase { id } => self.erase(actor, id),
            Command::Send {
                conversation,
                request,
            } => {
                if let Some(id) = &request.client_id
                    && (id.is_empty() || id.chars().count() > 64)
                {
                    return err(ErrorKind::Invalid);
                }
                if request.body.get().len() > self.limits.body_bytes {
                    return err(ErrorKind::TooLarge);
                }
                let from = match &request.from {
                    Some(f) if f != me && !actor.admin => return err(ErrorKind::Forbidden),
                    Some(f) => f.clone(),
                    None => me.clone(),
                };
                self.user_exists(&from)?;
                let recipients = self.participants(conversation)?;
                // A direct conversation's sender is checked first; a
                // group's at the commit, after `reply_to`.
                if matches!(conversation, ConversationId::Direct(..)) && !recipients.contains(&from)
                {
                    return err(ErrorKind::Forbidden);
                }
                if let Some(r) = request.reply_to
                    && !(1..=self.last_seq(conversation)).contains(&r)
                {
                    return err(ErrorKind::Invalid);
                }
                if !recipients.contains(&from) || self.blocked(conversation) {
                    return err(ErrorKind::Forbidden);
                }
                let log = self.logs.entry(conversation.clone()).or_default();
                if let Some(id) = &request.client_id
                    && let Some(m) = log
                        .iter()
                        .find(|m| m.from == from && m.client_id.as_ref() == Some(id))
                {
                    return Ok(Outcome::Sent(m.clone(), false));
                }
                let message = Message {
                    conversation: conversation.clone(),
                    seq: log.len() as Seq + 1,
                    from: from.clone(),
                    ts: now,
                    body: Some(request.body.clone()),
                    client_id: request.client_id.clone(),
                    reply_to: request.reply_to,
                    edited_at: None,
                    deleted_at: None,
                    reactions: Default::default(),
                };
                log.push(message.clone());
                if let ConversationId::Room(_) = conversation {
                    // Stored once: only the sender's cursor moves.
                    if let Some(e) = self
                        .entries
                        .get_mut(&from)
                        .and_then(|e| e.get_mut(conversation))
                    {
                        e.read_seq = e.read_seq.max(message.seq);
                    }
                    self.commit_unfanned(Event::Message {
                        conversation: conversation.clone(),
                        seq: message.seq,
                    });
                    return Ok(Outcome::Sent(message, true));
                }
                for r in &recipients {
                    let e = self
                        .entries
                        .entry(r.clone())
                        .or_default()
                        .entry(conversation.clone())
                        .or_insert(ConvEntry {
                            conversation: conversation.clone(),
                            read_seq: 0,
                            activity: now,
                        });
                    e.activity = now;
                    if *r == from {
                        e.read_seq = message.seq;
                    }
                    let event = Event::Message {
                        conversation: conversation.clone(),
                        seq: message.seq,
                    };
                    self.push_event(r, event);
                }
                Ok(Outcome::Sent(message, true))
            }
            Command::History {
                conversation,
                query,
            } => {
                let limit = self.limit(query.limit, 50, self.limits.page)? as Seq;
                self.require_reader(actor, conversation)?;
                let log = self.logs.get(conversation).cloned().unwrap_or_default();
                let last = log.len() as Seq;
                let (page, has_more): (Vec<Message>, bool) = match (query.before, query.after) {
                    (Some(_), Some(_)) => return err(ErrorKind::Invalid),
                    (None, Some(after)) => {
                        let page: Vec<_> = log
                            .iter()
                            .filter(|m| m.seq > after)
                            .take(limit as usize)
                            .cloned()
                            .collect();
                        let more = page.last().is_some_and(|m| m.seq < last)
                            || (page.is_empty() && after < last);
                        (page, more)
                    }
                    (before, None) => {
                        let older: Vec<_> = log
                            .iter()
                            .filter(|m| before.is_none_or(|b| m.seq < b))
                            .cloned()
                            .collect();
                        let start = older.len().saturating_sub(limit as usize);
                        (older[start..].to_vec(), start > 0)
                    }
                };
                Ok(Outcome::History(HistoryPage {
                    messages: page,
                    has_more,
                }))
            }
            Command::Message { conversation, seq } => {
                self.require_reader(actor, conversation)?;
                let log = self.logs.get(conversation);
                log.and_then(|l| l.iter().find(|m| m.seq == *seq))
                    .cloned()
                    .map(Outcome::Message)
                    .ok_or(ErrorKind::NotFound)
            }
            Command::MarkRead { conversation, seq } => {
                if !self.participants(conversation)?.contains(me) {
                    return err(ErrorKind::Forbidden);
                }
                let last = self.last_seq(conversation);
                let seq = seq.unwrap_or(last);
                if seq > last {
                    return err(ErrorKind::Invalid);
                }
                let Some(current) = self
                    .entries
                    .get(me)
                    .and_then(|e| e.get(conversation))
                    .map(|e| e.read_seq)
                else {
                    return Ok(Outcome::Read(ReadState {
                        read_seq: 0,
                        unread: last,
                    }));
                };
                if seq <= current {
                    return Ok(Outcome::Read(ReadState {
                        read_seq: current,
                        unread: last - current,
                    }));
                }
                if let Some(e) = self
                    .entries
                    .get_mut(me)
                    .and_then(|e| e.get_mut(conversation))
                {
                    e.read_seq = seq;
                }
                self.push_event(
                    me,
                    Event::Read {
                        conversation: conversation.clone(),
                        seq,
                    },
                );
                Ok(Outcome::Read(ReadState {
                    read_seq: seq,
                    unread: last - seq,
                }))
            }
            Command::Conversations { query } => {
                let limit = self.limit(query.limit, 50, self.limits.page)?;
                let after = page::entry_cursor(query.after.as_deref()).map_err(|e| e.kind())?;
                self.user_exists(me)?;
                let mut list: Vec<ConvEntry> = self
                    .entries
                    .get(me)
                    .map(|e| e.values().cloned().collect())
                    .unwrap_or_default();
                for e in &mut list {
                    if let ConversationId::Room(_) = e.conversation
                        && let Some(m) = self.logs.get(&e.conversation).and_then(|l| l.last())
                    {
                        e.activity = e.activity.max(m.ts);
                    }
                }
                list.sort_by(|a, b| {
                    (b.activity, &a.conversation).cmp(&(a.activity, &b.conversation))
                });
                let start = after.map_or(0, |(at, id)| {
                    list.partition_point(|e| (at, &e.conversation) <= (e.activity, &id))
                });
                let page = model_page(list, start, limit, page::entry_key);
                Ok(Outcome::Conversations(page.map(|e| {
                    let log = self.logs.get(&e.conversation);
                    let last = log.and_then(|l| l.last()).cloned();
                    let last_seq = last.as_ref().map_or(0, |m| m.seq);
                    ConversationView {
                        id: e.conversation.clone(),
                        kind: e.conversation.kind(),
                        with: e.conversation.with(me).to_owned(),
                        last,
                        unread: last_seq - e.read_seq,
                        read_seq: e.read_seq,
                    }
                })))
            }
            Command::Feed { start, limit } => Ok(Outcome::Feed(self.feed(me, *start, *limit))),
            Command::Typing { conversation, .. } => {
                if !self.participants(conversation)?.contains(me) {
                    return err(ErrorKind::Forbidden);
                }
                Ok(Outcome::Signalled)
            }
            Command::Reads {
                conversation,
                after,
                limit,
            } => {
                let limit = self.limit(*limit, 100, self.limits.events_page)?;
                self.require_reader(actor, conversation)?;
                let mut users = self.participants(conversation)?;
                users.sort();
                users.retain(|u| after.as_ref().is_none_or(|a| u > a));
                let has_more = users.len() > limit;
                users.truncate(limit);
                let reads = users
                    .into_iter()
                    .map(|user| crate::ReadCursor {
                        read_seq: self
                            .entries
                            .get(&user)
                            .and_then(|e| e.get(conversation))
                            .map_or(0, |e| e.read_seq),
                        user,
                    })
                    .collect();
                Ok(Outcome::Reads(crate::ReadsPage { reads, has_more }))
            }
            Command::Edit {
                conversation,
                seq,
                body,
            } => {
                if body.get().len() > self.limits.body_bytes {
                    return err(ErrorKind::TooLarge);
                }
                let m = self.readable_message(actor, conversation, *seq)?;
                if m.from != *me && !actor.admin {
                    return err(ErrorKind::Forbidden);
                }
                if m.deleted_at.is_some() {
                    return err(ErrorKind::Conflict);
                }
                self.change(
                    conversation,
                    *seq,
                    Event::Edit {
                        conversation: conversation.clone(),
                        seq: *seq,
                    },
                    |m| {
                        m.body = Some(body.clone());
                        m.edited_at = Some(now);
                    },
                )
            }
            Command::Delete { conversation, seq } => {
                let m = self.readable_message(actor, conversation, *seq)?;
                let owner = match conversation {
                    ConversationId::Group(g) => Some(self.group_of(g)?.owner),
                    ConversationId::Room(r) => Some(self.space_of(GroupKind::Room, r)?.owner),
                    ConversationId::Direct(..) => None,
                };
                if m.from != *me && owner.as_ref() != Some(me) && !actor.admin {
                    return err(ErrorKind::Forbidden);
                }
                if m.deleted_at.is_some() {
                    return Ok(Outcome::Message(m));
                }
                let event = Event::Delete {
                    conversation: conversation.clone(),
                    seq: *seq,
                    deleted_at: now,
                };
                self.change(conversation, *seq, event, |m| {
                    m.body = None;
                    m.edited_at = None;
                    m.reactions.clear();
                    m.deleted_at = Some(now);
                })
            }
            Command::React {
                conversation,
                seq,
                key,
                add,
            } => {
                let n = key.chars().count();
                if n == 0 || n > 32 || key.chars().any(char::is_control) {
                    return err(ErrorKind::Invalid);
                }
                if !self.participants(conversation)?.contains(me) {
                    return err(ErrorKind::Forbidden);
                }
                let m = self.readable_message(actor, conversation, *seq)?;
                if m.deleted_at.is_some() {
                    return err(ErrorKind::Conflict);
                }
                let users = m.reactions.get(key);
                if users.is_some_and(|u| u.contains(me)) == *add {
                    return Ok(Outcome::Message(m));
                }
                if *add && users.is_none() && m.reactions.len() >= self.limits.reaction_keys {
                    return err(ErrorKind::Conflict);
                }
                let event = Event::Reaction {
                    conversation: conversation.clone(),
                    seq: *seq,
                    key: key.clone(),
                    user: me.clone(),
                    change: if *add {
                        ReactionChange::Added
                    } else {
                        ReactionChange::Removed
                    },
                };
                self.change(conversation, *seq, event, |m| {
                    if *add {
                        m.reactions
                            .entry(key.clone())
                            .or_default()
                            .insert(me.clone());
                    } else if let Some(users) = m.reactions.get_mut(key) {
                        users.remove(me);
                        if users.is_empty() {
                            m.reactions.remove(key);
                        }
                    }
                })
            }
            Command::Reactions { conversation, seq } => {
                let m = self.readable_message(actor, conversation, *seq)?;
                Ok(Outcome::Reactions(m.reactions.into_iter().collect()))
            }
        }
    }

    fn erase(&mut self, actor: &Actor, id: &UserId) -> Answer {
        if !actor.admin {
            return err(ErrorKind::Forbidden);
        }
        self.user_exists(id)?;
        let convs: Vec<ConversationId> = self
            .entries
            .get(id)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        let mut groups = Vec::new();
        for c in &convs {
            if let Some(g) = c.space() {
                if self.groups.get(g).is_some_and(|g| g.owner == *id) {
                    return err(ErrorKind::Conflict);
                }
                groups.push(g.clone());
            }
        }
        let now = self.now;
        for c in &convs {
            let mine: Vec<Seq> = self
                .logs
                .get(c)
                .into_iter()
                .flatten()
                .filter(|m| m.from == *id && m.deleted_at.is_none())
                .map(|m| m.seq)
                .collect();
            for seq in mine {
                let event = Event::Delete {
                    conversation: c.clone(),
                    seq,
                    deleted_at: now,
                };
                self.change(c, seq, event, |m| {
                    m.body = None;
                    m.edited_at = None;
                    m.reactions.clear();
                    m.deleted_at = Some(now);
                })?;
            }
        }
        for g in &groups {
            self.remove_member(g, id);
        }
        self.contacts.remove(id);
        for set in self.contacts.values_mut() {
            set.remove(id);
        }
        self.entries.remove(id);
        self.blocks.remove(id);
        self.suspended.remove(id);
        self.users.remove(id);
        self.passwords.remove(id);
        if let Some(feed) = self.feeds.get_mut(id) {
            feed.trimmed = feed.head;
            feed.events.clear();
        }
        Ok(Outcome::Done)
    }

    /// A message the actor may read: the conversation exists, the actor
    /// reads it, the message exists.
    fn readable_message(
        &self,
        actor: &Actor,
        c: &ConversationId,
        seq: Seq,
    ) -> Result<Message, ErrorKind> {
        self.require_reader(actor, c)?;
        self.logs
            .get(c)
            .and_then(|l| l.get((seq as usize).wrapping_sub(1)))
            .cloned()
            .ok_or(ErrorKind::NotFound)
    }

    /// Applies `edit` to a message and tells every participant.
    fn change(
        &mut self,
        c: &ConversationId,
        seq: Seq,
        event: Event,
        edit: impl FnOnce(&mut Message),
    ) -> Answer {
        let Some(m) = self
            .logs
            .get_mut(c)
            .and_then(|l| l.get_mut((seq as usize).wrapping_sub(1)))
        else {
            return err(ErrorKind::NotFound);
        };
        edit(m);
        let m = m.clone();
        if let ConversationId::Room(_) = c {
            self.commit_unfanned(event);
            return Ok(Outcome::Message(m));
        }
        for user in self.participants(c)? {
            self.push_event(&user, event.clone());
        }
        Ok(Outcome::Message(m))
    }

    fn require_reader(&self, actor: &Actor, c: &ConversationId) -> Result<(), ErrorKind> {
        if self.participants(c)?.contains(&actor.user) || actor.admin {
            Ok(())
        } else {
            err(ErrorKind::Forbidden)
        }
    }

    /// What a read of `user`'s feed from `start` answers.
    pub fn feed(&self, user: &UserId, start: Start, limit: usize) -> EventPage {
        let empty = ModelFeed::default();
        let f = self.feeds.get(user).unwrap_or(&empty);
        let cursor = |pos| Cursor {
            epoch: MODEL_EPOCH,
            pos,
        };
        let reset = |reason| Delivered {
            cursor: cursor(f.trimmed),
            data: EventData::Reset { reason },
        };
        let (pos, first) = match start {
            Start::Live => (f.head, None),
            Start::Oldest => (f.trimmed, None),
            Start::After(c) if c.epoch != MODEL_EPOCH || c.pos > f.head => {
                (f.trimmed, Some(reset(ResetReason::Unknown)))
            }
            Start::After(c) if c.pos < f.trimmed => (f.trimmed, Some(reset(ResetReason::Expired))),
            Start::After(c) => (c.pos, None),
        };
        let events: Vec<_> = f
            .events
            .iter()
            .filter(|e| e.pos > pos)
            .take(limit)
            .collect();
        let next = events.last().map_or(pos, |e| e.pos);
        let delivered = events.into_iter().filter_map(|e| {
            Some(Delivered {
                cursor: cursor(e.pos),
                data: self.resolve(&e.event)?,
            })
        });
        EventPage {
            events: first.into_iter().chain(delivered).collect(),
            next: cursor(next),
        }
    }

    /// What a stored event is delivered as: a message, or an edit, as the
    /// message now is.
    fn resolve(&self, event: &Event) -> Option<EventData> {
        let message = match event {
            Event::Message { conversation, seq } | Event::Edit { conversation, seq } => self
                .logs
                .get(conversation)
                .and_then(|l| l.get((*seq as usize).wrapping_sub(1)))
                .cloned(),
            _ => None,
        };
        EventData::resolved(event.clone(), message)
    }

    /// The time of the newest event of every feed, to check retention by age
    /// if a test configures it.
    pub fn newest_event_ts(&self, user: &UserId) -> Option<Timestamp> {
        self.feeds
            .get(user)
            .and_then(|f| f.events.back())
            .map(|e| e.ts)
    }
}

/// `limit` items of the sorted `list` from `start`, with the cursor of the
/// last when more follow.
fn model_page<T>(list: Vec<T>, start: usize, limit: usize, key: fn(&T) -> String) -> Page<T> {
    let rest = list.len().saturating_sub(start);
    let items: Vec<T> = list.into_iter().skip(start).take(limit).collect();
    let has_more = rest > limit;
    let next = if has_more {
        items.last().map(key)
    } else {
        None
    };
    Page {
        items,
        has_more,
        next,
    }
}
