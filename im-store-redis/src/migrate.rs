//! Upgrades of the stored format, run by [`RedisStore::open`](crate::RedisStore::open).
//!
//! Format 2 keeps a group's members in its conversation's slot
//! (`P{c:group:G}:members`) instead of the group's (`P{g:G}:members`), so
//! that a send reads them in the step that commits it. Upgrading copies each
//! member hash to its new key, then deletes the old one: a crash in between
//! leaves both, and the next open copies again (the same fields, so the copy
//! is idempotent). Then it removes the index entries of groups whose users
//! are no members: builds of format 1 could write a removed member's entry
//! again when a send that had read the members before the removal committed
//! after it, which kept the group in the removed user's conversation list.
//! Every node must be stopped for the upgrade: a node of
//! format 1 still running would keep writing the old keys (and a node of
//! format 1 refuses to open a store of format 2).
//!
//! Format 3 adds `P{u:U}:followers`, who has each user in their contacts
//! (presence goes to them). Upgrading writes it from every contacts hash;
//! a crash before the version lands writes the same fields again.
//!
//! Format 4 numbers a feed's events in the stream itself (ids `0-<pos>`,
//! `XADD … 0-*`) instead of from `P{u:U}:feedmeta` (ids `<pos>-0`), so an
//! append is one call; the feed's bounds are the stream's (its last id, and
//! its first entry). Upgrading rewrites each feed with the same positions
//! in one script per feed, which deletes `feedmeta` last: a crash leaves
//! every feed wholly old (its `feedmeta` still there) or wholly new, and
//! the next open converts the rest. Index entries need no change: an
//! entry of format 3 (`read_seq:activity`) reads as one whose activity was
//! written before any send of format 4.
//!
//! Format 5 numbers the conversations' logs (rooms' too) and the firehose
//! partitions in their streams as well (ids `0-<n>` instead of `<n>-0` from
//! the counters `P{c:C}:seq`, `P{c:group:R}:roomseq`, `P{f:K}:firehead`),
//! so a send makes no counter call and the stream's last id is the last
//! seq. Streams must grow, so each is rewritten with the same numbers, a
//! batch of entries per script, into a new stream beside it that the last
//! batch puts in its place before deleting the counter: a crash leaves the
//! old stream whole (its counter still there), and the next open goes on
//! from where the copy stopped.
//!
//! Format 6 keeps beside each group's (and room's) members hash an index of
//! their ids (`P{c:group:G}:memberids`, a sorted set of score 0), which
//! every script that adds or removes a member writes too, so that a page of
//! members by id reads the page and not the whole hash. Upgrading adds every
//! member hash's ids to it, a batch per script (one `HSCAN` step); adding
//! an id twice changes nothing, so an interrupted upgrade starts over at the
//! next open. Until the version lands no page reads the index: format 5
//! nodes are stopped, and this build does not open the store before.

use im_engine::{GroupId, UserId};
use redis::AsyncCommands;

use crate::error::{Result, corrupt};
use crate::scripts;
use crate::store::Shared;

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: usize = 1000;

/// Moves every group's members from format 1's key to format 2's. Answers
/// how many groups it moved.
pub(crate) async fn members_v1_to_v2(s: &Shared) -> Result<usize> {
    let old = s
        .bounded(keys_matching(s, &s.keys.v1_members_pattern()))
        .await?;
    for key in &old {
        let group = s
            .keys
            .v1_members_group(key)
            .ok_or_else(|| corrupt(format!("format 1 member key {key:?}")))?;
        s.bounded(async {
            let mut c = s.conn();
            let fields: Vec<(String, String)> = c.hgetall(key).await?;
            if !fields.is_empty() {
                let _: () = c.hset_multiple(s.keys.members(&group), &fields).await?;
            }
            let _: u64 = c.del(key).await?;
            Ok(())
        })
        .await?;
    }
    Ok(old.len())
}

/// Writes every user's followers from the contacts hashes. Answers how
/// many contacts it indexed.
pub(crate) async fn followers_v2_to_v3(s: &Shared) -> Result<usize> {
    let hashes = s
        .bounded(keys_matching(s, &s.keys.contacts_pattern()))
        .await?;
    let mut n = 0;
    for key in &hashes {
        let owner = s
            .keys
            .contacts_owner(key)
            .ok_or_else(|| corrupt(format!("contacts key {key:?}")))?;
        n += s
            .bounded(async {
                let ids: Vec<String> = s.conn().hkeys(key).await?;
                for id in &ids {
                    let contact =
                        UserId::new(id).map_err(|_| corrupt(format!("contact {id:?}")))?;
                    let _: u64 = s
                        .conn()
                        .hset(s.keys.followers(&contact), owner.as_str(), 1)
                        .await?;
                }
                Ok(ids.len())
            })
            .await?;
    }
    Ok(n)
}

/// Rewrites every format 3 feed as format 4's. Answers how many it
/// rewrote.
pub(crate) async fn feeds_v3_to_v4(s: &Shared) -> Result<usize> {
    let metas = s
        .bounded(keys_matching(s, &s.keys.feed_meta_pattern()))
        .await?;
    let mut n = 0;
    for key in &metas {
        let user = s
            .keys
            .feed_meta_user(key)
            .ok_or_else(|| corrupt(format!("feed bounds key {key:?}")))?;
        let converted: u64 = s
            .bounded(async {
                Ok(scripts::FEED_V3_TO_V4
                    .key(s.keys.feed(&user))
                    .key(key)
                    .invoke_async(&mut s.conn())
                    .await?)
            })
            .await?;
        n += usize::from(converted == 1);
    }
    Ok(n)
}

/// Entries copied per script by [`streams_v4_to_v5`], which bounds how long
/// one call holds Redis.
const STREAM_BATCH: usize = 1000;

/// Rewrites every log and firehose partition numbered by a counter as a
/// stream numbered by itself. Answers how many it rewrote.
pub(crate) async fn streams_v4_to_v5(s: &Shared) -> Result<usize> {
    let mut n = 0;
    for (pattern, counter_end, stream_end) in s.keys.counted_streams() {
        for counter in s.bounded(keys_matching(s, &pattern)).await? {
            let base = counter
                .strip_suffix(counter_end)
                .ok_or_else(|| corrupt(format!("counter key {counter:?}")))?;
            let stream = format!("{base}{stream_end}");
            let new = format!("{stream}:v5");
            loop {
                let done: u64 = s
                    .bounded(async {
                        Ok(scripts::STREAM_V4_TO_V5
                            .key(&stream)
                            .key(&counter)
                            .key(&new)
                            .arg(STREAM_BATCH)
                            .invoke_async(&mut s.conn())
                            .await?)
                    })
                    .await?;
                if done == 1 {
                    break;
                }
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Members added to the index per script by [`member_ids_v5_to_v6`] (an
/// `HSCAN` count: a hint, exact on big hashes), which bounds how long one
/// call holds Redis.
const MEMBER_BATCH: usize = 1000;

/// Writes the index of every group's member ids from its members hash.
/// Answers how many groups it indexed.
pub(crate) async fn member_ids_v5_to_v6(s: &Shared) -> Result<usize> {
    let hashes = s
        .bounded(keys_matching(s, &s.keys.members_pattern()))
        .await?;
    for key in &hashes {
        let group = s
            .keys
            .members_group(key)
            .ok_or_else(|| corrupt(format!("members key {key:?}")))?;
        let mut cursor = "0".to_owned();
        loop {
            cursor = s
                .bounded(async {
                    Ok(scripts::MEMBER_IDS_V5_TO_V6
                        .key(key)
                        .key(s.keys.member_ids(&group))
                        .arg(&cursor)
                        .arg(MEMBER_BATCH)
                        .invoke_async(&mut s.conn())
                        .await?)
                })
                .await?;
            if cursor == "0" {
                break;
            }
        }
    }
    Ok(hashes.len())
}

/// Removes every index entry of a group whose user is no member of it.
/// Answers how many it removed.
pub(crate) async fn drop_stray_group_entries(s: &Shared) -> Result<usize> {
    let indexes = s
        .bounded(keys_matching(s, &s.keys.entries_pattern()))
        .await?;
    let mut dropped = 0;
    for key in &indexes {
        let user = s
            .keys
            .entries_user(key)
            .ok_or_else(|| corrupt(format!("index key {key:?}")))?;
        dropped += s
            .bounded(async {
                let fields: Vec<String> = s.conn().hkeys(key).await?;
                let mut dropped = 0;
                for field in fields {
                    let Some(group) = field.strip_prefix("group:") else {
                        continue;
                    };
                    let group = GroupId::new(group)
                        .map_err(|_| corrupt(format!("index entry {field:?} of {user}")))?;
                    let member: bool = s
                        .conn()
                        .hexists(s.keys.members(&group), user.as_str())
                        .await?;
                    if !member {
                        let _: u64 = s.conn().hdel(key, &field).await?;
                        dropped += 1;
                    }
                }
                Ok(dropped)
            })
            .await?;
    }
    Ok(dropped)
}

pub(crate) async fn keys_matching(s: &Shared, pattern: &str) -> Result<Vec<String>> {
    if s.cluster() {
        // redis-rs sends KEYS to every master and joins the answers; a SCAN
        // cursor belongs to one node, which it cannot route. KEYS walks each
        // master's keys once, here, at the upgrade only.
        return Ok(redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut s.conn())
            .await?);
    }
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut s.conn())
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}
