//! Repairs of data that earlier builds wrote wrongly, run once at open.
//!
//! Builds before the membership fix could write a removed member's index
//! entry of a group again, when a send that had read the members before
//! the removal committed after it. Such an entry kept the group in the
//! removed user's conversation list, with the group's newest message and a
//! rising unread count. An entry of a group whose user is no member is
//! never right, so the first open of this build removes each one (and its
//! count in the conversation's `holders`), then records in `meta` that it
//! did. A crash before that record makes the next open check again, which
//! finds nothing more to remove.
//!
//! Builds before live signals kept no `contactowner_` (who has a user in
//! their contacts, which presence is sent to): the first open of this
//! build writes it from the contacts, then records that it did. Writing it
//! again after a crash writes the same keys.

use std::collections::HashMap;

use im_engine::ConversationId;

use crate::codec::ConvState;
use crate::error::{Error, Result};
use crate::keys::{self, kind, meta};

/// Removes every group entry whose user is not a member of the group,
/// unless an earlier open did. Answers how many it removed.
pub(crate) fn drop_stray_group_entries(
    records: &sled::Tree,
    meta_tree: &sled::Tree,
) -> Result<usize> {
    if meta_tree.get(meta::GROUP_ENTRIES_CHECKED)?.is_some() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    let mut dropped: HashMap<Vec<u8>, u64> = HashMap::new();
    for kv in records.scan_prefix([kind::USERCONV_ENTRY]) {
        let (key, _) = kv?;
        let (user, conversation) = keys::decode_user_conv(&key)
            .ok_or_else(|| Error::Corrupt(format!("bad index entry key {key:?}")))?;
        let ConversationId::Group(group) = &conversation else {
            continue;
        };
        if records.get(keys::group_user(group, &user))?.is_none() {
            batch.remove(key);
            *dropped.entry(keys::conv(&conversation)).or_default() += 1;
        }
    }
    for (conv, n) in &dropped {
        let key = keys::conv_state(conv);
        let mut state = match records.get(&key)? {
            Some(v) => ConvState::decode(&v)?,
            None => ConvState::default(),
        };
        state.holders = state.holders.saturating_sub(*n);
        batch.insert(key, state.encode().to_vec());
    }
    records.apply_batch(batch)?;
    meta_tree.insert(meta::GROUP_ENTRIES_CHECKED, &[1u8][..])?;
    Ok(dropped.values().sum::<u64>() as usize)
}

/// Writes `contactowner_` from `ownercontact_contact`, unless an earlier
/// open did. Answers how many contacts it indexed.
pub(crate) fn index_followers(records: &sled::Tree, meta_tree: &sled::Tree) -> Result<usize> {
    if meta_tree.get(meta::FOLLOWERS_INDEXED)?.is_some() {
        return Ok(0);
    }
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for kv in records.scan_prefix([kind::OWNERCONTACT_CONTACT]) {
        let (key, _) = kv?;
        let bad = || Error::Corrupt(format!("bad contact key {key:?}"));
        let owner = key
            .iter()
            .position(|&b| b == keys::SEP)
            .and_then(|at| std::str::from_utf8(&key[1..at]).ok())
            .and_then(|o| im_engine::UserId::new(o).ok())
            .ok_or_else(bad)?;
        let contact = keys::last_user(&key).ok_or_else(bad)?;
        batch.insert(keys::contact_owner(&contact, &owner), Vec::new());
        n += 1;
    }
    records.apply_batch(batch)?;
    meta_tree.insert(meta::FOLLOWERS_INDEXED, &[1u8][..])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use im_engine::store::{Changes, EntryChange};
    use im_engine::{Actor, ConvEntry, ConversationId, Engine, GroupId, JoinPolicy, Store, UserId};

    use crate::{SledConfig, SledStore};

    use super::*;

    #[tokio::test]
    async fn an_entry_an_older_build_left_to_a_removed_member_goes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let uid = |s: &str| UserId::new(s).unwrap();
        let g = GroupId::new("g").unwrap();
        let group = ConversationId::group(g.clone());
        let engine = Engine::new(SledStore::open(SledConfig::new(dir.path())).unwrap());
        let root = Actor::admin(uid("root"));
        for u in ["alice", "bob"] {
            engine
                .put_user(&root, &uid(u), Default::default())
                .await
                .unwrap();
        }
        let alice = Actor::user(uid("alice"));
        engine
            .put_group(&alice, &g, Default::default(), Some(JoinPolicy::Open))
            .await
            .unwrap();
        // What the race wrote: bob holds an entry of a group he is not in.
        let stray = ConvEntry {
            conversation: group.clone(),
            read_seq: 0,
            activity: 1,
        };
        let changes = Changes {
            entries: vec![(uid("bob"), EntryChange::Put(stray))],
            ..Changes::default()
        };
        engine.store().commit(&changes).await.unwrap();
        let store = engine.try_into_store().unwrap();
        // As a directory an older build wrote: never checked.
        store
            .trees
            .meta
            .remove(meta::GROUP_ENTRIES_CHECKED)
            .unwrap();
        store.close().unwrap();

        let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
        assert_eq!(store.entry(&uid("bob"), &group).await.unwrap(), None);
        assert!(store.entry(&uid("alice"), &group).await.unwrap().is_some());
        let state = store
            .trees
            .records
            .get(keys::conv_state(&keys::conv(&group)))
            .unwrap();
        assert_eq!(ConvState::decode(&state.unwrap()).unwrap().holders, 1);
    }
}
