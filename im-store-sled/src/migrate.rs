//! Opening a directory written by an older format: format 1 to format 2.
//!
//! Format 1 kept each kind of record in a tree of its own, named as the
//! kinds are now (but `client_id_seq`, whose tree was
//! `convsenderclientid_seq`), with the same key bytes minus the kind tag and
//! the same values, except for three trees:
//!
//! | format 1 tree     | key              | value                  | becomes in format 2                            |
//! |-------------------|------------------|------------------------|------------------------------------------------|
//! | `conv_lastseq`    | `conv`           | `last_seq`             | `conv_state`, its `holders` counted            |
//! | `userconv_entry`  | `user 0xFF conv` | `read_seq` `activity`  | the same, `since` = the conversation's `last_seq` |
//! | `user_feedbounds` | `user`           | `head` `trimmed`       | `user_feedfloor` for an empty feed, else none  |
//!
//! The migration copies everything into `records`, flushes, and only then
//! writes format 2 into `meta` and drops the old trees. A crash before the
//! version lands leaves format 1 whole and a partial `records`, which the
//! next open clears and fills again; a crash after it leaves old trees that
//! the next open drops.

use std::collections::HashMap;

use crate::codec::{self, ConvState, Entry};
use crate::error::{Error, Result};
use crate::keys::{SEP, kind, meta, tree};

/// Format 1's trees, and the kind each is copied to unchanged (`None`: the
/// values change).
const V1_TREES: [(&str, Option<u8>); 11] = [
    ("userid_user", Some(kind::USERID_USER)),
    ("ownercontact_contact", Some(kind::OWNERCONTACT_CONTACT)),
    ("groupid_group", Some(kind::GROUPID_GROUP)),
    ("groupuser_member", Some(kind::GROUPUSER_MEMBER)),
    ("conv_lastseq", None),
    ("convseq_message", Some(kind::CONVSEQ_MESSAGE)),
    ("convsenderclientid_seq", Some(kind::CLIENT_ID_SEQ)),
    ("userconv_entry", None),
    ("userpos_event", Some(kind::USERPOS_EVENT)),
    ("user_feedbounds", None),
    ("user_lastseen", Some(kind::USER_LASTSEEN)),
];

/// Keys written per batch: bounded memory, however large the database.
const CHUNK: usize = 10_000;

/// Batches of writes into `records`.
struct Chunks<'a> {
    records: &'a sled::Tree,
    batch: sled::Batch,
    len: usize,
}

impl Chunks<'_> {
    fn insert(&mut self, kind: u8, key: &[u8], value: impl Into<sled::IVec>) -> Result<()> {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(kind);
        k.extend_from_slice(key);
        self.batch.insert(k, value);
        self.len += 1;
        if self.len == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.records.apply_batch(std::mem::take(&mut self.batch))?;
        self.len = 0;
        Ok(())
    }
}

/// Migrates a format 1 database at `db` to format 2.
pub(crate) fn from_v1(db: &sled::Db, meta_tree: &sled::Tree) -> Result<()> {
    let records = db.open_tree(tree::RECORDS)?;
    // What an interrupted migration left.
    records.clear()?;
    let mut out = Chunks {
        records: &records,
        batch: sled::Batch::default(),
        len: 0,
    };
    let mut states: HashMap<sled::IVec, ConvState> = HashMap::new();
    for kv in db.open_tree("conv_lastseq")?.iter() {
        let (conv, v) = kv?;
        let last_seq = codec::to_u64("conv_lastseq", &v)?;
        states.insert(
            conv,
            ConvState {
                last_seq,
                ..ConvState::default()
            },
        );
    }
    for kv in db.open_tree("userconv_entry")?.iter() {
        let (key, v) = kv?;
        let [read_seq, activity] = codec::to_u64s("userconv_entry", &v)?;
        let conv = key
            .iter()
            .position(|&b| b == SEP)
            .map(|i| &key[i + 1..])
            .ok_or_else(|| Error::Corrupt(format!("bad key in userconv_entry: {key:?}")))?;
        let state = states.entry(conv.into()).or_default();
        state.holders += 1;
        // Its own activity, as before, until the conversation moves on.
        let entry = Entry {
            read_seq,
            activity,
            since: state.last_seq,
        };
        out.insert(kind::USERCONV_ENTRY, &key, entry.encode().to_vec())?;
    }
    for (conv, state) in &states {
        out.insert(kind::CONV_STATE, conv, state.encode().to_vec())?;
    }
    for kv in db.open_tree("user_feedbounds")?.iter() {
        let (user, v) = kv?;
        let [head, trimmed] = codec::to_u64s("user_feedbounds", &v)?;
        if trimmed > head {
            return Err(Error::Corrupt(format!(
                "feed trimmed past its head ({trimmed} > {head})"
            )));
        }
        // A feed with events has its bounds in its keys.
        if head > 0 && trimmed == head {
            out.insert(kind::USER_FEEDFLOOR, &user, head.to_be_bytes().to_vec())?;
        }
    }
    for (name, kind) in V1_TREES {
        let Some(kind) = kind else { continue };
        for kv in db.open_tree(name)?.iter() {
            let (key, value) = kv?;
            out.insert(kind, &key, value)?;
        }
    }
    out.flush()?;
    // Everything is on disk before the version says so.
    db.flush()?;
    meta_tree.insert(meta::VERSION, &crate::FORMAT_VERSION.to_be_bytes()[..])?;
    db.flush()?;
    drop_v1_trees(db)
}

/// Drops what is left of format 1's trees (after a crash between writing
/// the new version and dropping them).
pub(crate) fn drop_v1_trees(db: &sled::Db) -> Result<()> {
    let names = db.tree_names();
    for (name, _) in V1_TREES {
        if names.iter().any(|n| n == name.as_bytes()) {
            db.drop_tree(name)?;
        }
    }
    Ok(())
}
