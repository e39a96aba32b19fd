//! `MemoryStore`: the whole store in one mutex-guarded map set. For tests,
//! ephemeral servers and as the plain reading of the `Store` contract.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::collections::BTreeSet;

#[path = "memory_export.rs"]
mod export;

use futures_core::Stream;

use super::{Notifier, Record, RoomBus, SignalBus};
use crate::data::{
    Contact, ConvEntry, ConversationId, Epoch, Event, Feed, FeedEntry, FireEntry, Firehose, Group,
    GroupId, GroupKind, Member, Membership, Message, Presence, Seq, Timestamp, User, UserId,
};
use crate::store::{
    Changes, ContactChange, EntryChange, FeedTrim, Mark, MarkChange, Marks, MemberChange,
    MemberUpdate, MessageChange, MessageUpdate, MessageUpdated, Outgoing, Recipients, Sent, Store,
    StoreError, Updated, apply_change, fire_events,
};

/// A store that keeps everything in memory. Cloning it shares the data.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    notifier: Notifier,
    signals: SignalBus,
    rooms: RoomBus,
    epoch: Epoch,
}

/// A hash map with a faster hasher than std's: a send to a group hashes
/// each member's id several times. (aHash is keyed per map, like std's.)
type Map<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Debug, Default)]
struct State {
    users: Map<UserId, User>,
    contacts: Map<UserId, BTreeMap<UserId, Contact>>,
    /// The reverse of `contacts`: who has a user in theirs.
    followers: Map<UserId, BTreeSet<UserId>>,
    groups: Map<GroupId, Group>,
    members: Map<GroupId, BTreeMap<UserId, Member>>,
    logs: Map<ConversationId, Vec<Message>>,
    client_ids: Map<(ConversationId, UserId, String), Seq>,
    /// Each user's index entries and feed, in one map: a send to a group
    /// looks each member up once.
    inboxes: Map<UserId, Inbox>,
    presence: Map<UserId, Presence>,
    marks: Map<Marks, BTreeMap<UserId, Mark>>,
    /// The firehose: every event once, in commit order (position = index + 1).
    fire: Vec<FireEntry>,
    acked: Map<String, String>,
}

impl State {
    fn fire(&mut self, user: Option<UserId>, ts: Timestamp, event: Event) {
        let pos = self.fire.len() as u64 + 1;
        self.fire.push(FireEntry {
            pos,
            ts,
            user,
            event,
        });
    }

    fn marked(&self, set: &Marks, user: &UserId) -> bool {
        marks_has(&self.marks, set, user)
    }

    /// Whether `c` is a direct conversation one of whose users blocks the
    /// other.
    fn blocked(&self, c: &ConversationId) -> bool {
        match c {
            ConversationId::Direct(a, b) => {
                self.marked(&Marks::Blocks(a.clone()), b)
                    || self.marked(&Marks::Blocks(b.clone()), a)
            }
            ConversationId::Group(_) | ConversationId::Room(_) => false,
        }
    }

    /// Whether `user` is a member of `group` (or room).
    fn is_member(&self, group: &GroupId, user: &UserId) -> bool {
        self.members
            .get(group)
            .is_some_and(|s| s.contains_key(user))
    }
}

/// What a user holds of the conversations: an index entry per
/// conversation, and the feed.
#[derive(Debug, Default)]
struct Inbox {
    entries: BTreeMap<ConversationId, ConvEntry>,
    feed: UserFeed,
}

/// A feed: its events after `trimmed`, at positions `trimmed + 1` on (so
/// an entry need not hold its position).
#[derive(Debug, Default)]
struct UserFeed {
    trimmed: u64,
    head: u64,
    /// A send shares one event among its recipients' feeds.
    entries: VecDeque<Shared>,
}

/// A feed entry whose event is shared with other feeds.
#[derive(Debug)]
struct Shared {
    ts: Timestamp,
    event: Arc<Event>,
}

impl UserFeed {
    fn append(&mut self, ts: Timestamp, event: Arc<Event>, trim: FeedTrim) {
        self.head += 1;
        self.entries.push_back(Shared { ts, event });
        // Only an age limit needs the oldest event: without one, a feed
        // within its count touches its tail alone.
        loop {
            let over = self.entries.len() as u64 > trim.keep;
            let old = trim.min_ts > 0 && self.entries.front().is_some_and(|f| f.ts < trim.min_ts);
            if !(over || old) || self.entries.pop_front().is_none() {
                break;
            }
            self.trimmed += 1;
        }
    }

    /// Up to `limit` entries after position `after`.
    fn after(&self, after: u64, limit: usize) -> impl Iterator<Item = FeedEntry> + '_ {
        let skip = after
            .saturating_sub(self.trimmed)
            .min(self.entries.len() as u64);
        let first = self.trimmed + skip + 1;
        (first..)
            .zip(self.entries.iter().skip(skip as usize).take(limit))
            .map(|(pos, e)| FeedEntry {
                pos,
                ts: e.ts,
                event: Event::clone(&e.event),
            })
    }
}

/// `map[key]`, inserted empty when missing: hashes `key` once and clones it
/// only then. (A function could not return the first lookup's borrow in
/// one arm and take a new one in the other.)
macro_rules! slot {
    ($map:expr, $key:expr) => {
        match $map.get_mut($key) {
            Some(value) => value,
            None => $map.entry($key.clone()).or_default(),
        }
    };
}

fn marks_has(marks: &Map<Marks, BTreeMap<UserId, Mark>>, set: &Marks, user: &UserId) -> bool {
    marks.get(set).is_some_and(|m| m.contains_key(user))
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with a new epoch.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            notifier: Notifier::new(),
            signals: SignalBus::new(),
            rooms: RoomBus::new(),
            epoch: Epoch::random(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every write below is applied whole before the guard drops, so a
        // panic elsewhere cannot leave half a change behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `MemoryStore` cannot fail.
impl From<Infallible> for StoreError {
    fn from(e: Infallible) -> Self {
        match e {}
    }
}

impl Store for MemoryStore {
    type Error = Infallible;

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn signals(&self) -> &SignalBus {
        &self.signals
    }

    fn rooms(&self) -> &RoomBus {
        &self.rooms
    }

    async fn send(&self, send: &Outgoing) -> Result<Sent, Infallible> {
        let m = &send.message;
        let sent = {
            let mut st = self.state();
            let st = &mut *st;
            if st.blocked(&m.conversation) {
                return Ok(Sent::Blocked);
            }
            // A group's members are read in place, not copied: nothing is
            // cloned per recipient on the way to their feeds. A room's
            // message goes to its log only.
            let recipients: Vec<&UserId> = match &send.recipients {
                Recipients::Users(users) => users.iter().collect(),
                Recipients::Room(r) if !st.is_member(r, &m.from) => return Ok(Sent::NotMember),
                Recipients::Room(_) => Vec::new(),
                Recipients::Members(g) => {
                    let members = st.members.get(g);
                    if !members.is_some_and(|s| s.contains_key(&m.from)) {
                        return Ok(Sent::NotMember);
                    }
                    members.into_iter().flat_map(|s| s.keys()).collect()
                }
            };
            let key = m
                .client_id
                .clone()
                .map(|id| (m.conversation.clone(), m.from.clone(), id));
            if let Some(seq) = key.as_ref().and_then(|k| st.client_ids.get(k)) {
                let log = &st.logs[&m.conversation];
                return Ok(Sent::Duplicate(log[*seq as usize - 1].clone()));
            }
            let log = st.logs.entry(m.conversation.clone()).or_default();
            let message = m.numbered(log.len() as Seq + 1);
            log.push(message.clone());
            if let Some(k) = key {
                st.client_ids.insert(k, message.seq);
            }
            let event = Arc::new(Event::Message {
                conversation: m.conversation.clone(),
                seq: message.seq,
            });
            for &user in &recipients {
                let inbox = slot!(st.inboxes, user);
                let entries = &mut inbox.entries;
                let entry = match entries.get_mut(&m.conversation) {
                    Some(entry) => entry,
                    None => entries.entry(m.conversation.clone()).or_insert(ConvEntry {
                        conversation: m.conversation.clone(),
                        read_seq: 0,
                        activity: m.ts,
                    }),
                };
                entry.activity = m.ts;
                if *user == m.from {
                    entry.read_seq = entry.read_seq.max(message.seq);
                }
                inbox.feed.append(m.ts, Arc::clone(&event), send.trim);
            }
            // Woken under the lock, while the members are at hand.
            self.notifier.wake(recipients);
            st.fire(None, m.ts, Event::clone(&event));
            message
        };
        Ok(Sent::New(sent))
    }

    async fn update_message(&self, u: &MessageUpdate) -> Result<MessageUpdated, Infallible> {
        let (updated, recipients) = {
            let mut st = self.state();
            let st = &mut *st;
            let Some(message) = st
                .logs
                .get_mut(&u.conversation)
                .and_then(|log| log.get_mut((u.seq as usize).wrapping_sub(1)))
            else {
                return Ok(MessageUpdated::NotFound);
            };
            let mut changed = message.clone();
            let event = match apply_change(&mut changed, &u.change, u.at, u.max_reaction_keys) {
                Ok(event) => event,
                Err(refused) => return Ok(refused.answer(message)),
            };
            let recipients: Vec<UserId> = match &u.recipients {
                Recipients::Users(users) => users.clone(),
                Recipients::Room(r) => match &u.change {
                    MessageChange::React { user, .. }
                        if !st.members.get(r).is_some_and(|s| s.contains_key(user)) =>
                    {
                        return Ok(MessageUpdated::NotMember);
                    }
                    _ => Vec::new(),
                },
                Recipients::Members(g) => {
                    let members = st.members.get(g);
                    if let MessageChange::React { user, .. } = &u.change
                        && !members.is_some_and(|s| s.contains_key(user))
                    {
                        return Ok(MessageUpdated::NotMember);
                    }
                    members
                        .into_iter()
                        .flat_map(|s| s.keys().cloned())
                        .collect()
                }
            };
            *message = changed.clone();
            let event = Arc::new(event);
            for user in &recipients {
                slot!(st.inboxes, user)
                    .feed
                    .append(u.at, Arc::clone(&event), u.trim);
            }
            st.fire(None, u.at, Event::clone(&event));
            (MessageUpdated::Changed(changed), recipients)
        };
        self.notifier.wake(&recipients);
        Ok(updated)
    }

    async fn update_member(&self, u: &MemberUpdate) -> Result<Updated, Infallible> {
        let conversation = ConversationId::group(u.group.clone());
        let woken: Vec<UserId> = {
            let mut st = self.state();
            let st = &mut *st;
            let members = st.members.entry(u.group.clone()).or_default();
            let (user, change) = match &u.change {
                MemberChange::Put(m) if members.contains_key(&m.id) => {
                    return Ok(Updated::Unchanged);
                }
                MemberChange::Put(m)
                    if marks_has(&st.marks, &Marks::Bans(u.group.clone()), &m.id) =>
                {
                    return Ok(Updated::Banned);
                }
                MemberChange::Put(_) if members.len() >= u.max_members => {
                    return Ok(Updated::Full);
                }
                MemberChange::Put(m) if u.kind == GroupKind::Room => {
                    members.insert(m.id.clone(), m.clone());
                    return Ok(Updated::Changed);
                }
                MemberChange::Remove(id) if u.kind == GroupKind::Room => {
                    let removed = members.remove(id).is_some();
                    return Ok(if removed {
                        Updated::Changed
                    } else {
                        Updated::Unchanged
                    });
                }
                MemberChange::Put(m) => {
                    members.insert(m.id.clone(), m.clone());
                    let read_seq = st.logs.get(&conversation).map_or(0, |l| l.len() as Seq);
                    st.inboxes.entry(m.id.clone()).or_default().entries.insert(
                        conversation.clone(),
                        ConvEntry {
                            conversation: conversation.clone(),
                            read_seq,
                            activity: u.at,
                        },
                    );
                    (m.id.clone(), Membership::Joined)
                }
                MemberChange::Remove(id) => {
                    if !members.contains_key(id) {
                        return Ok(Updated::Unchanged);
                    }
                    (id.clone(), Membership::Left)
                }
            };
            // Every member hears of it, the one who joined or left included.
            let woken: Vec<UserId> = members.keys().cloned().collect();
            let event = Arc::new(Event::member(&u.group, &user, change));
            for member in &woken {
                slot!(st.inboxes, member)
                    .feed
                    .append(u.at, Arc::clone(&event), u.trim);
            }
            if change == Membership::Left {
                members.remove(&user);
                if let Some(inbox) = st.inboxes.get_mut(&user) {
                    inbox.entries.remove(&conversation);
                }
            }
            st.fire(None, u.at, Event::clone(&event));
            woken
        };
        self.notifier.wake(&woken);
        Ok(Updated::Changed)
    }

    async fn commit(&self, changes: &Changes) -> Result<(), Infallible> {
        {
            let mut st = self.state();
            for u in &changes.users {
                st.users.insert(u.id.clone(), u.clone());
            }
            for (owner, change) in &changes.contacts {
                let set = st.contacts.entry(owner.clone()).or_default();
                let id = match change {
                    ContactChange::Put(c) => {
                        set.insert(c.id.clone(), c.clone());
                        &c.id
                    }
                    ContactChange::Remove(id) => {
                        set.remove(id);
                        id
                    }
                };
                let followers = st.followers.entry(id.clone()).or_default();
                if matches!(change, ContactChange::Put(_)) {
                    followers.insert(owner.clone());
                } else {
                    followers.remove(owner);
                }
            }
            for g in &changes.groups {
                st.groups.insert(g.id.clone(), g.clone());
            }
            for (group, change) in &changes.members {
                let set = st.members.entry(group.clone()).or_default();
                match change {
                    MemberChange::Put(m) => set.insert(m.id.clone(), m.clone()),
                    MemberChange::Remove(id) => set.remove(id),
                };
            }
            for (user, change) in &changes.entries {
                let set = &mut st.inboxes.entry(user.clone()).or_default().entries;
                match change {
                    EntryChange::Put(e) => {
                        set.insert(e.conversation.clone(), e.clone());
                    }
                    EntryChange::Remove(c) => {
                        set.remove(c);
                    }
                    EntryChange::Read { conversation, seq } => {
                        if let Some(e) = set.get_mut(conversation) {
                            e.read_seq = e.read_seq.max(*seq);
                        }
                    }
                }
            }
            for (user, ts, event) in &changes.events {
                let event = Arc::new(event.clone());
                slot!(st.inboxes, user)
                    .feed
                    .append(*ts, event, changes.trim);
            }
            for (user, ts, event) in fire_events(changes) {
                st.fire(user, ts, event);
            }
            for (set, change) in &changes.marks {
                let marks = st.marks.entry(set.clone()).or_default();
                match change {
                    MarkChange::Put(m) => marks.insert(m.user.clone(), m.clone()),
                    MarkChange::Remove(user) => marks.remove(user),
                };
            }
            for user in &changes.erase {
                st.users.remove(user);
                if let Some(Inbox { feed, .. }) = st.inboxes.get_mut(user) {
                    feed.trimmed = feed.head;
                    feed.entries.clear();
                }
            }
        }
        self.notifier.wake(changes.events.iter().map(|(u, ..)| u));
        Ok(())
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, Infallible> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn contact(&self, owner: &UserId, id: &UserId) -> Result<Option<Contact>, Infallible> {
        Ok(self
            .state()
            .contacts
            .get(owner)
            .and_then(|s| s.get(id))
            .cloned())
    }

    async fn contacts(&self, owner: &UserId) -> Result<Vec<Contact>, Infallible> {
        Ok(self
            .state()
            .contacts
            .get(owner)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn followers(&self, user: &UserId) -> Result<Vec<UserId>, Infallible> {
        Ok(self
            .state()
            .followers
            .get(user)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>, Infallible> {
        Ok(self.state().groups.get(id).cloned())
    }

    async fn member(&self, group: &GroupId, user: &UserId) -> Result<Option<Member>, Infallible> {
        Ok(self
            .state()
            .members
            .get(group)
            .and_then(|s| s.get(user))
            .cloned())
    }

    async fn members(&self, group: &GroupId) -> Result<Vec<Member>, Infallible> {
        Ok(self
            .state()
            .members
            .get(group)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn member_count(&self, group: &GroupId) -> Result<usize, Infallible> {
        Ok(self.state().members.get(group).map_or(0, BTreeMap::len))
    }

    async fn members_after(
        &self,
        group: &GroupId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<Member>, Infallible> {
        let st = self.state();
        let Some(members) = st.members.get(group) else {
            return Ok(Vec::new());
        };
        let from = match after {
            Some(a) => std::ops::Bound::Excluded(a.clone()),
            None => std::ops::Bound::Unbounded,
        };
        Ok(members
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect())
    }

    async fn last_seq(&self, conversation: &ConversationId) -> Result<Seq, Infallible> {
        Ok(self
            .state()
            .logs
            .get(conversation)
            .map_or(0, |l| l.len() as Seq))
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        from: Seq,
        to: Seq,
    ) -> Result<Vec<Message>, Infallible> {
        let st = self.state();
        let Some(log) = st.logs.get(conversation) else {
            return Ok(Vec::new());
        };
        let from = from.max(1) as usize - 1;
        let to = (to as usize).min(log.len());
        Ok(log
            .get(from..to)
            .map(<[Message]>::to_vec)
            .unwrap_or_default())
    }

    async fn entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConvEntry>, Infallible> {
        Ok(self
            .state()
            .inboxes
            .get(user)
            .and_then(|i| i.entries.get(conversation))
            .cloned())
    }

    async fn entries(&self, user: &UserId) -> Result<Vec<ConvEntry>, Infallible> {
        Ok(self
            .state()
            .inboxes
            .get(user)
            .map(|i| i.entries.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn feed(&self, user: &UserId, after: u64, limit: usize) -> Result<Feed, Infallible> {
        let st = self.state();
        let Some(Inbox { feed: f, .. }) = st.inboxes.get(user) else {
            return Ok(Feed::default());
        };
        Ok(Feed {
            trimmed: f.trimmed,
            head: f.head,
            entries: f.after(after, limit).collect(),
        })
    }

    async fn firehose(
        &self,
        part: usize,
        after: u64,
        limit: usize,
    ) -> Result<Firehose, Infallible> {
        let st = self.state();
        let entries = if part == 0 {
            let skip = usize::try_from(after).unwrap_or(usize::MAX);
            st.fire.iter().skip(skip).take(limit).cloned().collect()
        } else {
            Vec::new()
        };
        let head = if part == 0 { st.fire.len() as u64 } else { 0 };
        Ok(Firehose { head, entries })
    }

    async fn acked(&self, name: &str) -> Result<Option<String>, Infallible> {
        Ok(self.state().acked.get(name).cloned())
    }

    async fn set_acked(&self, name: &str, value: &str) -> Result<(), Infallible> {
        self.state().acked.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    async fn set_presence(
        &self,
        user: &UserId,
        online: bool,
        at: Timestamp,
    ) -> Result<(), Infallible> {
        let mut st = self.state();
        let p = st.presence.entry(user.clone()).or_default();
        p.online = online;
        if !online {
            p.last_seen = Some(at);
        }
        Ok(())
    }

    fn export(&self) -> impl Stream<Item = Result<Record, Infallible>> + Send + '_ {
        let records = self.records();
        async_stream::stream! {
            for r in records {
                yield Ok(r);
            }
        }
    }

    async fn presence(&self, user: &UserId) -> Result<Presence, Infallible> {
        Ok(self.state().presence.get(user).copied().unwrap_or_default())
    }

    async fn marks(&self, set: &Marks) -> Result<Vec<Mark>, Infallible> {
        Ok(self
            .state()
            .marks
            .get(set)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn mark(&self, set: &Marks, user: &UserId) -> Result<Option<Mark>, Infallible> {
        Ok(self
            .state()
            .marks
            .get(set)
            .and_then(|m| m.get(user))
            .cloned())
    }

    async fn ping(&self) -> Result<(), Infallible> {
        Ok(())
    }

    async fn flush(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Memory;

    crate::store_conformance_tests!(Memory);
}
