//! Every key layout of the store, in one place.
//!
//! Trees are named `<key>_<value>`. User and group ids are made of
//! `A-Z a-z 0-9 _ . -` and conversation ids (`dm:<a>:<b>`, `group:<g>`) add
//! only `:`, so none of them contains the byte `0xFF`: it separates the parts
//! of a composite key, and a prefix ending in it (`alice 0xFF`) never matches
//! a longer id (`alicia 0xFF …`). Sequence numbers and feed positions are
//! big-endian `u64`, so key order is numeric order and a range of keys is a
//! range of numbers. A `client_id` may be any text, but it is always the last
//! part of its key and UTF-8 never contains `0xFF` either.
//!
//! | tree                     | key bytes                                 | value                                   |
//! |--------------------------|-------------------------------------------|-----------------------------------------|
//! | `meta`                   | `"version"` / `"epoch"`                   | `u32` BE / `u64` BE                     |
//! | `userid_user`            | `user`                                    | [`User`](im_engine::User), JSON         |
//! | `ownercontact_contact`   | `owner 0xFF contact`                      | [`Contact`](im_engine::Contact), JSON   |
//! | `groupid_group`          | `group`                                   | [`Group`](im_engine::Group), JSON       |
//! | `groupuser_member`       | `group 0xFF user`                         | [`Member`](im_engine::Member), JSON     |
//! | `conv_lastseq`           | `conv`                                    | `u64` BE                                |
//! | `convseq_message`        | `conv 0xFF seq(u64 BE)`                   | [`Message`](im_engine::Message), JSON   |
//! | `convsenderclientid_seq` | `conv 0xFF sender 0xFF client_id`         | `u64` BE                                |
//! | `userconv_entry`         | `user 0xFF conv`                          | `read_seq` BE ++ `activity` BE          |
//! | `userpos_event`          | `user 0xFF pos(u64 BE)`                   | `ts` BE ++ [`Event`](im_engine::Event) JSON |
//! | `user_feedbounds`        | `user`                                    | `head` BE ++ `trimmed` BE               |
//! | `user_lastseen`          | `user`                                    | `u64` BE                                |
//!
//! `conv` is the conversation id as text (`dm:alice:bob`, `group:rust`).

use im_engine::{ConversationId, GroupId, Seq, UserId};

/// Separates the parts of a composite key; never part of an id.
pub(crate) const SEP: u8 = 0xFF;

/// Tree names.
pub(crate) mod tree {
    /// Store-wide settings: format version and epoch.
    pub(crate) const META: &str = "meta";
    /// `user` -> user.
    pub(crate) const USERID_USER: &str = "userid_user";
    /// `owner 0xFF contact` -> contact.
    pub(crate) const OWNERCONTACT_CONTACT: &str = "ownercontact_contact";
    /// `group` -> group.
    pub(crate) const GROUPID_GROUP: &str = "groupid_group";
    /// `group 0xFF user` -> member.
    pub(crate) const GROUPUSER_MEMBER: &str = "groupuser_member";
    /// `conv` -> last seq.
    pub(crate) const CONV_LASTSEQ: &str = "conv_lastseq";
    /// `conv 0xFF seq` -> message.
    pub(crate) const CONVSEQ_MESSAGE: &str = "convseq_message";
    /// `conv 0xFF sender 0xFF client_id` -> seq.
    pub(crate) const CONVSENDERCLIENTID_SEQ: &str = "convsenderclientid_seq";
    /// `user 0xFF conv` -> index entry.
    pub(crate) const USERCONV_ENTRY: &str = "userconv_entry";
    /// `user 0xFF pos` -> feed event.
    pub(crate) const USERPOS_EVENT: &str = "userpos_event";
    /// `user` -> feed head and trimmed.
    pub(crate) const USER_FEEDBOUNDS: &str = "user_feedbounds";
    /// `user` -> when its last stream closed.
    pub(crate) const USER_LASTSEEN: &str = "user_lastseen";
}

/// Keys of the `meta` tree.
pub(crate) mod meta {
    /// The format version, `u32` BE.
    pub(crate) const VERSION: &[u8] = b"version";
    /// The epoch, `u64` BE.
    pub(crate) const EPOCH: &[u8] = b"epoch";
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part);
    }
    key
}

/// `id 0xFF`: the prefix of every composite key that starts with `id`.
pub(crate) fn prefix(id: &str) -> Vec<u8> {
    join(&[id.as_bytes(), b""])
}

/// A conversation id as key bytes: its text.
pub(crate) fn conv(c: &ConversationId) -> Vec<u8> {
    c.to_string().into_bytes()
}

/// `owner 0xFF contact`.
pub(crate) fn owner_contact(owner: &UserId, contact: &UserId) -> Vec<u8> {
    join(&[owner.as_str().as_bytes(), contact.as_str().as_bytes()])
}

/// `group 0xFF user`.
pub(crate) fn group_user(group: &GroupId, user: &UserId) -> Vec<u8> {
    join(&[group.as_str().as_bytes(), user.as_str().as_bytes()])
}

/// `conv 0xFF seq`, where `conv` comes from [`conv`].
pub(crate) fn conv_seq(conv: &[u8], seq: Seq) -> Vec<u8> {
    join(&[conv, &seq.to_be_bytes()])
}

/// `conv 0xFF sender 0xFF client_id`.
pub(crate) fn conv_sender_client_id(conv: &[u8], sender: &UserId, client_id: &str) -> Vec<u8> {
    join(&[conv, sender.as_str().as_bytes(), client_id.as_bytes()])
}

/// `user 0xFF conv`.
pub(crate) fn user_conv(user: &UserId, conv: &[u8]) -> Vec<u8> {
    join(&[user.as_str().as_bytes(), conv])
}

/// `user 0xFF pos`.
pub(crate) fn user_pos(user: &UserId, pos: u64) -> Vec<u8> {
    join(&[user.as_str().as_bytes(), &pos.to_be_bytes()])
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

/// The parts of an [`owner_contact`] key.
pub(crate) fn decode_owner_contact(key: &[u8]) -> Option<(UserId, UserId)> {
    let (owner, contact) = split(key)?;
    Some((user_id(owner)?, user_id(contact)?))
}

/// The parts of a [`group_user`] key.
pub(crate) fn decode_group_user(key: &[u8]) -> Option<(GroupId, UserId)> {
    let (group, user) = split(key)?;
    Some((GroupId::new(text(group)?).ok()?, user_id(user)?))
}

/// The parts of a [`conv_seq`] key.
pub(crate) fn decode_conv_seq(key: &[u8]) -> Option<(ConversationId, Seq)> {
    let (c, seq) = split(key)?;
    Some((decode_conv(c)?, be_u64(seq)?))
}

/// The parts of a [`conv_sender_client_id`] key.
pub(crate) fn decode_conv_sender_client_id(key: &[u8]) -> Option<(ConversationId, UserId, String)> {
    let (c, rest) = split(key)?;
    let (sender, client_id) = split(rest)?;
    Some((
        decode_conv(c)?,
        user_id(sender)?,
        text(client_id)?.to_owned(),
    ))
}

/// The parts of a [`user_conv`] key.
pub(crate) fn decode_user_conv(key: &[u8]) -> Option<(UserId, ConversationId)> {
    let (user, c) = split(key)?;
    Some((user_id(user)?, decode_conv(c)?))
}

/// The parts of a [`user_pos`] key.
pub(crate) fn decode_user_pos(key: &[u8]) -> Option<(UserId, u64)> {
    let (user, pos) = split(key)?;
    Some((user_id(user)?, be_u64(pos)?))
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
        assert_eq!(conv_seq(&c, 258), b"dm:alice:bob\xFF\0\0\0\0\0\0\x01\x02");
        assert_eq!(
            conv_sender_client_id(&c, &user("bob"), "x:1"),
            b"dm:alice:bob\xFFbob\xFFx:1"
        );
        assert_eq!(user_conv(&user("al"), &c), b"al\xFFdm:alice:bob");
        assert_eq!(user_pos(&user("al"), 1), b"al\xFF\0\0\0\0\0\0\0\x01");
        assert_eq!(
            owner_contact(&user("a"), &user("b")),
            group_user(&GroupId::new("a").unwrap(), &user("b"))
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
        assert!(!long.starts_with(&prefix("al")));
        assert!(long.starts_with(&prefix("alice")));
        assert_eq!(decode_user_pos(&long), Some((user("alice"), 1)));
        assert_eq!(decode_user_pos(&long[..long.len() - 1]), None);
        // Keys are canonical: a direct conversation in the wrong order is no key.
        assert_eq!(decode_conv(b"dm:bob:alice"), None);
    }
}
