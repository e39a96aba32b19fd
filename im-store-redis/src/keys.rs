//! Every key layout of the store, in one place.
//!
//! Every key starts with the configured prefix (default `im:`; it may not
//! contain `{` or `}`) followed by a hash tag, so that everything one Lua
//! script touches lives in one Redis Cluster slot:
//!
//! - `{c:<conv>}`: everything of a conversation (its log, client
//!   ids and pending fan-outs, and a group's members), the commit point of
//!   a send and of a join or leave; a room's keys are in the slot of its
//!   members, `{c:group:<room>}`, named `roomlog`, `roomclientids`, …;
//! - `{u:<user>}`: everything of a user (profile, contacts, conversation
//!   index, feed, fan-out watermarks, presence);
//! - `{g:<group>}`: a group's record (its members are in the slot of its
//!   conversation, `{c:group:<group>}`, where sends commit);
//! - `{meta}`, `{n:<node>}`, `{f:<k>}`: the store's epoch, node heartbeats,
//!   and the markers of fan-outs in progress.
//!
//! User and group ids are `A-Z a-z 0-9 _ . -` and conversation ids add only
//! `:` (`dm:<a>:<b>`, `group:<g>`), so no id contains `{`, `}`, `|`, `,`,
//! `@` or a newline, the separators used below. Numbers are decimal text.
//!
//! The table of every key, its type, what it holds and why is in the crate
//! docs (`README.md`); this module builds the names.

use im_engine::store::Marks;
use im_engine::{ConversationId, GroupId, UserId};

/// How many fan-out marker shards and notification channels a cluster uses.
pub(crate) const SHARDS: u64 = 16;

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`, which must not contain `{` or `}`.
    pub(crate) fn new(prefix: &str) -> Option<Self> {
        (!prefix.contains(['{', '}'])).then(|| Self {
            prefix: prefix.to_owned(),
        })
    }

    fn user_key(&self, u: &UserId, what: &str) -> String {
        format!("{}{{u:{u}}}:{what}", self.prefix)
    }

    fn conv_key(&self, c: &ConversationId, what: &str) -> String {
        match c {
            // Rooms share their ids, members and bans with groups: a
            // room's keys are in the slot of those, `{c:group:<room>}`,
            // named `room…` so that a room's send is one script in one
            // slot, on a cluster too.
            ConversationId::Room(r) => format!("{}{{c:group:{r}}}:room{what}", self.prefix),
            _ => format!("{}{{c:{c}}}:{what}", self.prefix),
        }
    }

    fn group_key(&self, g: &GroupId, what: &str) -> String {
        format!("{}{{g:{g}}}:{what}", self.prefix)
    }

    /// `P{meta}:store`.
    pub(crate) fn meta(&self) -> String {
        format!("{}{{meta}}:store", self.prefix)
    }

    /// `P{u:U}:user`.
    pub(crate) fn user(&self, u: &UserId) -> String {
        self.user_key(u, "user")
    }

    /// `P{u:U}:contacts`.
    pub(crate) fn contacts(&self, u: &UserId) -> String {
        self.user_key(u, "contacts")
    }

    /// `P{u:U}:followers`: who has `U` in their contacts (field: the
    /// owner; value `1`).
    pub(crate) fn followers(&self, u: &UserId) -> String {
        self.user_key(u, "followers")
    }

    /// Every contacts hash, for the upgrade to format 3.
    pub(crate) fn contacts_pattern(&self) -> String {
        self.pattern("{u:*}:contacts")
    }

    /// The owner of a [`contacts`](Self::contacts) key.
    pub(crate) fn contacts_owner(&self, key: &str) -> Option<UserId> {
        let id = key
            .strip_prefix(&self.prefix)?
            .strip_prefix("{u:")?
            .strip_suffix("}:contacts")?;
        UserId::new(id).ok()
    }

    /// `P{u:U}:entries`: conversation → `read_seq:activity:since`, and on
    /// one Redis `@<conversation>` → `activity:seq`, a direct
    /// conversation's newest activity written by a send that did not read
    /// the entry (it counts when its seq is newer than `since`).
    pub(crate) fn entries(&self, u: &UserId) -> String {
        self.user_key(u, "entries")
    }

    /// `P{u:U}:feed`.
    pub(crate) fn feed(&self, u: &UserId) -> String {
        self.user_key(u, "feed")
    }

    /// `P{u:U}:feedmeta`: a feed's bounds in format 3, which the upgrade
    /// to format 4 removes (a feed's stream knows them itself now). Tests write it.
    #[cfg(test)]
    pub(crate) fn feed_meta(&self, u: &UserId) -> String {
        self.user_key(u, "feedmeta")
    }

    /// Every format 3 feed's bounds, for the upgrade to format 4.
    pub(crate) fn feed_meta_pattern(&self) -> String {
        self.pattern("{u:*}:feedmeta")
    }

    /// The user of a [`feed_meta`](Self::feed_meta) key.
    pub(crate) fn feed_meta_user(&self, key: &str) -> Option<UserId> {
        let id = key
            .strip_prefix(&self.prefix)?
            .strip_prefix("{u:")?
            .strip_suffix("}:feedmeta")?;
        UserId::new(id).ok()
    }

    /// `P{u:U}:fanned`.
    pub(crate) fn fanned(&self, u: &UserId) -> String {
        self.user_key(u, "fanned")
    }

    /// `P{u:U}:presence`.
    pub(crate) fn presence(&self, u: &UserId) -> String {
        self.user_key(u, "presence")
    }

    /// `P{g:G}:group`.
    pub(crate) fn group(&self, g: &GroupId) -> String {
        self.group_key(g, "group")
    }

    /// `P{c:group:G}:members`: in the group conversation's slot, where a
    /// send commits, so that the send reads the members it goes to in the
    /// step that commits it (format 2; format 1 kept them in `{g:G}`).
    pub(crate) fn members(&self, g: &GroupId) -> String {
        self.conv_key(&ConversationId::group(g.clone()), "members")
    }

    /// `P{c:group:G}:memberids`: a sorted set of the members' ids, every
    /// score 0, so that a page of members by id is a `ZRANGE … BYLEX`
    /// (format 6). Beside the members hash, and written by every script
    /// that adds or removes a member.
    pub(crate) fn member_ids(&self, g: &GroupId) -> String {
        self.conv_key(&ConversationId::group(g.clone()), "memberids")
    }

    /// A pattern matching every group's (and room's) members hash.
    pub(crate) fn members_pattern(&self) -> String {
        self.pattern("{c:group:*}:members")
    }

    /// The group of a [`members`](Self::members) key.
    pub(crate) fn members_group(&self, key: &str) -> Option<GroupId> {
        let id = key
            .strip_prefix(&self.prefix)?
            .strip_prefix("{c:group:")?
            .strip_suffix("}:members")?;
        GroupId::new(id).ok()
    }

    /// `P{c:C}:mseq`: the counter that orders a conversation's membership
    /// changes among its messages on a cluster.
    pub(crate) fn member_seq(&self, c: &ConversationId) -> String {
        self.conv_key(c, "mseq")
    }

    /// A set of marks, a hash `user -> since`, where the write it guards
    /// commits: `P{c:group:G}:requests` and `P{c:group:G}:bans` beside the
    /// members (a join reads the bans), `P{u:U}:blocks` (the list the user
    /// reads), `P{meta}:suspended`.
    pub(crate) fn marks(&self, set: &Marks) -> String {
        match set {
            Marks::Requests(g) => self.conv_key(&ConversationId::group(g.clone()), "requests"),
            Marks::Bans(g) => self.conv_key(&ConversationId::group(g.clone()), "bans"),
            Marks::Blocks(u) => self.user_key(u, "blocks"),
            Marks::Suspended => format!("{}{{meta}}:suspended", self.prefix),
        }
    }

    /// `P{c:dm:A:B}:blocks`, a hash `blocker -> since`: the blocks between a
    /// direct conversation's two users, in its slot, where a send commits
    /// and reads them.
    pub(crate) fn dm_blocks(&self, c: &ConversationId) -> String {
        self.conv_key(c, "blocks")
    }

    /// The prefix, as the Lua scripts build user keys from it.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A `KEYS`/`SCAN` pattern: the prefix, escaped, then `rest`.
    pub(crate) fn pattern(&self, rest: &str) -> String {
        let mut p = String::with_capacity(self.prefix.len() + rest.len());
        for ch in self.prefix.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(ch);
        }
        p + rest
    }

    /// A pattern matching format 1's member hashes.
    pub(crate) fn v1_members_pattern(&self) -> String {
        self.pattern("{g:*}:members")
    }

    /// A pattern matching every user's conversation index.
    pub(crate) fn entries_pattern(&self) -> String {
        self.pattern("{u:*}:entries")
    }

    /// The user of an [`entries`](Self::entries) key.
    pub(crate) fn entries_user(&self, key: &str) -> Option<UserId> {
        let id = key
            .strip_prefix(&self.prefix)?
            .strip_prefix("{u:")?
            .strip_suffix("}:entries")?;
        UserId::new(id).ok()
    }

    /// The group of a format 1 member hash key.
    pub(crate) fn v1_members_group(&self, key: &str) -> Option<GroupId> {
        let id = key
            .strip_prefix(&self.prefix)?
            .strip_prefix("{g:")?
            .strip_suffix("}:members")?;
        GroupId::new(id).ok()
    }

    /// `P{c:C}:log`, a stream numbered by itself: a message's id is
    /// `0-<seq>` (format 5; format 4 numbered it `<seq>-0` from a counter,
    /// `P{c:C}:seq`, which the upgrade removes).
    pub(crate) fn log(&self, c: &ConversationId) -> String {
        self.conv_key(c, "log")
    }

    /// The streams that formats 1 to 4 numbered from a counter of their
    /// own, for the upgrade to format 5: per kind, the counters' pattern,
    /// the counter's suffix and the stream's (a log's, a room's log's, a
    /// firehose partition's; each in its counter's slot).
    pub(crate) fn counted_streams(&self) -> [(String, &'static str, &'static str); 3] {
        [
            (self.pattern("{c:*}:seq"), "}:seq", "}:log"),
            (
                self.pattern("{c:group:*}:roomseq"),
                "}:roomseq",
                "}:roomlog",
            ),
            (self.pattern("{f:*}:firehead"), "}:firehead", "}:fire"),
        ]
    }

    /// A format 4 counter's key, for tests that write format 4:
    /// `P{c:C}:seq`, `P{c:group:R}:roomseq`.
    #[cfg(test)]
    pub(crate) fn v4_seq(&self, c: &ConversationId) -> String {
        self.conv_key(c, "seq")
    }

    /// `P{c:group:G}:activity`, a hash: `seq` and `ts` of the group's
    /// newest send to all its members, which a member's index entry takes
    /// when it is newer than the entry's own, and `clean` (`1` while every
    /// member holds an entry). Single Redis only.
    pub(crate) fn activity(&self, c: &ConversationId) -> String {
        self.conv_key(c, "activity")
    }

    /// `P{c:C}:clientids`.
    pub(crate) fn client_ids(&self, c: &ConversationId) -> String {
        self.conv_key(c, "clientids")
    }

    /// `P{c:C}:changed`: messages changed since they were sent (edited,
    /// deleted, reacted to), whole, out of the log.
    pub(crate) fn changed(&self, c: &ConversationId) -> String {
        self.conv_key(c, "changed")
    }

    /// `P{c:C}:pending`.
    pub(crate) fn pending(&self, c: &ConversationId) -> String {
        self.conv_key(c, "pending")
    }

    /// `P{n:<node>}:alive`.
    pub(crate) fn alive(&self, node: u64) -> String {
        format!("{}{{n:{node:016x}}}:alive", self.prefix)
    }

    /// `P{f:<k>}:fanout`, the marker shard of a conversation.
    pub(crate) fn fanout(&self, shard: u64) -> String {
        format!("{}{{f:{shard}}}:fanout", self.prefix)
    }

    /// `P{f:<k>}:fire`, firehose partition `k` (a stream numbered by
    /// itself, ids `0-<pos>`; on a single Redis only partition 0).
    pub(crate) fn fire(&self, part: u64) -> String {
        format!("{}{{f:{part}}}:fire", self.prefix)
    }

    /// Format 4's position counter of firehose partition `k`, for tests
    /// that write format 4.
    #[cfg(test)]
    pub(crate) fn v4_fire_head(&self, part: u64) -> String {
        format!("{}{{f:{part}}}:firehead", self.prefix)
    }

    /// `P{f:<k>}:firemarks`, the fan-out's watermark per conversation in
    /// partition `k` (cluster).
    pub(crate) fn fire_marks(&self, part: u64) -> String {
        format!("{}{{f:{part}}}:firemarks", self.prefix)
    }

    /// `P{meta}:acked`: acknowledged firehose cursors by name.
    pub(crate) fn acked(&self) -> String {
        format!("{}{{meta}}:acked", self.prefix)
    }

    /// `P{meta}:lease:<name>`: who holds a lease.
    pub(crate) fn lease(&self, name: &str) -> String {
        format!("{}{{meta}}:lease:{name}", self.prefix)
    }

    /// `P{c:group:R}:roomlive`: room `R`'s live events, a channel in the
    /// room's slot (a cluster's sharded pub/sub keeps it on that slot's
    /// shard), which a process subscribes to while one of its streams
    /// watches the room.
    pub(crate) fn room_channel(&self, room: &GroupId) -> String {
        self.conv_key(&ConversationId::room(room.clone()), "live")
    }

    /// The room of a [`room_channel`](Self::room_channel).
    pub(crate) fn channel_room(&self, channel: &str) -> Option<GroupId> {
        let id = channel
            .strip_prefix(&self.prefix)?
            .strip_prefix("{c:group:")?
            .strip_suffix("}:roomlive")?;
        GroupId::new(id).ok()
    }

    /// The notification channel of a single Redis.
    pub(crate) fn channel(&self) -> String {
        format!("{}notify", self.prefix)
    }

    /// Shard channel `k` of a cluster.
    pub(crate) fn shard_channel(&self, shard: u64) -> String {
        format!("{}notify:{{w:{shard}}}", self.prefix)
    }
}

/// The presence hash field of a node.
pub(crate) fn node_field(node: u64) -> String {
    format!("n:{node:016x}")
}

/// The node a presence hash field names, if it names one.
pub(crate) fn field_node(field: &str) -> Option<u64> {
    u64::from_str_radix(field.strip_prefix("n:")?, 16).ok()
}

/// Which of the [`SHARDS`] an id's fan-out marker and notifications use.
pub(crate) fn shard(id: &str) -> u64 {
    // FNV-1a: stable across processes and builds, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_one_hash_tag_per_owner() {
        let k = Keys::new("t1:").unwrap();
        let u = UserId::new("alice").unwrap();
        let c: ConversationId = "dm:bob:alice".parse().unwrap();
        assert_eq!(k.feed(&u), "t1:{u:alice}:feed");
        assert_eq!(k.log(&c), "t1:{c:dm:alice:bob}:log");
        assert_eq!(
            k.members(&GroupId::new("g").unwrap()),
            "t1:{c:group:g}:members"
        );
        assert_eq!(
            k.member_ids(&GroupId::new("g").unwrap()),
            "t1:{c:group:g}:memberids"
        );
        assert_eq!(
            k.members_group("t1:{c:group:g.1}:members"),
            Some(GroupId::new("g.1").unwrap())
        );
        assert_eq!(k.members_group("t1:{c:dm:a:b}:members"), None);
        assert_eq!(
            k.v1_members_group("t1:{g:g.1}:members"),
            Some(GroupId::new("g.1").unwrap())
        );
        assert_eq!(
            Keys::new("a*[").unwrap().v1_members_pattern(),
            "a\\*\\[{g:*}:members"
        );
        let r: ConversationId = "room:r".parse().unwrap();
        assert_eq!(k.log(&r), "t1:{c:group:r}:roomlog");
        let rid = GroupId::new("r").unwrap();
        assert_eq!(k.channel_room(&k.room_channel(&rid)), Some(rid));
        assert_eq!(k.alive(255), "t1:{n:00000000000000ff}:alive");
        assert_eq!(field_node(&node_field(255)), Some(255));
        assert_eq!(field_node("seen"), None);
        assert!(Keys::new("a{b").is_none());
        assert!(shard(&c.to_string()) < SHARDS);
    }
}
