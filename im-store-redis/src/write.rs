//! The writes: sends and change sets.
//!
//! On a single Redis each write is one script, atomic. On a cluster a send
//! crosses slots, so it is done in steps that survive a crash between any
//! two of them:
//!
//! 1. a marker `<conv>|<node>|<nonce>` goes into `P{f:<k>}:fanout`, so that
//!    any node can find this send if this one dies;
//! 2. the conversation-slot script (client id check, seq, log append, and
//!    the pending record in `P{c:C}:pending`) commits the message: from here
//!    on it exists and will reach every recipient;
//! 3. the fan-out: every pending record of the conversation, in seq order,
//!    is applied to each recipient's slot by a script that skips seqs at or
//!    below the user's watermark for the conversation (`P{u:U}:fanned`), so
//!    a repeat is a no-op and each event lands once;
//! 4. the records are removed, then the marker.
//!
//! A send whose record a fan-out that read the pending records after its
//! commit has applied skips 3 and the removal of the records
//! (`drain_after_commit`).
//!
//! A fan-out always applies all older pending records of its conversation
//! first, so a user's watermark only passes a seq once that seq was applied
//! to the user: the watermark never skips an event that has not landed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use im_engine::store::{
    Changes, ContactChange, EntryChange, MarkChange, Marks, MemberChange, MemberUpdate,
    MessageChange, MessageUpdate, MessageUpdated, Outgoing, Recipients, Sent, Updated,
    apply_change, fire_events,
};
use im_engine::{
    ConversationId, Event, GroupId, GroupKind, Membership, Message, Seq, Timestamp, UserId,
};
use redis::{AsyncCommands, Value};

use crate::codec::{self, Pending, entry_value, to_json};
use crate::drains::DrainGuard;
use crate::error::{Result, corrupt};
use crate::fan_out;
use crate::keys::{self, SHARDS};
use crate::scripts;
use crate::store::Shared;

/// Lua numbers are doubles: "keep everything" becomes 2^53.
const LUA_MAX: u64 = 1 << 53;

/// Pending records fanned out per round.
const BATCH: usize = 64;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The notification payload: the origin node, then the users, one a line.
pub(crate) fn payload<'a>(node: u64, users: impl IntoIterator<Item = &'a UserId>) -> String {
    let mut p = format!("{node:016x}");
    for u in users {
        p.push('\n');
        p.push_str(u.as_str());
    }
    p
}

/// Stores a message (see [`im_engine::Store::send`]).
pub(crate) async fn send(s: &Shared, out: &Outgoing) -> Result<Sent> {
    let (sent, recipients) = if s.cluster() {
        s.bounded(send_cluster(s, out)).await?
    } else {
        s.bounded(send_single(s, out)).await?
    };
    if matches!(sent, Sent::New(_)) {
        s.notifier.wake(&recipients);
        if !s.cluster() {
            // A cluster's fan-out published already.
            s.outbox.post(recipients);
        }
    }
    Ok(sent)
}

/// The answer of a send script: `{1, seq, …}`, `{0, seq, fields}` or
/// `{2}` (the sender is no member).
pub(crate) fn decode_sent(out: &Outgoing, v: &Value) -> Result<Sent> {
    let items = codec::array(v)?;
    let flag = codec::number(items.first().ok_or_else(|| corrupt("send script answer"))?)?;
    match flag {
        2 => return Ok(Sent::NotMember),
        3 => return Ok(Sent::Blocked),
        _ => {}
    }
    let seq = codec::number(items.get(1).ok_or_else(|| corrupt("send script answer"))?)?;
    let m = &out.message;
    if flag == 1 {
        Ok(Sent::New(m.numbered(seq)))
    } else if let Some(changed) = items.get(3) {
        // Changed since it was sent: its record, out of the log.
        Ok(Sent::Duplicate(codec::from_json(
            "message",
            &codec::text(changed)?,
        )?))
    } else {
        let fields = codec::pairs(items.get(2).unwrap_or(&Value::Nil))?;
        let original = codec::message(&m.conversation, seq, &fields)?;
        Ok(Sent::Duplicate(original))
    }
}

/// A message's reply_to as the scripts take it: `''` for none.
pub(crate) fn reply_arg(m: &im_engine::NewMessage) -> String {
    m.reply_to.map(|r| r.to_string()).unwrap_or_default()
}

/// A list of user ids a script answered.
fn users(v: Option<&Value>) -> Result<Vec<UserId>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    codec::array(v)?
        .iter()
        .map(|u| UserId::new(codec::text(u)?).map_err(|_| corrupt("user id in a script answer")))
        .collect()
}

/// The `u1,u2,…` list the cluster scripts answered, as ids.
fn user_csv(csv: &str) -> Result<Vec<UserId>> {
    csv.split(',')
        .filter(|u| !u.is_empty())
        .map(|u| UserId::new(u).map_err(|_| corrupt("user id in a script answer")))
        .collect()
}

/// The pending records a cluster script answered (its `i`th item).
fn pending_records(items: &[Value], i: usize) -> Result<Option<Vec<String>>> {
    items
        .get(i)
        .map(|p| codec::array(p)?.iter().map(codec::text).collect())
        .transpose()
}

async fn send_single(s: &Shared, out: &Outgoing) -> Result<(Sent, Vec<UserId>)> {
    let m = &out.message;
    let k = &s.keys;
    let c = &m.conversation;
    let users = match &out.recipients {
        Recipients::Users(users) => users,
        // One script of its own; on a cluster a room's send takes the path
        // of the others, so that its firehose entry goes through the
        // fan-out (to no one's feed).
        Recipients::Room(room) => return Ok((crate::rooms::send(s, out, room).await?, Vec::new())),
        Recipients::Members(g) => {
            let v: Value = scripts::SEND_GROUP
                .key(k.client_ids(c))
                .key(k.log(c))
                .key(k.members(g))
                .key(k.changed(c))
                .key(k.fire(0))
                .key(k.activity(c))
                .arg(m.from.as_str())
                .arg(m.ts)
                .arg(m.body.get())
                .arg(m.client_id.as_deref().unwrap_or(""))
                .arg(c.to_string())
                .arg(out.trim.keep.min(LUA_MAX))
                .arg(out.trim.min_ts)
                .arg(k.prefix())
                .arg(reply_arg(m))
                .invoke_async(&mut s.conn())
                .await?;
            let sent = decode_sent(out, &v)?;
            let members = match sent {
                Sent::New(_) => users(codec::array(&v)?.get(2))?,
                _ => Vec::new(),
            };
            return Ok((sent, members));
        }
    };
    let mut inv = scripts::SEND_ALL.prepare_invoke();
    inv.key(k.client_ids(c))
        .key(k.log(c))
        .key(k.changed(c))
        .key(k.dm_blocks(c))
        .key(k.fire(0));
    for u in users {
        inv.key(k.entries(u)).key(k.feed(u));
    }
    inv.arg(m.from.as_str())
        .arg(m.ts)
        .arg(m.body.get())
        .arg(m.client_id.as_deref().unwrap_or(""))
        .arg(c.to_string())
        .arg(out.trim.keep.min(LUA_MAX))
        .arg(out.trim.min_ts)
        .arg(reply_arg(m));
    for u in users {
        inv.arg(u.as_str());
    }
    let v: Value = inv.invoke_async(&mut s.conn()).await?;
    Ok((decode_sent(out, &v)?, users.clone()))
}

/// Puts a fan-out marker for `c`; answers its key and member.
async fn put_marker(s: &Shared, c: &ConversationId) -> Result<(String, String)> {
    let nonce: u64 = rand::random();
    let key = s.keys.fanout(keys::shard(&c.to_string()));
    let member = format!("{c}|{:016x}|{nonce:016x}", s.node);
    let _: u64 = s.conn().zadd(&key, &member, now_ms()).await?;
    Ok((key, member))
}

/// The marker and the commit point of a cluster send, without the fan-out:
/// what a node that dies right after its commit leaves behind.
#[cfg(test)]
pub(crate) async fn commit_and_die(
    s: &Shared,
    out: &Outgoing,
) -> Result<(Sent, Option<Vec<String>>)> {
    put_marker(s, &out.message.conversation).await?;
    let ((sent, _), pending) = commit_conv(s, out).await?;
    Ok((sent, pending))
}

/// A cluster write that commits in a conversation's slot and then fans
/// out: puts a marker (so that any node finishes the fan-out if this one
/// dies), runs `commit`, which answers the first pending records when it
/// wrote any, drains them, and removes the marker.
async fn committed_then_fanned<T>(
    s: &Shared,
    c: &ConversationId,
    commit: impl Future<Output = Result<(T, Option<Vec<String>>)>>,
) -> Result<T> {
    let (marker_key, member) = put_marker(s, c).await?;
    let (answer, pending) = commit.await?;
    if let Some(pending) = pending {
        // Committed. If this fails or we die here, the marker stays and a
        // recovery sweep (this node's or another's) finishes the fan-out.
        let woken = {
            let mut guard = s.drains.lock(c).await;
            drain_after_commit(s, c, pending, &mut guard).await?
        };
        // The notification and the marker's removal at once: the fan-out
        // is whole and its records gone, so neither waits for the other.
        let mut conn = s.conn();
        let (_, removed) = tokio::join!(
            publish(s, keys::shard(&c.to_string()), &woken),
            conn.zrem::<_, _, u64>(&marker_key, &member)
        );
        removed?;
        return Ok(answer);
    }
    let _: u64 = s.conn().zrem(&marker_key, &member).await?;
    Ok(answer)
}

/// The fan-out of a commit whose pending records were `pending`, under
/// its conversation's drain lock. Answers the users whose feeds grew.
pub(crate) async fn drain_after_commit(
    s: &Shared,
    c: &ConversationId,
    pending: Vec<String>,
    guard: &mut DrainGuard<'_>,
) -> Result<BTreeSet<UserId>> {
    if guard.covered {
        // A drain that read the pending records after our commit applied
        // ours; it tells the users itself.
        return Ok(BTreeSet::new());
    }
    if guard.first {
        // No drain ran or waited: ours are the records our commit answered.
        // They may predate the commits of sends that queued since, so this
        // drain covers none of them.
        return drain(s, c, Some(pending)).await;
    }
    // After another drain, the records our commit answered may be applied
    // already: read what is still pending instead, which covers every
    // send that asked for the lock before we started.
    let n = guard.start();
    let woken = drain(s, c, None).await?;
    guard.finished(n);
    Ok(woken)
}

async fn send_cluster(s: &Shared, out: &Outgoing) -> Result<(Sent, Vec<UserId>)> {
    let c = &out.message.conversation;
    committed_then_fanned(s, c, commit_conv(s, out)).await
}

/// The commit point of a cluster send. Answers what was sent and to whom,
/// and the first pending records when it is new.
pub(crate) async fn commit_conv(
    s: &Shared,
    out: &Outgoing,
) -> Result<((Sent, Vec<UserId>), Option<Vec<String>>)> {
    let m = &out.message;
    let k = &s.keys;
    let c = &m.conversation;
    let mut inv = scripts::SEND_CONV.prepare_invoke();
    inv.key(k.client_ids(c))
        .key(k.log(c))
        .key(k.pending(c))
        .key(k.changed(c));
    let (listed, kind) = match &out.recipients {
        Recipients::Room(room) => {
            inv.key(k.members(room));
            (String::new(), "r")
        }
        Recipients::Users(users) => {
            inv.key(k.dm_blocks(c));
            (codec::user_list(users), "u")
        }
        Recipients::Members(g) => {
            inv.key(k.members(g));
            (String::new(), "g")
        }
    };
    inv.arg(m.from.as_str())
        .arg(m.ts)
        .arg(m.body.get())
        .arg(m.client_id.as_deref().unwrap_or(""))
        .arg(format!(
            "{}|{}|{}|{}|",
            m.ts,
            out.trim.keep.min(LUA_MAX),
            out.trim.min_ts,
            m.from
        ))
        .arg(listed)
        .arg(reply_arg(m))
        .arg(kind);
    let v: Value = inv.invoke_async(&mut s.conn()).await?;
    let sent = decode_sent(out, &v)?;
    if !matches!(sent, Sent::New(_)) {
        return Ok(((sent, Vec::new()), None));
    }
    let items = codec::array(&v)?;
    let recipients = user_csv(&codec::text(items.get(3).unwrap_or(&Value::Nil))?)?;
    Ok(((sent, recipients), pending_records(items, 2)?))
}

/// Applies a join or leave (see [`im_engine::Store::update_member`]).
pub(crate) async fn update_member(s: &Shared, u: &MemberUpdate) -> Result<Updated> {
    if u.kind == GroupKind::Room {
        return crate::rooms::update_member(s, u).await;
    }
    let c = ConversationId::group(u.group.clone());
    let (user, member, change) = match &u.change {
        MemberChange::Put(m) => (&m.id, to_json(m)?, Membership::Joined),
        MemberChange::Remove(id) => (id, String::new(), Membership::Left),
    };
    let op = if change == Membership::Joined {
        "+"
    } else {
        "-"
    };
    let event = to_json(&Event::member(&u.group, user, change))?;
    let keep = u.trim.keep.min(LUA_MAX);
    let k = &s.keys;
    let (updated, woken) = s
        .bounded(async {
            if s.cluster() {
                let commit = async {
                    let v: Value = scripts::MEMBER_CONV
                        .key(k.members(&u.group))
                        .key(k.log(&c))
                        .key(k.pending(&c))
                        .key(k.member_seq(&c))
                        .key(k.marks(&Marks::Bans(u.group.clone())))
                        .key(k.member_ids(&u.group))
                        .arg(op)
                        .arg(user.as_str())
                        .arg(&member)
                        .arg(u.max_members)
                        .arg(format!("{}|{keep}|{}|", u.at, u.trim.min_ts))
                        .arg(&event)
                        .invoke_async(&mut s.conn())
                        .await?;
                    let items = codec::array(&v)?;
                    let updated = decode_updated(items)?;
                    Ok((updated, pending_records(items, 1)?))
                };
                // The fan-out told the members on every node already.
                Ok((committed_then_fanned(s, &c, commit).await?, Vec::new()))
            } else {
                let v: Value = scripts::MEMBER_ALL
                    .key(k.members(&u.group))
                    .key(k.log(&c))
                    .key(k.marks(&Marks::Bans(u.group.clone())))
                    .key(k.fire(0))
                    .key(k.member_ids(&u.group))
                    .arg(op)
                    .arg(user.as_str())
                    .arg(&member)
                    .arg(u.max_members)
                    .arg(u.at)
                    .arg(&event)
                    .arg(keep)
                    .arg(u.trim.min_ts)
                    .arg(c.to_string())
                    .arg(k.prefix())
                    .arg(k.channel())
                    .arg(payload(s.node, []))
                    .invoke_async(&mut s.conn())
                    .await?;
                let items = codec::array(&v)?;
                Ok((decode_updated(items)?, users(items.get(1))?))
            }
        })
        .await?;
    s.notifier.wake(&woken);
    Ok(updated)
}

/// How often a change to a message is tried again when another change to
/// it landed between the read and the write.
const UPDATE_TRIES: usize = 16;

/// Changes a message (see [`im_engine::Store::update_message`]): reads it,
/// applies the change in Rust (serde writes every record; no script parses
/// JSON), and swaps the record in a script that first checks the message
/// is still as read; a concurrent change makes it read again.
pub(crate) async fn update_message(s: &Shared, u: &MessageUpdate) -> Result<MessageUpdated> {
    let (updated, woken) = s
        .bounded(async {
            for _ in 0..UPDATE_TRIES {
                let Some((mut message, expected)) = read_message(s, &u.conversation, u.seq).await?
                else {
                    return Ok((MessageUpdated::NotFound, Vec::new()));
                };
                let event = match apply_change(&mut message, &u.change, u.at, u.max_reaction_keys) {
                    Ok(event) => event,
                    Err(refused) => return Ok((refused.answer(&message), Vec::new())),
                };
                let new = to_json(&message)?;
                let event = to_json(&event)?;
                let answer = if s.cluster() {
                    update_cluster(s, u, &expected, &new, &event).await?
                } else {
                    update_single(s, u, &expected, &new, &event).await?
                };
                match answer {
                    Swapped::Done(woken) => return Ok((MessageUpdated::Changed(message), woken)),
                    Swapped::NotMember => return Ok((MessageUpdated::NotMember, Vec::new())),
                    Swapped::Gone => return Ok((MessageUpdated::NotFound, Vec::new())),
                    Swapped::Raced => {}
                }
            }
            Err(crate::Error::Contended(format!(
                "message {} of {} changed {UPDATE_TRIES} times while being changed",
                u.seq, u.conversation
            )))
        })
        .await?;
    s.notifier.wake(&woken);
    Ok(updated)
}

/// What a swap script answered.
enum Swapped {
    /// Stored; these users' feeds grew (on a cluster: told already).
    Done(Vec<UserId>),
    NotMember,
    /// Changed since read: read again.
    Raced,
    Gone,
}

fn decode_swapped(items: &[Value], users_at: Option<usize>) -> Result<Swapped> {
    let flag = items
        .first()
        .ok_or_else(|| corrupt("update script answer"))?;
    Ok(match codec::number(flag)? {
        1 => Swapped::Done(match users_at {
            Some(i) => users(items.get(i))?,
            None => Vec::new(),
        }),
        2 => Swapped::NotMember,
        3 => Swapped::Raced,
        4 => Swapped::Gone,
        n => return Err(corrupt(format!("update script answer {n}"))),
    })
}

/// The user who reacts, for the membership check.
fn reactor(u: &MessageUpdate) -> &str {
    match &u.change {
        MessageChange::React { user, .. } => user.as_str(),
        _ => "",
    }
}

async fn update_single(
    s: &Shared,
    u: &MessageUpdate,
    expected: &str,
    new: &str,
    event: &str,
) -> Result<Swapped> {
    let k = &s.keys;
    let c = &u.conversation;
    let mut inv = scripts::UPDATE_ALL.prepare_invoke();
    inv.key(k.changed(c)).key(k.log(c)).key(k.fire(0));
    let users = match &u.recipients {
        Recipients::Members(g) | Recipients::Room(g) => {
            inv.key(k.members(g));
            &[][..]
        }
        Recipients::Users(users) => {
            for user in users {
                inv.key(k.feed(user));
            }
            &users[..]
        }
    };
    inv.arg(u.seq)
        .arg(expected)
        .arg(new)
        .arg(event)
        .arg(u.at)
        .arg(u.trim.keep.min(LUA_MAX))
        .arg(u.trim.min_ts)
        .arg(k.prefix())
        .arg(reactor(u))
        // A room's change wakes no feed (and a cluster has no such channel).
        .arg(match &u.recipients {
            Recipients::Room(_) => String::new(),
            _ => k.channel(),
        })
        .arg(payload(s.node, []))
        // By the recipients' kind: an empty list of users is no group.
        .arg(match &u.recipients {
            Recipients::Members(_) => "group",
            Recipients::Room(_) => "room",
            Recipients::Users(_) => "users",
        });
    for user in users {
        inv.arg(user.as_str());
    }
    let v: Value = inv.invoke_async(&mut s.conn()).await?;
    decode_swapped(codec::array(&v)?, Some(1))
}

async fn update_cluster(
    s: &Shared,
    u: &MessageUpdate,
    expected: &str,
    new: &str,
    event: &str,
) -> Result<Swapped> {
    let c = &u.conversation;
    let commit = async {
        let k = &s.keys;
        let mut inv = scripts::UPDATE_CONV.prepare_invoke();
        inv.key(k.changed(c))
            .key(k.log(c))
            .key(k.pending(c))
            .key(k.member_seq(c));
        // A room's change reaches no feed: its pending record only feeds
        // the firehose.
        let (listed, kind) = match &u.recipients {
            Recipients::Room(g) => {
                inv.key(k.members(g));
                (String::new(), "r")
            }
            Recipients::Members(g) => {
                inv.key(k.members(g));
                (String::new(), "")
            }
            Recipients::Users(users) => (codec::user_list(users), ""),
        };
        let v: Value = inv
            .arg(u.seq)
            .arg(expected)
            .arg(new)
            .arg(format!(
                "{}|{}|{}|",
                u.at,
                u.trim.keep.min(LUA_MAX),
                u.trim.min_ts
            ))
            .arg(event)
            .arg(reactor(u))
            .arg(listed)
            .arg(kind)
            .invoke_async(&mut s.conn())
            .await?;
        let items = codec::array(&v)?;
        let swapped = decode_swapped(items, None)?;
        let pending = match swapped {
            Swapped::Done(_) => pending_records(items, 1)?,
            _ => None,
        };
        Ok((swapped, pending))
    };
    committed_then_fanned(s, c, commit).await
}

/// A message as stored, with the token its swap checks: its record in
/// `changed`, or `''` while it is the log's original.
async fn read_message(
    s: &Shared,
    c: &ConversationId,
    seq: Seq,
) -> Result<Option<(Message, String)>> {
    let (mut found, changed) = read_messages(s, c, seq, seq).await?;
    Ok(match changed.into_iter().next() {
        Some((_, record)) => Some((codec::from_json("message", &record)?, record)),
        None => found.pop().map(|m| (m, String::new())),
    })
}

/// Messages `from..=to`: those still in the log, and the records of those
/// changed since, as stored.
pub(crate) async fn read_messages(
    s: &Shared,
    c: &ConversationId,
    from: Seq,
    to: Seq,
) -> Result<(Vec<Message>, Vec<(Seq, String)>)> {
    let k = &s.keys;
    let v: Value = scripts::READ_MESSAGES
        .key(k.log(c))
        .key(k.changed(c))
        .arg(from)
        .arg(to.min(LUA_MAX))
        .invoke_async(&mut s.conn())
        .await?;
    let items = codec::array(&v)?;
    let (Some(entries), Some(changed)) = (items.first(), items.get(1)) else {
        return Err(corrupt("message read answer"));
    };
    let logged = codec::array(entries)?
        .iter()
        .map(|e| {
            let (seq, fields) = codec::stream_entry(e)?;
            codec::message(c, seq, &fields)
        })
        .collect::<Result<_>>()?;
    let changed = codec::array(changed)?
        .chunks(2)
        .map(|pair| match pair {
            [seq, record] => Ok((codec::number(seq)?, codec::text(record)?)),
            _ => Err(corrupt("message read answer")),
        })
        .collect::<Result<_>>()?;
    Ok((logged, changed))
}

/// `{1, …}`, `{0}` or `{2}` from a membership script.
fn decode_updated(items: &[Value]) -> Result<Updated> {
    let flag = items
        .first()
        .ok_or_else(|| corrupt("membership script answer"))?;
    match codec::number(flag)? {
        1 => Ok(Updated::Changed),
        0 => Ok(Updated::Unchanged),
        2 => Ok(Updated::Full),
        3 => Ok(Updated::Banned),
        n => Err(corrupt(format!("membership script answer {n}"))),
    }
}

/// Applies every pending record of `c` to its recipients, oldest first, and
/// removes each once all its recipients have it. `first` is the first batch
/// when the caller already has it. Answers the users whose feeds grew.
pub(crate) async fn drain(
    s: &Shared,
    c: &ConversationId,
    first: Option<Vec<String>>,
) -> Result<BTreeSet<UserId>> {
    let k = &s.keys;
    let mut woken = BTreeSet::new();
    let mut batch = first;
    loop {
        let raw = match batch.take() {
            Some(raw) => raw,
            None => s.conn().zrange(k.pending(c), 0, BATCH as isize - 1).await?,
        };
        if raw.is_empty() {
            break;
        }
        let records: Vec<Pending> = raw
            .iter()
            .map(|r| codec::pending(r))
            .collect::<Result<_>>()?;
        let conv = c.to_string();
        // The users' parts and the firehose's at once: each is applied at
        // most once by its own watermark, in any order.
        let (users, fired) = tokio::join!(
            fan_out::to_users(s, &conv, &records),
            fire_records(s, c, &records)
        );
        woken.extend(users?);
        fired?;
        let _: u64 = s.conn().zrem(k.pending(c), &raw).await?;
        if raw.len() < BATCH {
            break;
        }
    }
    Ok(woken)
}

/// Appends pending records of `c` to its firehose partition, each once
/// (the partition's watermark for `c` skips those appended already).
async fn fire_records(s: &Shared, c: &ConversationId, records: &[Pending]) -> Result<()> {
    let conv = c.to_string();
    let part = keys::shard(&conv);
    let k = &s.keys;
    let mut inv = scripts::FIRE_CONV.prepare_invoke();
    inv.key(k.fire(part)).key(k.fire_marks(part)).arg(&conv);
    for r in records {
        inv.arg(r.seq).arg(r.mseq).arg(r.ts).arg(&r.event);
    }
    let _: u64 = inv.invoke_async(&mut s.conn()).await?;
    Ok(())
}

/// The firehose partition of an event: the conversation's (a shared
/// event) or the user's, as the marker shards spread them; 0 on a single
/// Redis, which has one.
pub(crate) fn fire_part(s: &Shared, user: Option<&UserId>, event: &Event) -> u64 {
    if !s.cluster() {
        return 0;
    }
    let id = match (user, event) {
        (Some(u), _) => u.to_string(),
        (
            None,
            Event::Message { conversation, .. }
            | Event::Edit { conversation, .. }
            | Event::Delete { conversation, .. }
            | Event::Reaction { conversation, .. }
            | Event::Read { conversation, .. },
        ) => conversation.to_string(),
        (None, Event::Member { group, .. } | Event::JoinRequest { group, .. }) => {
            ConversationId::group(group.clone()).to_string()
        }
        (None, Event::Contact { user, .. }) => user.to_string(),
    };
    keys::shard(&id)
}

/// Finishes the fan-outs whose markers are older than `grace`: those of
/// crashed nodes (or of slow ones: finishing twice is harmless). Answers how
/// many markers it cleared.
pub(crate) async fn recover(s: &Shared, grace: Duration) -> Result<usize> {
    let before = now_ms().saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
    let mut cleared = 0;
    for shard in 0..SHARDS {
        let key = s.keys.fanout(shard);
        loop {
            let markers: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(before)
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut s.conn())
                .await?;
            if markers.is_empty() {
                break;
            }
            let convs: BTreeSet<&str> =
                markers.iter().filter_map(|m| m.split('|').next()).collect();
            for c in convs {
                let c: ConversationId = c
                    .parse()
                    .map_err(|_| corrupt(format!("fan-out marker {c:?}")))?;
                let woken = drain(s, &c, None).await?;
                s.notifier.wake(&woken);
                publish(s, shard, &woken).await;
            }
            let _: u64 = s.conn().zrem(&key, &markers).await?;
            cleared += markers.len();
            if markers.len() < BATCH {
                break;
            }
        }
    }
    Ok(cleared)
}

/// Tells the other nodes (cluster) that these users' feeds grew. A lost
/// notification costs latency only (streams recheck their feed), so a
/// failure is logged, not returned.
async fn publish(s: &Shared, shard: u64, users: &BTreeSet<UserId>) {
    if users.is_empty() {
        return;
    }
    let r: redis::RedisResult<Value> = redis::cmd("SPUBLISH")
        .arg(s.keys.shard_channel(shard))
        .arg(payload(s.node, users))
        .query_async(&mut s.conn())
        .await;
    if let Err(e) = r {
        tracing::debug!(error = %e, "could not publish a feed notification");
    }
}

/// Who owns a key: the slot its part of a change set goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    User(UserId),
    /// A group's members, in its conversation's slot.
    Members(GroupId),
    /// A direct conversation's blocks, in its slot.
    Conv(ConversationId),
    /// The store-wide sets.
    Meta,
    /// A firehose partition.
    Fire(u64),
    Group(GroupId),
}

/// When a slot's part of a change set is applied on a cluster: users'
/// slots, then members' and conversations' (and the store-wide sets and
/// the firehose), then groups', whose records decide whether a join, leave
/// or creation already happened. An erasure ends with the erased user's own
/// slot, whose record decides whether there is anything left to erase, and
/// then the lifting of its suspension: an erasure stopped part way can run
/// again, and the user stays locked out meanwhile.
fn rank(owner: &Owner, changes: &Changes) -> u8 {
    match owner {
        Owner::User(u) if changes.erase.contains(u) => 3,
        Owner::Meta if !changes.erase.is_empty() => 4,
        Owner::User(_) => 0,
        Owner::Members(_) | Owner::Conv(_) | Owner::Meta | Owner::Fire(_) => 1,
        Owner::Group(_) => 2,
    }
}

/// One write of a change set.
#[derive(Debug)]
enum Op {
    Set(String, String),
    HSet(String, String, String),
    HDel(String, String),
    Read(String, String, u64),
    Feed(String, Timestamp, String),
    Del(String),
    /// Drop every event of a feed, keeping its head.
    Clear(String),
    /// Put (`Some` JSON) or remove a group's member, in the members hash
    /// and the index of their ids (see [`scripts::APPLY`]).
    Member {
        members: String,
        ids: String,
        user: String,
        value: Option<String>,
        /// Single Redis: the group's conversation, whose activity the
        /// user's entry is fixed at first; `None` on a cluster.
        conv: Option<String>,
    },
    /// Single Redis: put an entry (with what keeps a group's activity and
    /// a direct conversation's `@<conv>` field right): entries key,
    /// conversation, read_seq, activity.
    Entry(String, String, Seq, Timestamp),
    /// Single Redis: remove an entry (both its fields).
    Unentry(String, String),
    /// Append to a firehose partition: stream, ts, user (`''`: none),
    /// event.
    Fire(String, Timestamp, String, String),
}

/// The ops of `changes` in field order, each with its owner.
fn ops(s: &Shared, changes: &Changes) -> Result<Vec<(Owner, Op)>> {
    let k = &s.keys;
    let mut ops = Vec::new();
    for u in &changes.users {
        ops.push((
            Owner::User(u.id.clone()),
            Op::Set(k.user(&u.id), to_json(u)?),
        ));
    }
    for (owner, change) in &changes.contacts {
        let key = k.contacts(owner);
        let (contact, op) = match change {
            ContactChange::Put(c) => (&c.id, Op::HSet(key, c.id.to_string(), to_json(c)?)),
            ContactChange::Remove(id) => (id, Op::HDel(key, id.to_string())),
        };
        // The reverse index first: on a cluster each slot's part is its own
        // script, and the contact itself, which the engine reads to decide
        // whether a link happened, must land last (see `commit`).
        let reverse = match change {
            ContactChange::Put(_) => Op::HSet(k.followers(contact), owner.to_string(), "1".into()),
            ContactChange::Remove(_) => Op::HDel(k.followers(contact), owner.to_string()),
        };
        ops.push((Owner::User(contact.clone()), reverse));
        ops.push((Owner::User(owner.clone()), op));
    }
    for g in &changes.groups {
        ops.push((
            Owner::Group(g.id.clone()),
            Op::Set(k.group(&g.id), to_json(g)?),
        ));
    }
    // On one Redis, a group's members and its conversation's entries keep
    // the group's activity right (see `Keys::activity`); a cluster has
    // none and writes every entry.
    let single = !s.cluster();
    for (group, change) in &changes.members {
        let (user, value) = match change {
            MemberChange::Put(m) => (m.id.to_string(), Some(to_json(m)?)),
            MemberChange::Remove(id) => (id.to_string(), None),
        };
        let op = Op::Member {
            members: k.members(group),
            ids: k.member_ids(group),
            user,
            value,
            conv: single.then(|| ConversationId::group(group.clone()).to_string()),
        };
        ops.push((Owner::Members(group.clone()), op));
    }
    for (user, change) in &changes.entries {
        let key = k.entries(user);
        let op = match change {
            EntryChange::Put(e) if single => {
                Op::Entry(key, e.conversation.to_string(), e.read_seq, e.activity)
            }
            EntryChange::Remove(c) if single => Op::Unentry(key, c.to_string()),
            EntryChange::Put(e) => Op::HSet(
                key,
                e.conversation.to_string(),
                entry_value(e.read_seq, e.activity),
            ),
            EntryChange::Remove(c) => Op::HDel(key, c.to_string()),
            EntryChange::Read { conversation, seq } => {
                Op::Read(key, conversation.to_string(), *seq)
            }
        };
        ops.push((Owner::User(user.clone()), op));
    }
    for (user, ts, event) in &changes.events {
        ops.push((
            Owner::User(user.clone()),
            Op::Feed(k.feed(user), *ts, to_json(event)?),
        ));
    }
    for (user, ts, event) in fire_events(changes) {
        let part = fire_part(s, user.as_ref(), &event);
        let user = user.map(|u| u.to_string()).unwrap_or_default();
        let op = Op::Fire(k.fire(part), ts, user, to_json(&event)?);
        ops.push((Owner::Fire(part), op));
    }
    for (set, change) in &changes.marks {
        let (user, since) = match change {
            MarkChange::Put(m) => (&m.user, Some(m.since)),
            MarkChange::Remove(u) => (u, None),
        };
        let op = |key, field: &UserId| match since {
            Some(since) => Op::HSet(key, field.to_string(), since.to_string()),
            None => Op::HDel(key, field.to_string()),
        };
        let owner = match set {
            Marks::Requests(g) | Marks::Bans(g) => Owner::Members(g.clone()),
            Marks::Blocks(u) => Owner::User(u.clone()),
            Marks::Suspended => Owner::Meta,
        };
        ops.push((owner, op(k.marks(set), user)));
        // A block is also kept where a direct send commits.
        if let Marks::Blocks(blocker) = set {
            let dm = ConversationId::direct(blocker.clone(), user.clone())
                .map_err(|_| corrupt(format!("{blocker} blocks itself")))?;
            ops.push((Owner::Conv(dm.clone()), op(k.dm_blocks(&dm), blocker)));
        }
    }
    for user in &changes.erase {
        let owner = Owner::User(user.clone());
        ops.push((owner.clone(), Op::Del(k.user(user))));
        ops.push((owner, Op::Clear(k.feed(user))));
    }
    Ok(ops)
}

/// Runs ops as one [`scripts::APPLY`] call (all in one slot on a cluster).
async fn apply(s: &Shared, ops: &[&Op], changes: &Changes, notify: Option<String>) -> Result<()> {
    // Each key once, named in the ops by its 1-based index.
    let mut keys: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut intern = |key: &String| -> String {
        let n = *index.entry(key.clone()).or_insert_with(|| {
            keys.push(key.clone());
            keys.len()
        });
        n.to_string()
    };
    let keep = changes.trim.keep.min(LUA_MAX).to_string();
    let min_ts = changes.trim.min_ts.to_string();
    let mut args: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Set(key, v) => args.extend(["set".into(), intern(key), v.clone()]),
            Op::HSet(key, f, v) => args.extend(["hset".into(), intern(key), f.clone(), v.clone()]),
            Op::HDel(key, f) => args.extend(["hdel".into(), intern(key), f.clone()]),
            Op::Read(key, c, seq) => {
                args.extend(["read".into(), intern(key), c.clone(), seq.to_string()]);
            }
            Op::Del(key) => args.extend(["del".into(), intern(key)]),
            Op::Clear(feed) => args.extend(["clear".into(), intern(feed)]),
            Op::Member {
                members,
                ids,
                user,
                value,
                conv,
            } => args.extend([
                "member".into(),
                intern(members),
                intern(ids),
                user.clone(),
                value.clone().unwrap_or_default(),
                conv.clone().unwrap_or_default(),
            ]),
            Op::Entry(key, conv, read, activity) => args.extend([
                "entry".into(),
                intern(key),
                conv.clone(),
                read.to_string(),
                activity.to_string(),
            ]),
            Op::Unentry(key, conv) => args.extend(["unentry".into(), intern(key), conv.clone()]),
            Op::Fire(fire, ts, user, event) => args.extend([
                "fire".into(),
                intern(fire),
                ts.to_string(),
                user.clone(),
                event.clone(),
            ]),
            Op::Feed(feed, ts, event) => args.extend([
                "feed".into(),
                intern(feed),
                ts.to_string(),
                event.clone(),
                keep.clone(),
                min_ts.clone(),
            ]),
        }
    }
    let mut inv = scripts::APPLY.prepare_invoke();
    for key in keys {
        inv.key(key);
    }
    match notify {
        Some(payload) => inv.arg(s.keys.channel()).arg(payload),
        None => inv.arg("").arg(""),
    };
    inv.arg(s.keys.prefix());
    for a in args {
        inv.arg(a);
    }
    let _: Value = inv.invoke_async(&mut s.conn()).await?;
    Ok(())
}

/// Applies a change set (see [`im_engine::Store::commit`]).
///
/// On a single Redis, one script applies it whole. On a cluster each slot's
/// part is one script, atomic on its own; the parts of users' slots (index
/// entries, feed events, contacts, profiles) go first and those of groups'
/// slots (the group and its members, which the engine reads to decide
/// whether a join, leave or creation already happened) last, and an
/// erasure's own two after them (see [`rank`]). A failure in
/// between returns an error with the earlier parts applied, and the
/// decisive record unwritten, so re-running the operation completes it; the
/// feeds that had the event already then hear of it twice. See the crate
/// docs.
pub(crate) async fn commit(s: &Shared, changes: &Changes) -> Result<()> {
    let all = ops(s, changes)?;
    if all.is_empty() {
        return Ok(());
    }
    let users: BTreeSet<&UserId> = changes.events.iter().map(|(u, ..)| u).collect();
    s.bounded(async {
        if s.cluster() {
            let mut parts: BTreeMap<&Owner, Vec<&Op>> = BTreeMap::new();
            let mut order: Vec<&Owner> = Vec::new();
            for (owner, op) in &all {
                if !parts.contains_key(owner) {
                    order.push(owner);
                }
                parts.entry(owner).or_default().push(op);
            }
            // Each rank in order of first appearance.
            order.sort_by_key(|o| rank(o, changes));
            for owner in order {
                apply(s, &parts[owner], changes, None).await?;
            }
            if let Some(first) = users.iter().next() {
                let set: BTreeSet<UserId> = users.iter().map(|u| (*u).clone()).collect();
                publish(s, keys::shard(first.as_str()), &set).await;
            }
            Ok(())
        } else {
            let ops: Vec<&Op> = all.iter().map(|(_, op)| op).collect();
            let notify = (!users.is_empty()).then(|| payload(s.node, users.iter().copied()));
            apply(s, &ops, changes, notify).await
        }
    })
    .await?;
    s.notifier.wake(users.iter().copied());
    Ok(())
}
