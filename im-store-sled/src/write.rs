//! The two atomic writes, each one sled multi-tree transaction.
//!
//! sled may run a transaction closure more than once, so the closures below
//! only read and write through their transactional trees: values are
//! encoded before the transaction where they can be, and nothing outside it
//! (notifier, flusher) is touched until it has committed.
//!
//! In sled 0.34 a transaction holds a process-wide lock while its closure
//! runs and while it commits, so transactions never interleave and every
//! single read outside them sees all of one or none of it. The functions
//! here block; callers run them on Tokio's blocking pool.

use sled::IVec;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use im_engine::store::{
    Changes, ContactChange, EntryChange, FeedTrim, MemberChange, Outgoing, Sent,
};
use im_engine::{Event, UserId};

use crate::codec::{self, Bounds, Entry};
use crate::db::Trees;
use crate::error::{Error, Result};
use crate::keys::{self, tree};

type TxError = ConflictableTransactionError<Error>;
type TxResult<T> = std::result::Result<T, TxError>;

fn abort(e: Error) -> TxError {
    ConflictableTransactionError::Abort(e)
}

fn finish<T>(r: std::result::Result<T, TransactionError<Error>>) -> Result<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => Error::Sled(e),
    })
}

/// [`Store::send`](im_engine::Store::send) as one transaction.
pub(crate) fn send(t: &Trees, out: &Outgoing) -> Result<Sent> {
    let m = &out.message;
    let conv = keys::conv(&m.conversation);
    let client_key = m
        .client_id
        .as_deref()
        .map(|id| keys::conv_sender_client_id(&conv, &m.from, id));
    let trees = (
        &t.conv_lastseq,
        &t.convseq_message,
        &t.convsenderclientid_seq,
        &t.userconv_entry,
        &t.userpos_event,
        &t.user_feedbounds,
    );
    finish(sled::Transactional::transaction(
        &trees,
        |(last_seqs, messages, client_ids, entries, events, bounds)| {
            // A repeat answers the stored message and writes nothing.
            if let Some(key) = &client_key
                && let Some(seq) = client_ids.get(key)?
            {
                let seq = codec::to_u64(tree::CONVSENDERCLIENTID_SEQ, &seq).map_err(abort)?;
                let stored = messages.get(keys::conv_seq(&conv, seq))?.ok_or_else(|| {
                    abort(Error::Corrupt(format!(
                        "client id of {} names missing message {seq}",
                        m.conversation
                    )))
                })?;
                let stored = codec::from_json(tree::CONVSEQ_MESSAGE, &stored).map_err(abort)?;
                return Ok(Sent::Duplicate(stored));
            }
            let last = match last_seqs.get(&conv)? {
                Some(v) => codec::to_u64(tree::CONV_LASTSEQ, &v).map_err(abort)?,
                None => 0,
            };
            let seq = last + 1;
            let message = m.numbered(seq);
            let seq_bytes = &seq.to_be_bytes()[..];
            messages.insert(
                keys::conv_seq(&conv, seq),
                codec::json(&message).map_err(abort)?,
            )?;
            last_seqs.insert(&conv[..], seq_bytes)?;
            if let Some(key) = &client_key {
                client_ids.insert(&key[..], seq_bytes)?;
            }
            // One encoding shared by every feed: cloning an `IVec` this
            // size only bumps a reference count.
            let event = IVec::from(
                codec::event(
                    m.ts,
                    &Event::Message {
                        conversation: m.conversation.clone(),
                        seq,
                    },
                )
                .map_err(abort)?,
            );
            for user in &out.recipients {
                let key = keys::user_conv(user, &conv);
                let mut entry = match entries.get(&key)? {
                    Some(v) => Entry::decode(&v).map_err(abort)?,
                    None => Entry {
                        read_seq: 0,
                        activity: m.ts,
                    },
                };
                entry.activity = m.ts;
                if *user == m.from {
                    entry.read_seq = entry.read_seq.max(seq);
                }
                entries.insert(key, &entry.encode()[..])?;
                append(events, bounds, user, event.clone(), out.trim)?;
            }
            Ok(Sent::New(message))
        },
    ))
}

/// [`Store::commit`](im_engine::Store::commit) as one transaction, applied in
/// field order like `MemoryStore` does.
pub(crate) fn commit(t: &Trees, changes: &Changes) -> Result<()> {
    // Encode outside the transaction: less work under sled's lock, and
    // nothing to redo if the closure runs again.
    let users = changes
        .users
        .iter()
        .map(|u| Ok((u.id.as_str().as_bytes(), codec::json(u)?)))
        .collect::<Result<Vec<_>>>()?;
    let contacts = changes
        .contacts
        .iter()
        .map(|(owner, change)| {
            Ok(match change {
                ContactChange::Put(c) => (keys::owner_contact(owner, &c.id), Some(codec::json(c)?)),
                ContactChange::Remove(id) => (keys::owner_contact(owner, id), None),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let groups = changes
        .groups
        .iter()
        .map(|g| Ok((g.id.as_str().as_bytes(), codec::json(g)?)))
        .collect::<Result<Vec<_>>>()?;
    let members = changes
        .members
        .iter()
        .map(|(group, change)| {
            Ok(match change {
                MemberChange::Put(m) => (keys::group_user(group, &m.id), Some(codec::json(m)?)),
                MemberChange::Remove(id) => (keys::group_user(group, id), None),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let events = changes
        .events
        .iter()
        .map(|(user, ts, event)| Ok((user, IVec::from(codec::event(*ts, event)?))))
        .collect::<Result<Vec<_>>>()?;

    let trees = (
        &t.userid_user,
        &t.ownercontact_contact,
        &t.groupid_group,
        &t.groupuser_member,
        &t.userconv_entry,
        &t.userpos_event,
        &t.user_feedbounds,
    );
    finish(sled::Transactional::transaction(
        &trees,
        |(user_tree, contact_tree, group_tree, member_tree, entries, event_tree, bounds)| {
            for (key, value) in &users {
                user_tree.insert(*key, &value[..])?;
            }
            put_or_remove(contact_tree, &contacts)?;
            for (key, value) in &groups {
                group_tree.insert(*key, &value[..])?;
            }
            put_or_remove(member_tree, &members)?;
            for (user, change) in &changes.entries {
                match change {
                    EntryChange::Put(e) => {
                        let key = keys::user_conv(user, &keys::conv(&e.conversation));
                        entries.insert(key, &Entry::from_conv_entry(e).encode()[..])?;
                    }
                    EntryChange::Remove(c) => {
                        entries.remove(keys::user_conv(user, &keys::conv(c)))?;
                    }
                    EntryChange::Read { conversation, seq } => {
                        let key = keys::user_conv(user, &keys::conv(conversation));
                        if let Some(v) = entries.get(&key)? {
                            let mut entry = Entry::decode(&v).map_err(abort)?;
                            if entry.read_seq < *seq {
                                entry.read_seq = *seq;
                                entries.insert(key, &entry.encode()[..])?;
                            }
                        }
                    }
                }
            }
            for (user, event) in &events {
                append(event_tree, bounds, user, event.clone(), changes.trim)?;
            }
            Ok(())
        },
    ))
}

fn put_or_remove(
    tree: &TransactionalTree,
    changes: &[(Vec<u8>, Option<Vec<u8>>)],
) -> std::result::Result<(), UnabortableTransactionError> {
    for (key, value) in changes {
        match value {
            Some(v) => tree.insert(&key[..], &v[..])?,
            None => tree.remove(&key[..])?,
        };
    }
    Ok(())
}

/// Appends an encoded event to `user`'s feed, then applies `trim`: drops the
/// oldest events while the feed holds more than `keep` or the oldest is
/// older than `min_ts`, remembering the highest position dropped.
///
/// Positions are dense from `trimmed + 1` to `head`, so the oldest event is
/// always at `trimmed + 1` and trimming needs point reads only.
fn append(
    events: &TransactionalTree,
    bounds: &TransactionalTree,
    user: &UserId,
    event: IVec,
    trim: FeedTrim,
) -> TxResult<()> {
    let key = user.as_str().as_bytes();
    let mut b = match bounds.get(key)? {
        Some(v) => Bounds::decode(&v).map_err(abort)?,
        None => Bounds::default(),
    };
    b.head += 1;
    events.insert(keys::user_pos(user, b.head), event)?;
    while b.trimmed < b.head {
        let oldest = b.trimmed + 1;
        let oldest_key = keys::user_pos(user, oldest);
        if b.head - b.trimmed <= trim.keep {
            if trim.min_ts == 0 {
                break;
            }
            let v = events.get(&oldest_key)?.ok_or_else(|| {
                abort(Error::Corrupt(format!(
                    "feed of {user} misses position {oldest}"
                )))
            })?;
            if codec::event_ts(&v).map_err(abort)? >= trim.min_ts {
                break;
            }
        }
        events.remove(oldest_key)?;
        b.trimmed = oldest;
    }
    bounds.insert(key, &b.encode()[..])?;
    Ok(())
}
