//! Every key layout of the store, in one place.
//!
//! The data lives in one sled tree, `records`, so that every write is one
//! atomic `apply_batch`: sled recovers a batch whole or not at all, but only
//! within one tree. Each key starts with a one-byte kind tag; the kinds keep
//! the `<key>_<value>` names they had as trees in format 1. Only the store's
//! format version and epoch live apart, in the tree `meta`.
//!
//! User and group ids are made of `A-Z a-z 0-9 _ . -` and conversation ids
//! (`dm:<a>:<b>`, `group:<g>`, `room:<r>`) add only `:`, so none of them contains the
//! byte `0xFF`: it separates the parts of a composite key, and a prefix
//! ending in it (`e alice 0xFF`) never matches a longer id (`e alicia 0xFF
//! …`). Sequence numbers and feed positions are big-endian `u64`, so key
//! order is numeric order and a range of keys is a range of numbers. A
//! `client_id` may be any text, but it is always the last part of its key
//! and UTF-8 never contains `0xFF` either.
//!
//! | kind                     | key bytes                              | value                                            |
//! |--------------------------|----------------------------------------|--------------------------------------------------|
//! | `userid_user`            | `u user`                               | [`User`](im_engine::User), JSON                  |
//! | `ownercontact_contact`   | `c owner 0xFF contact`                 | [`Contact`](im_engine::Contact), JSON            |
//! | `contactowner_`          | `w contact 0xFF owner`                 | empty: `owner` has `contact` in its contacts     |
//! | `groupid_group`          | `g group`                              | [`Group`](im_engine::Group), JSON                |
//! | `groupuser_member`       | `m group 0xFF user`                    | [`Member`](im_engine::Member), JSON              |
//! | `conv_state`             | `s conv`                               | `last_seq` `activity` `activity_seq` `holders`   |
//! | `convseq_message`        | `l conv 0xFF seq(u64 BE)`              | [`Message`](im_engine::Message), JSON            |
//! | `client_id_seq`          | `d conv 0xFF sender 0xFF client_id`    | `seq`                                            |
//! | `userconv_entry`         | `e user 0xFF conv`                     | `read_seq` `activity` `since`                    |
//! | `userpos_event`          | `f user 0xFF pos(u64 BE)`              | `ts` ++ [`Event`](im_engine::Event) JSON, or a run (below) |
//! | `user_feedfloor`         | `b user`                               | `head` of the feed when it was trimmed empty     |
//! | `user_lastseen`          | `t user`                               | `ts`                                             |
//! | `setuser_since`          | `k set 0xFF user`                      | `since` (a mark: see below)                      |
//! | `pos_fire`               | `h pos(u64 BE)`                        | [`FireEntry`](im_engine::FireEntry) JSON         |
//! | `name_acked`             | `a name`                               | a webhook's acknowledged firehose cursor, text   |
//! | `room_members`           | `n room`                               | how many members a room has, `u64` BE            |
//!
//! A mark's `set` names its [`Marks`] set as text: `requests:<group>`,
//! `bans:<group>`, `blocks:<user>` or `suspended`.
//!
//! The first letter of each key is its kind tag, one ASCII byte, directly
//! followed by the rest (`e alice 0xFF group:g` is the bytes
//! `ealice\xFFgroup:g`). `conv` is the conversation id as text
//! (`dm:alice:bob`, `group:rust`); the fixed-size values are `u64` BE each,
//! in the order listed. Tree `meta`: `"version"` -> `u32` BE (the format,
//! 2), `"epoch"` -> `u64` BE.
//!
//! The firehose (`pos_fire`) is one log for the whole store: every write
//! appends its events there, each once, in the same batch as the feeds; its
//! head is its last key. It needs no format change: a store from before it
//! simply starts its firehose empty.
//!
//! Every tree the write-ahead log writes to also holds the key
//! `0x00 "wal-applied"`: the log position (`u64` BE) of the last write
//! applied to it (see the `wal` module). No kind tag is `0x00`, so no scan
//! of a kind meets it.
//!
//! A send to a group of N members writes N feed events and a handful of
//! other keys, not 3N, because nothing per member is derived on disk; and
//! sends combined into one batch (the writer thread's) write one feed key
//! per member between them:
//!
//! - **A feed key may hold a run of events.** The events one batch appends
//!   to a feed are one key at the first of their positions, holding
//!   `ts u64 | 0x00 | count u32 | (len u32 | ts ++ JSON)*` (`ts` the first
//!   event's). A single event is stored as it always was; its byte 8 is the
//!   `{` of its JSON, never `0x00`, so the two cannot be mistaken and feeds
//!   written before runs read on with no migration.
//! - **Feed bounds come from the feed keys.** Positions are dense, so a
//!   feed's head is the last position of its last key's run and the
//!   highest trimmed position is one below its first key (a trim that cuts
//!   a run rewrites its remainder at the new first position). Only a feed trimmed to nothing has no keys to say
//!   where it stood: `user_feedfloor` keeps that head (and is ignored while
//!   the feed holds events).
//! - **A group's activity is kept on the conversation.** `conv_state` holds
//!   the `activity` (message time) and `activity_seq` of the last send that
//!   reached every user with an entry for the conversation (their number is
//!   `holders`). An entry keeps its own `activity` from the moment `since`
//!   (the conversation's `last_seq` when the entry was last written); its
//!   activity is the conversation's when `activity_seq > since`, else its
//!   own. A send that reaches only some holders (the `Store` contract
//!   allows it) writes those holders' entries instead.

use im_engine::store::Marks;
use im_engine::{ConversationId, GroupId, Seq, UserId};

/// Separates the parts of a composite key; never part of an id.
pub(crate) const SEP: u8 = 0xFF;

/// Tree names.
pub(crate) mod tree {
    /// Store-wide settings: format version and epoch.
    pub(crate) const META: &str = "meta";
    /// Every record, each key starting with its [`kind`](super::kind).
    pub(crate) const RECORDS: &str = "records";
}

/// The first byte of every key in [`tree::RECORDS`], one per kind of
/// record, named as in the table above.
pub(crate) mod kind {
    /// `user` -> user.
    pub(crate) const USERID_USER: u8 = b'u';
    /// `owner 0xFF contact` -> contact.
    pub(crate) const OWNERCONTACT_CONTACT: u8 = b'c';
    /// `contact 0xFF owner` -> nothing: the reverse of
    /// [`OWNERCONTACT_CONTACT`], written in the same batch.
    pub(crate) const CONTACTOWNER_: u8 = b'w';
    /// `group` -> group.
    pub(crate) const GROUPID_GROUP: u8 = b'g';
    /// `group 0xFF user` -> member.
    pub(crate) const GROUPUSER_MEMBER: u8 = b'm';
    /// `conv` -> last seq, activity, holders.
    pub(crate) const CONV_STATE: u8 = b's';
    /// `conv 0xFF seq` -> message.
    pub(crate) const CONVSEQ_MESSAGE: u8 = b'l';
    /// `conv 0xFF sender 0xFF client_id` -> seq: a sender's idempotency
    /// key in a conversation, and the message it sent with it.
    pub(crate) const CLIENT_ID_SEQ: u8 = b'd';
    /// `user 0xFF conv` -> index entry.
    pub(crate) const USERCONV_ENTRY: u8 = b'e';
    /// `user 0xFF pos` -> feed event.
    pub(crate) const USERPOS_EVENT: u8 = b'f';
    /// `user` -> head of a feed trimmed empty.
    pub(crate) const USER_FEEDFLOOR: u8 = b'b';
    /// `user` -> when its last stream closed.
    pub(crate) const USER_LASTSEEN: u8 = b't';
    /// `set 0xFF user` -> since when the user is marked.
    pub(crate) const SETUSER_SINCE: u8 = b'k';
    /// `pos` -> firehose entry.
    pub(crate) const POS_FIRE: u8 = b'h';
    /// `name` -> acknowledged firehose cursor.
    pub(crate) const NAME_ACKED: u8 = b'a';
    /// `room` -> its member count, kept with every member change of a
    /// room (a group's members are counted by their keys). A room's
    /// members are `groupuser_member` keys like a group's.
    pub(crate) const ROOM_MEMBERS: u8 = b'n';

    /// The kind's name, for error messages.
    pub(crate) fn name(kind: u8) -> &'static str {
        match kind {
            USERID_USER => "userid_user",
            OWNERCONTACT_CONTACT => "ownercontact_contact",
            CONTACTOWNER_ => "contactowner_",
            GROUPID_GROUP => "groupid_group",
            GROUPUSER_MEMBER => "groupuser_member",
            CONV_STATE => "conv_state",
            CONVSEQ_MESSAGE => "convseq_message",
            CLIENT_ID_SEQ => "client_id_seq",
            USERCONV_ENTRY => "userconv_entry",
            USERPOS_EVENT => "userpos_event",
            USER_FEEDFLOOR => "user_feedfloor",
            USER_LASTSEEN => "user_lastseen",
            SETUSER_SINCE => "setuser_since",
            POS_FIRE => "pos_fire",
            NAME_ACKED => "name_acked",
            ROOM_MEMBERS => "room_members",
            _ => "unknown kind",
        }
    }
}

/// Keys of the `meta` tree.
pub(crate) mod meta {
    /// The format version, `u32` BE.
    pub(crate) const VERSION: &[u8] = b"version";
    /// The epoch, `u64` BE.
    pub(crate) const EPOCH: &[u8] = b"epoch";
    /// Present once stray group entries were removed (see `repair`).
    pub(crate) const GROUP_ENTRIES_CHECKED: &[u8] = b"group_entries_checked";
    /// Present once `contactowner_` was built from the contacts (see `repair`).
    pub(crate) const FOLLOWERS_INDEXED: &[u8] = b"followers_indexed";
}

/// `kind part 0xFF part …`.
fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(kind);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part);
    }
    key
}

/// `kind id 0xFF`: the prefix of every composite key of `kind` that starts
/// with `id`.
pub(crate) fn prefix(kind: u8, id: &str) -> Vec<u8> {
    key(kind, &[id.as_bytes(), b""])
}

/// `h pos`.
pub(crate) fn fire(pos: u64) -> Vec<u8> {
    key(kind::POS_FIRE, &[&pos.to_be_bytes()])
}

/// `a name`.
pub(crate) fn acked(name: &str) -> Vec<u8> {
    key(kind::NAME_ACKED, &[name.as_bytes()])
}

/// A conversation id as key bytes: its text.
pub(crate) fn conv(c: &ConversationId) -> Vec<u8> {
    c.to_string().into_bytes()
}

/// `u user`.
pub(crate) fn user(user: &UserId) -> Vec<u8> {
    key(kind::USERID_USER, &[user.as_str().as_bytes()])
}

/// `c owner 0xFF contact`.
pub(crate) fn owner_contact(owner: &UserId, contact: &UserId) -> Vec<u8> {
    key(
        kind::OWNERCONTACT_CONTACT,
        &[owner.as_str().as_bytes(), contact.as_str().as_bytes()],
    )
}

/// `w contact 0xFF owner`.
pub(crate) fn contact_owner(contact: &UserId, owner: &UserId) -> Vec<u8> {
    key(
        kind::CONTACTOWNER_,
        &[contact.as_str().as_bytes(), owner.as_str().as_bytes()],
    )
}

/// The last part of a composite key, as a user id.
pub(crate) fn last_user(key: &[u8]) -> Option<UserId> {
    let at = key.iter().rposition(|&b| b == SEP)?;
    UserId::new(std::str::from_utf8(&key[at + 1..]).ok()?).ok()
}

/// `g group`.
pub(crate) fn group(group: &GroupId) -> Vec<u8> {
    key(kind::GROUPID_GROUP, &[group.as_str().as_bytes()])
}

/// `m group 0xFF user`.
pub(crate) fn group_user(group: &GroupId, user: &UserId) -> Vec<u8> {
    key(
        kind::GROUPUSER_MEMBER,
        &[group.as_str().as_bytes(), user.as_str().as_bytes()],
    )
}

/// `n room`.
pub(crate) fn room_members(room: &GroupId) -> Vec<u8> {
    key(kind::ROOM_MEMBERS, &[room.as_str().as_bytes()])
}

/// `s conv`, where `conv` comes from [`conv`].
pub(crate) fn conv_state(conv: &[u8]) -> Vec<u8> {
    key(kind::CONV_STATE, &[conv])
}

/// `l conv 0xFF seq`.
pub(crate) fn conv_seq(conv: &[u8], seq: Seq) -> Vec<u8> {
    key(kind::CONVSEQ_MESSAGE, &[conv, &seq.to_be_bytes()])
}

/// `d conv 0xFF sender 0xFF client_id`.
pub(crate) fn conv_sender_client_id(conv: &[u8], sender: &UserId, client_id: &str) -> Vec<u8> {
    key(
        kind::CLIENT_ID_SEQ,
        &[conv, sender.as_str().as_bytes(), client_id.as_bytes()],
    )
}

/// `e user 0xFF conv`.
pub(crate) fn user_conv(user: &UserId, conv: &[u8]) -> Vec<u8> {
    key(kind::USERCONV_ENTRY, &[user.as_str().as_bytes(), conv])
}

/// `f user 0xFF pos`.
pub(crate) fn user_pos(user: &UserId, pos: u64) -> Vec<u8> {
    key(
        kind::USERPOS_EVENT,
        &[user.as_str().as_bytes(), &pos.to_be_bytes()],
    )
}

/// `b user`.
pub(crate) fn feed_floor(user: &UserId) -> Vec<u8> {
    key(kind::USER_FEEDFLOOR, &[user.as_str().as_bytes()])
}

/// `t user`.
pub(crate) fn last_seen(user: &UserId) -> Vec<u8> {
    key(kind::USER_LASTSEEN, &[user.as_str().as_bytes()])
}

/// A set of marks as key text.
fn mark_set(set: &Marks) -> String {
    match set {
        Marks::Requests(g) => format!("requests:{g}"),
        Marks::Bans(g) => format!("bans:{g}"),
        Marks::Blocks(u) => format!("blocks:{u}"),
        Marks::Suspended => "suspended".into(),
    }
}

/// `k set 0xFF user`.
pub(crate) fn mark(set: &Marks, user: &UserId) -> Vec<u8> {
    key(
        kind::SETUSER_SINCE,
        &[mark_set(set).as_bytes(), user.as_str().as_bytes()],
    )
}

/// `k set 0xFF`: the prefix of every mark of `set`.
pub(crate) fn marks(set: &Marks) -> Vec<u8> {
    prefix(kind::SETUSER_SINCE, &mark_set(set))
}

/// The set and user of any [`mark`] key.
pub(crate) fn decode_set_user(key: &[u8]) -> Option<(Marks, UserId)> {
    let (set, user) = split(body(kind::SETUSER_SINCE, key)?)?;
    let set = match text(set)?.split_once(':') {
        Some(("requests", g)) => Marks::Requests(GroupId::new(g).ok()?),
        Some(("bans", g)) => Marks::Bans(GroupId::new(g).ok()?),
        Some(("blocks", u)) => Marks::Blocks(UserId::new(u).ok()?),
        None if set == b"suspended" => Marks::Suspended,
        _ => return None,
    };
    Some((set, user_id(user)?))
}

/// The user of a [`mark`] key of `set`.
pub(crate) fn decode_mark(set: &Marks, key: &[u8]) -> Option<UserId> {
    user_id(key.strip_prefix(marks(set).as_slice())?)
}

/// `key` without its kind tag, when the tag is `kind`.
fn body(kind: u8, key: &[u8]) -> Option<&[u8]> {
    key.split_first()
        .filter(|(tag, _)| **tag == kind)
        .map(|(_, rest)| rest)
}

/// `key` split at its first [`SEP`]: the id before it and the rest.
fn split(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = key.iter().position(|&b| b == SEP)?;
    Some((&key[..i], &key[i + 1..]))
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn user_id(bytes: &[u8]) -> Option<UserId> {
    UserId::new(text(bytes)?).ok()
}

fn group_id(bytes: &[u8]) -> Option<GroupId> {
    GroupId::new(text(bytes)?).ok()
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

/// The conversation of key bytes made by [`conv`]; `None` for anything
/// [`conv`] does not make (`dm:b:a` included: keys are canonical).
pub(crate) fn decode_conv(bytes: &[u8]) -> Option<ConversationId> {
    let s = text(bytes)?;
    let c: ConversationId = s.parse().ok()?;
    (c.to_string() == s).then_some(c)
}

#[cfg(any(test, feature = "fuzzing"))]
/// The user of a [`user`] key.
pub(crate) fn decode_user(key: &[u8]) -> Option<UserId> {
    user_id(body(kind::USERID_USER, key)?)
}

/// The parts of an [`owner_contact`] key.
pub(crate) fn decode_owner_contact(key: &[u8]) -> Option<(UserId, UserId)> {
    let (owner, contact) = split(body(kind::OWNERCONTACT_CONTACT, key)?)?;
    Some((user_id(owner)?, user_id(contact)?))
}

#[cfg(any(test, feature = "fuzzing"))]
/// The group of a [`group`] key.
pub(crate) fn decode_group(key: &[u8]) -> Option<GroupId> {
    group_id(body(kind::GROUPID_GROUP, key)?)
}

/// The parts of a [`group_user`] key.
pub(crate) fn decode_group_user(key: &[u8]) -> Option<(GroupId, UserId)> {
    let (group, user) = split(body(kind::GROUPUSER_MEMBER, key)?)?;
    Some((group_id(group)?, user_id(user)?))
}

#[cfg(any(test, feature = "fuzzing"))]
/// The conversation of a [`conv_state`] key.
pub(crate) fn decode_conv_state(key: &[u8]) -> Option<ConversationId> {
    decode_conv(body(kind::CONV_STATE, key)?)
}

#[cfg(any(test, feature = "fuzzing"))]
/// The parts of a [`conv_seq`] key.
pub(crate) fn decode_conv_seq(key: &[u8]) -> Option<(ConversationId, Seq)> {
    let (c, seq) = split(body(kind::CONVSEQ_MESSAGE, key)?)?;
    Some((decode_conv(c)?, be_u64(seq)?))
}

#[cfg(any(test, feature = "fuzzing"))]
/// The parts of a [`conv_sender_client_id`] key.
pub(crate) fn decode_conv_sender_client_id(key: &[u8]) -> Option<(ConversationId, UserId, String)> {
    let (c, rest) = split(body(kind::CLIENT_ID_SEQ, key)?)?;
    let (sender, client_id) = split(rest)?;
    Some((
        decode_conv(c)?,
        user_id(sender)?,
        text(client_id)?.to_owned(),
    ))
}

/// The parts of a [`user_conv`] key.
pub(crate) fn decode_user_conv(key: &[u8]) -> Option<(UserId, ConversationId)> {
    let (user, c) = split(body(kind::USERCONV_ENTRY, key)?)?;
    Some((user_id(user)?, decode_conv(c)?))
}

/// The parts of a [`user_pos`] key.
pub(crate) fn decode_user_pos(key: &[u8]) -> Option<(UserId, u64)> {
    let (user, pos) = split(body(kind::USERPOS_EVENT, key)?)?;
    Some((user_id(user)?, be_u64(pos)?))
}

#[cfg(any(test, feature = "fuzzing"))]
/// The user of a [`feed_floor`] key.
pub(crate) fn decode_feed_floor(key: &[u8]) -> Option<UserId> {
    user_id(body(kind::USER_FEEDFLOOR, key)?)
}

/// The user of a [`last_seen`] key.
pub(crate) fn decode_last_seen(key: &[u8]) -> Option<UserId> {
    user_id(body(kind::USER_LASTSEEN, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn composite_keys_spell_out_their_parts() {
        let dm: ConversationId = "dm:bob:alice".parse().unwrap();
        let c = conv(&dm);
        assert_eq!(c, b"dm:alice:bob");
        assert_eq!(conv_state(&c), b"sdm:alice:bob");
        assert_eq!(conv_seq(&c, 258), b"ldm:alice:bob\xFF\0\0\0\0\0\0\x01\x02");
        assert_eq!(
            conv_sender_client_id(&c, &user("bob"), "x:1"),
            b"ddm:alice:bob\xFFbob\xFFx:1"
        );
        assert_eq!(user_conv(&user("al"), &c), b"eal\xFFdm:alice:bob");
        assert_eq!(user_pos(&user("al"), 1), b"fal\xFF\0\0\0\0\0\0\0\x01");
        assert_eq!(feed_floor(&user("al")), b"bal");
        assert_eq!(last_seen(&user("al")), b"tal");
        assert_eq!(super::user(&user("al")), b"ual");
        assert_eq!(group(&GroupId::new("g").unwrap()), b"gg");
        assert_eq!(owner_contact(&user("a"), &user("b")), b"ca\xFFb");
        assert_eq!(
            group_user(&GroupId::new("a").unwrap(), &user("b")),
            b"ma\xFFb"
        );
    }

    #[test]
    fn key_order_is_numeric_order_and_prefixes_do_not_overlap() {
        let c = conv(&"group:g".parse().unwrap());
        let mut keys: Vec<_> = [1u64, 256, 2, u64::MAX, 255]
            .iter()
            .map(|&s| conv_seq(&c, s))
            .collect();
        keys.sort();
        let seqs: Vec<u64> = keys
            .iter()
            .map(|k| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()))
            .collect();
        assert_eq!(seqs, [1, 2, 255, 256, u64::MAX]);

        let long = user_pos(&user("alice"), 1);
        assert!(!long.starts_with(&prefix(kind::USERPOS_EVENT, "al")));
        assert!(long.starts_with(&prefix(kind::USERPOS_EVENT, "alice")));
        assert!(!long.starts_with(&prefix(kind::USERCONV_ENTRY, "alice")));
        assert_eq!(decode_user_pos(&long), Some((user("alice"), 1)));
        assert_eq!(decode_user_pos(&long[..long.len() - 1]), None);
        // The kind is part of the key: an entry key is no feed key.
        assert_eq!(
            decode_user_pos(&user_conv(&user("alice"), b"group:g")),
            None
        );
        // Keys are canonical: a direct conversation in the wrong order is no key.
        assert_eq!(decode_conv(b"dm:bob:alice"), None);
        assert_eq!(decode_conv_state(b"sdm:bob:alice"), None);
    }
}
