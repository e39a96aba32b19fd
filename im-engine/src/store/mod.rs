//! The `Store` trait: what a backend must keep, and the atomic writes the
//! engine hands it.
//!
//! The engine decides everything (who may do what, which limits hold, what a
//! change consists of); a store only keeps data and applies each write whole.
//! There are two writes:
//!
//! - [`Store::send`], the hot path: the store itself numbers the message
//!   (`last_seq + 1`, in commit order), so concurrent senders never need a
//!   lock in the engine and many nodes can share one store;
//! - [`Store::commit`], every other change as one [`Changes`] set.
//!
//! Both must be atomic and, when they return `Ok`, durable as the store
//! promises. After either, the store wakes its [`Notifier`] for every user
//! whose feed grew, so live streams (on every node sharing the store) read on.
//!
//! Signals (typing, presence, receipts) are no writes: [`Store::publish`]
//! hands one to the [`SignalBus`] of every process sharing the store.

use std::future::Future;

use futures_core::Stream;

use crate::data::{
    Addressed, Body, Contact, ConvEntry, ConversationId, Epoch, Event, Feed, Firehose, Group,
    GroupId, GroupKind, Member, Message, NewMessage, Presence, ReactionChange, Seq, Timestamp,
    User, UserId,
};
pub use crate::error::StoreError;

mod bus;
pub mod export;
mod marks;
mod memory;
mod notify;
mod rooms_bus;

pub use bus::{BACKLOG, SignalBus, SignalReceiver};
pub use export::{ImportError, Importer, Record};
pub use marks::{Mark, MarkChange, Marks};
pub use memory::MemoryStore;
pub use notify::{Notifier, Wakeup};
pub use rooms_bus::{Follows, ROOM_BACKLOG, RoomBus, RoomEvent, RoomReceiver};

/// A message on its way: the message and who receives it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message without its seq, which the store assigns.
    pub message: NewMessage,
    /// Who receives it, sender included: each gets the conversation at the
    /// top of its index and a [`Event::Message`] in its feed.
    pub recipients: Recipients,
    /// The retention to apply to the feeds appended to.
    pub trim: FeedTrim,
}

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// These users: the two of a direct conversation, which exist for good.
    Users(Vec<UserId>),
    /// The members of this group as they are when the message commits, read
    /// in the same atomic step as the commit: a membership change is either
    /// wholly before a message or wholly after it.
    Members(GroupId),
    /// Nobody: the message (or change) of room `GroupId` is stored once,
    /// in the room's log, and no feed or index entry is written. The
    /// sender (or reacting user) must be a member when it commits, read in
    /// the same atomic step.
    Room(GroupId),
}

/// A join or a leave of one group, applied whole (see [`Store::update_member`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberUpdate {
    /// The group.
    pub group: GroupId,
    /// What happens to whom.
    pub change: MemberChange,
    /// When (the joined member's `since`, its entry's activity, the events' time).
    pub at: Timestamp,
    /// A join is refused when the group already has this many members.
    pub max_members: usize,
    /// The retention to apply to the feeds appended to.
    pub trim: FeedTrim,
    /// [`GroupKind::Room`]: a room's join or leave changes the member set
    /// only (no index entry, no event: the engine writes the member's
    /// entry itself, in the member's own write).
    pub kind: GroupKind,
}

/// What [`Store::update_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The membership changed.
    Changed,
    /// Nothing to do: the user was a member already (join) or was not one
    /// (leave). Nothing was written.
    Unchanged,
    /// The group has `max_members` members: nothing was written.
    Full,
    /// A join of a user in the group's [`Marks::Bans`]: nothing was written.
    Banned,
}

/// Feed retention, applied by a write to every feed it appends to, after
/// appending: the oldest events are dropped while the feed holds more than
/// `keep` events or the oldest is older than `min_ts`. The highest position
/// dropped is remembered as [`Feed::trimmed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTrim {
    /// Most events kept per feed.
    pub keep: u64,
    /// Events before this time are dropped (0 keeps all).
    pub min_ts: Timestamp,
}

impl Default for FeedTrim {
    fn default() -> Self {
        Self {
            keep: u64::MAX,
            min_ts: 0,
        }
    }
}

/// A change to a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageChange {
    /// Replace its body (and set `edited_at`).
    Edit(Body),
    /// Erase its body, set `deleted_at`, and drop its reactions.
    Delete,
    /// Add (`add`) or remove `user`'s reaction `key`.
    React {
        /// Who reacts.
        user: UserId,
        /// The reaction.
        key: String,
        /// Add it, or take it back.
        add: bool,
    },
}

/// A change to one message, applied whole (see [`Store::update_message`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageUpdate {
    /// The message's conversation.
    pub conversation: ConversationId,
    /// Its seq.
    pub seq: Seq,
    /// What changes.
    pub change: MessageChange,
    /// When (`edited_at`, `deleted_at`, the event's time).
    pub at: Timestamp,
    /// Who hears of it: the conversation's participants, as for a send.
    pub recipients: Recipients,
    /// A reaction with a new key is refused when the message has this many.
    pub max_reaction_keys: usize,
    /// The retention to apply to the feeds appended to.
    pub trim: FeedTrim,
}

/// What [`Store::update_message`] did; every variant but `Changed` wrote
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageUpdated {
    /// Changed: the message as it now is.
    Changed(Message),
    /// Nothing to change (a reaction already there or already gone, a
    /// deleted message deleted again): the message as it is.
    Unchanged(Message),
    /// No such message.
    NotFound,
    /// The message is deleted: an edit or a reaction is refused.
    Deleted(Message),
    /// A new reaction key over `max_reaction_keys`.
    TooManyReactions,
    /// The recipients are [`Recipients::Members`] and the acting user (the
    /// reacting user; for an edit or delete, nobody is checked) is no
    /// member at the commit.
    NotMember,
}

/// Why [`apply_change`] wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing to change.
    Unchanged,
    /// The message is deleted.
    Deleted,
    /// A new reaction key past the limit.
    TooManyReactions,
}

impl Refusal {
    /// What [`Store::update_message`] answers for it, about `message`.
    pub fn answer(self, message: &Message) -> MessageUpdated {
        match self {
            Self::Unchanged => MessageUpdated::Unchanged(message.clone()),
            Self::Deleted => MessageUpdated::Deleted(message.clone()),
            Self::TooManyReactions => MessageUpdated::TooManyReactions,
        }
    }
}

/// Applies `change` to `message` as [`Store::update_message`] describes,
/// and answers the event to append. Every store applies changes with this
/// (each reads and writes the message its own way), so they cannot
/// disagree on what a change does.
///
/// # Errors
///
/// Why nothing is to be written (`message` is then as it was).
pub fn apply_change(
    message: &mut Message,
    change: &MessageChange,
    at: Timestamp,
    max_reaction_keys: usize,
) -> Result<Event, Refusal> {
    match change {
        MessageChange::Delete if message.is_deleted() => return Err(Refusal::Unchanged),
        MessageChange::Delete => {
            message.body = None;
            message.edited_at = None;
            message.reactions.clear();
            message.deleted_at = Some(at);
        }
        _ if message.is_deleted() => return Err(Refusal::Deleted),
        MessageChange::Edit(body) => {
            message.body = Some(body.clone());
            message.edited_at = Some(at);
        }
        MessageChange::React { user, key, add } => {
            let users = message.reactions.get(key);
            let has = users.is_some_and(|u| u.contains(user));
            if has == *add {
                return Err(Refusal::Unchanged);
            }
            if *add {
                if users.is_none() && message.reactions.len() >= max_reaction_keys {
                    return Err(Refusal::TooManyReactions);
                }
                message
                    .reactions
                    .entry(key.clone())
                    .or_default()
                    .insert(user.clone());
            } else if let Some(users) = message.reactions.get_mut(key) {
                users.remove(user);
                if users.is_empty() {
                    message.reactions.remove(key);
                }
            }
        }
    }
    Ok(change_event(&message.conversation, message.seq, change, at))
}

/// The event a change of message `seq` of `conversation` at `at` appends,
/// once [`apply_change`] found it to change something.
pub fn change_event(
    conversation: &ConversationId,
    seq: Seq,
    change: &MessageChange,
    at: Timestamp,
) -> Event {
    let conversation = conversation.clone();
    match change {
        MessageChange::Delete => Event::Delete {
            conversation,
            seq,
            deleted_at: at,
        },
        MessageChange::Edit(_) => Event::Edit { conversation, seq },
        MessageChange::React { user, key, add } => Event::Reaction {
            conversation,
            seq,
            key: key.clone(),
            user: user.clone(),
            change: if *add {
                ReactionChange::Added
            } else {
                ReactionChange::Removed
            },
        },
    }
}

/// The firehose entries of a change set, in order: its events, each once
/// (a shared event once however many users' feeds it goes to), as
/// `(user, ts, event)` with the user for an event of one user only.
pub fn fire_events(changes: &Changes) -> Vec<(Option<UserId>, Timestamp, Event)> {
    let events = changes.events.iter().map(|(u, ts, e)| (u, *ts, e));
    crate::hooks::Committed::once(events)
        .into_iter()
        .map(|c| (c.user, c.ts, c.event))
        .collect()
}

/// What [`Store::send`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// The message was stored with the returned seq.
    New(Message),
    /// The sender had already sent a message with this `client_id` in this
    /// conversation: that one is returned and nothing was written.
    Duplicate(Message),
    /// The recipients are [`Recipients::Members`] and the sender is not one
    /// of them at the commit: nothing was written.
    NotMember,
    /// The conversation is a direct one and one of its two users blocks
    /// the other ([`Marks::Blocks`]) at the commit: nothing was written.
    Blocked,
}

/// A change to a user's contact set.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    /// Add or replace the contact.
    Put(Contact),
    /// Remove the contact with this id, if present.
    Remove(UserId),
}

/// A change to a group's member set.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add or replace the member.
    Put(Member),
    /// Remove the member with this id, if present.
    Remove(UserId),
}

/// A change to a user's conversation index entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryChange {
    /// Add or replace the entry (joining a group).
    Put(ConvEntry),
    /// Remove the entry (leaving a group).
    Remove(ConversationId),
    /// Raise the entry's `read_seq` to `seq` if it is lower; no effect when
    /// there is no entry or it is already at or past `seq`.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// The new read cursor.
        seq: Seq,
    },
}

/// One atomic change set: all of it lands, or none of it.
///
/// Applied in field order, each list in its own order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Users to create or replace whole.
    pub users: Vec<User>,
    /// Contact changes, by owner.
    pub contacts: Vec<(UserId, ContactChange)>,
    /// Groups to create or replace whole.
    pub groups: Vec<Group>,
    /// Member changes, by group.
    pub members: Vec<(GroupId, MemberChange)>,
    /// Conversation index changes, by user.
    pub entries: Vec<(UserId, EntryChange)>,
    /// Events to append, each to its user's feed, with their time.
    pub events: Vec<(UserId, Timestamp, Event)>,
    /// Changes to sets of marks.
    pub marks: Vec<(Marks, MarkChange)>,
    /// Users to erase, last: the user record goes, and every event of its
    /// feed (its positions are kept, so a new user of that id starts after
    /// them). Its other data the engine removes with the changes above.
    pub erase: Vec<UserId>,
    /// The retention to apply to the feeds appended to.
    pub trim: FeedTrim,
}

/// Where a backend keeps the engine's data.
///
/// Implementations write `async fn`; callers get `Send` futures. Every read
/// error is returned as an error, never as "no data".
pub trait Store: Send + Sync + 'static {
    /// The backend's own error.
    type Error: std::error::Error + Send + Sync + 'static + Into<StoreError>;

    /// The id chosen at random when this store's data was created. Cursors
    /// carry it, so a cursor from a wiped or other store is recognised.
    fn epoch(&self) -> Epoch;

    /// The notifier this store wakes when feeds grow.
    fn notifier(&self) -> &Notifier;

    /// This process's signal bus, which [`Store::publish`] delivers to.
    fn signals(&self) -> &SignalBus;

    /// This process's room bus, which [`Store::publish_room`] delivers to.
    fn rooms(&self) -> &RoomBus;

    /// Hands a room's live event to the streams watching the room, on
    /// every process sharing this store, after its write committed; writes
    /// nothing. A store of one process delivers it to its own bus (the
    /// default); one shared by many carries it over its pub/sub, one
    /// subscription per watched room per process. Like a signal, one lost
    /// on the way is not retried: the room's history has it.
    fn publish_room(
        &self,
        event: &RoomEvent,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.rooms().deliver(event.clone());
        std::future::ready(Ok(()))
    }

    /// Hands a signal to the streams of the users it names, on every
    /// process sharing this store, and writes nothing. A store of one
    /// process delivers it to its own bus (the default); one shared by many
    /// carries it over its pub/sub, with no connection per stream. Signals
    /// are news of the moment: one lost on the way is not retried.
    fn publish(
        &self,
        addressed: &Addressed,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.signals().deliver(addressed);
        std::future::ready(Ok(()))
    }

    /// Stores a message, atomically with all it implies:
    ///
    /// 0. for [`Recipients::Members`] or [`Recipients::Room`], reads the
    ///    members; when the sender is not one, returns [`Sent::NotMember`]
    ///    and writes nothing;
    ///    for a direct conversation, reads its two users' [`Marks::Blocks`];
    ///    when either blocks the other, returns [`Sent::Blocked`] and writes
    ///    nothing;
    /// 1. if `client_id` is set and the sender already sent that id in the
    ///    conversation, returns [`Sent::Duplicate`] with the stored message
    ///    and writes nothing;
    /// 2. otherwise numbers it `last_seq + 1` and stores it;
    /// 3. for each recipient, sets the conversation's index entry's activity
    ///    to the message's `ts` (creating the entry with `read_seq` 0 when
    ///    absent) and, for the sender, raises `read_seq` to the new seq;
    /// 4. appends [`Event::Message`] to each recipient's feed and applies
    ///    [`Outgoing::trim`] to it.
    ///
    /// A room's message ([`Recipients::Room`]) has no recipients: steps 3
    /// and 4 write nothing.
    fn send(&self, send: &Outgoing) -> impl Future<Output = Result<Sent, Self::Error>> + Send;

    /// Applies a join or a leave, atomically with all it implies and in one
    /// order with every send to the group ([`Recipients::Members`]):
    ///
    /// - [`MemberChange::Put`] (a join): unless the user is a member already
    ///   ([`Updated::Unchanged`]), is in the group's [`Marks::Bans`]
    ///   ([`Updated::Banned`]) or the group has `max_members`
    ///   ([`Updated::Full`]), adds the member, gives it the conversation's
    ///   index entry with `read_seq` at the conversation's `last_seq` at
    ///   this commit and `activity` `at`, and appends
    ///   `Event::member(group, user, Joined)` to the feed of every member,
    ///   the new one included;
    /// - [`MemberChange::Remove`] (a leave): unless the user is no member
    ///   ([`Updated::Unchanged`]), appends `Event::member(group, user, Left)`
    ///   to the feed of every member, the leaving one included, then removes
    ///   the member and its index entry, so that no later message reaches it.
    ///
    /// For a room ([`MemberUpdate::kind`]) only the member set changes.
    fn update_member(
        &self,
        update: &MemberUpdate,
    ) -> impl Future<Output = Result<Updated, Self::Error>> + Send;

    /// Changes one message, atomically with its event:
    ///
    /// 1. reads the message: [`MessageUpdated::NotFound`] without one;
    ///    [`MessageUpdated::Deleted`] for an edit or a reaction of a
    ///    deleted message; [`MessageUpdated::Unchanged`] when there is
    ///    nothing to do; [`MessageUpdated::TooManyReactions`] for a new key
    ///    past `max_reaction_keys` (all as [`apply_change`] decides);
    /// 2. for [`Recipients::Members`] or [`Recipients::Room`], reads the
    ///    members; a reaction by a user who is no member returns
    ///    [`MessageUpdated::NotMember`];
    /// 3. otherwise stores the message as changed (a delete keeps no trace
    ///    of the body in what the store reads back) and appends
    ///    [`Event::Edit`], [`Event::Delete`] or [`Event::Reaction`] to each
    ///    recipient's feed, applying [`MessageUpdate::trim`]. It touches
    ///    no index entry: a change moves neither unread counts nor the
    ///    conversation list.
    fn update_message(
        &self,
        update: &MessageUpdate,
    ) -> impl Future<Output = Result<MessageUpdated, Self::Error>> + Send;

    /// Applies `changes` atomically (see [`Changes`]).
    fn commit(&self, changes: &Changes) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A user.
    fn user(&self, id: &UserId) -> impl Future<Output = Result<Option<User>, Self::Error>> + Send;

    /// One contact of `owner`.
    fn contact(
        &self,
        owner: &UserId,
        id: &UserId,
    ) -> impl Future<Output = Result<Option<Contact>, Self::Error>> + Send;

    /// All contacts of `owner`, in any order.
    fn contacts(
        &self,
        owner: &UserId,
    ) -> impl Future<Output = Result<Vec<Contact>, Self::Error>> + Send;

    /// Who has `user` in their contacts, in any order: the reverse of
    /// [`Store::contacts`], kept by the store atomically with every
    /// [`ContactChange`] (presence goes to these users).
    fn followers(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<UserId>, Self::Error>> + Send;

    /// A group.
    fn group(
        &self,
        id: &GroupId,
    ) -> impl Future<Output = Result<Option<Group>, Self::Error>> + Send;

    /// One member of a group.
    fn member(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Member>, Self::Error>> + Send;

    /// All members of a group, in any order.
    fn members(
        &self,
        group: &GroupId,
    ) -> impl Future<Output = Result<Vec<Member>, Self::Error>> + Send;

    /// The highest seq of a conversation, 0 when it has no message.
    fn last_seq(
        &self,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<Seq, Self::Error>> + Send;

    /// The messages with `from <= seq <= to`, oldest first.
    fn messages(
        &self,
        conversation: &ConversationId,
        from: Seq,
        to: Seq,
    ) -> impl Future<Output = Result<Vec<Message>, Self::Error>> + Send;

    /// A user's index entry for one conversation.
    fn entry(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> impl Future<Output = Result<Option<ConvEntry>, Self::Error>> + Send;

    /// All index entries of a user, in any order.
    fn entries(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<ConvEntry>, Self::Error>> + Send;

    /// Up to `limit` events of a user's feed with a position after `after`,
    /// oldest first, with the feed's bounds.
    fn feed(
        &self,
        user: &UserId,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Feed, Self::Error>> + Send;

    /// How many partitions the firehose is spread over: 1 unless the store
    /// spreads it to keep sends off one common key (the Redis Cluster).
    /// Every event of one conversation, and every event of one user, is in
    /// one partition.
    fn firehose_partitions(&self) -> usize {
        1
    }

    /// Up to `limit` entries of firehose partition `part` (below
    /// [`Store::firehose_partitions`]) with a position after `after`,
    /// oldest first, with the partition's head.
    ///
    /// The firehose holds every event the writes append to feeds, each
    /// once ([`fire_events`]): a shared event (`message`, `edit`, `delete`,
    /// `reaction`, `member`) once however many feeds got it, an event of
    /// one user with that user. Each write appends to it in the same atomic
    /// step as to the feeds (on the Redis Cluster: exactly once, by the
    /// fan-out; see its docs), in commit order within a partition;
    /// positions are dense from 1 and never trimmed.
    fn firehose(
        &self,
        part: usize,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Firehose, Self::Error>> + Send;

    /// The value last stored under `name` by [`Store::set_acked`] (a
    /// webhook's acknowledged firehose cursor), if any.
    fn acked(&self, name: &str)
    -> impl Future<Output = Result<Option<String>, Self::Error>> + Send;

    /// Stores `value` under `name`. It need not be durable when this
    /// answers (an acknowledgement lost in a crash only sends its events
    /// again), but should be soon after.
    fn set_acked(
        &self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Takes the lease `name` for `holder` for `ttl` when nobody holds it,
    /// or renews it when `holder` does: whether `holder` holds it now. A
    /// store of one process has one holder, and always answers `true` (the
    /// default); a store shared by many processes lets one of them hold it
    /// at a time, until it lapses.
    fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = (name, holder, ttl);
        std::future::ready(Ok(true))
    }

    /// Records that this process's first live stream of `user` opened
    /// (`online`) or its last one closed. A store shared by many processes
    /// keeps the user online while any of them has a stream open.
    fn set_presence(
        &self,
        user: &UserId,
        online: bool,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether a user is online, and when its last stream closed.
    fn presence(&self, user: &UserId)
    -> impl Future<Output = Result<Presence, Self::Error>> + Send;

    /// Every mark of one set, by user id.
    fn marks(&self, set: &Marks) -> impl Future<Output = Result<Vec<Mark>, Self::Error>> + Send;

    /// One user's mark in a set, if marked.
    fn mark(
        &self,
        set: &Marks,
        user: &UserId,
    ) -> impl Future<Output = Result<Option<Mark>, Self::Error>> + Send;

    /// Whether the store answers (for health checks).
    fn ping(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes every acknowledged write durable (for shutdown).
    fn flush(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Every record of the store but the format line, in
    /// [`Record::rank`] order, for an export ([`export`]), read as one
    /// consistent snapshot as far as the store can (its docs say how far).
    fn export(&self) -> impl Stream<Item = Result<Record, Self::Error>> + Send + '_;

    /// How many members a group (or room) has. This default reads every
    /// member; a store that keeps the count answers it at once.
    fn member_count(
        &self,
        group: &GroupId,
    ) -> impl Future<Output = Result<usize, Self::Error>> + Send {
        async move { Ok(self.members(group).await?.len()) }
    }

    /// Up to `limit` members of a group with an id after `after` (from the
    /// first without it), by id. This default reads every member; a store
    /// whose members are ordered by id reads only the page.
    fn members_after(
        &self,
        group: &GroupId,
        after: Option<&UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Member>, Self::Error>> + Send {
        async move {
            let mut members = self.members(group).await?;
            members.retain(|m| after.is_none_or(|a| m.id > *a));
            members.sort_by(|a, b| a.id.cmp(&b.id));
            members.truncate(limit);
            Ok(members)
        }
    }
}
