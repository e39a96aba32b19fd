//! [`Batch`]: the writes of one combined batch, readable before they land,
//! and undone write by write.
//!
//! The writer thread runs many writes against one batch (see `combine`);
//! each must read what the ones before it wrote, and one that fails must
//! leave no trace while the others land. So every change a write makes is
//! recorded with what the key held before it, and [`Batch::undo`] puts those
//! back; what it did to feeds is kept as drafts (`feed`), undone alike,
//! and written as keys when the batch is applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use im_engine::UserId;

use sled::IVec;

use crate::codec::{ConvState, Entry};
use crate::error::Result;
use crate::feed::{self, Drafts};
use crate::keys::{self, kind};
use crate::wal::{Log, Writes};

/// The writes of one batch; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) tree: &'a sled::Tree,
    writes: BTreeMap<Vec<u8>, Option<IVec>>,
    /// Each change of the write running now, with what the key held in
    /// `writes` before it (`None`: nothing).
    undo: Vec<(Vec<u8>, Option<Option<IVec>>)>,
    /// Whether the write running now is the batch's first: undoing it
    /// empties the batch, so nothing is recorded for it (a lone write, a
    /// send to a huge group, pays nothing for being undoable).
    first: bool,
    /// What this batch does to each feed it touches (`feed`).
    pub(crate) feeds: Drafts,
    /// The members of groups, read once per batch (`write::member_ids`)
    /// until a write changes a member key.
    pub(crate) members: HashMap<Vec<u8>, Vec<UserId>>,
    /// The firehose's head once this batch lands, when read.
    pub(crate) fire_head: Option<u64>,
    fire_head_before: Option<u64>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            writes: BTreeMap::new(),
            undo: Vec::new(),
            first: true,
            feeds: Drafts::default(),
            members: HashMap::new(),
            fire_head: None,
            fire_head_before: None,
        }
    }

    /// Starts a write: [`Batch::undo`] drops what it changes from here on.
    pub(crate) fn begin(&mut self) {
        self.first = self.writes.is_empty() && self.feeds.is_empty();
        self.undo.clear();
        self.feeds.begin();
        self.fire_head_before = self.fire_head;
    }

    /// Drops every change since [`Batch::begin`].
    pub(crate) fn undo(&mut self) {
        if self.first {
            self.writes.clear();
            self.feeds = Drafts::default();
            self.members.clear();
            self.fire_head = None;
            return;
        }
        for (key, before) in self.undo.drain(..).rev() {
            match before {
                Some(v) => self.writes.insert(key, v),
                None => self.writes.remove(&key),
            };
        }
        self.feeds.undo();
        self.members.clear();
        self.fire_head = self.fire_head_before;
    }

    /// The value of `key` once this batch lands.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<IVec>> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(key)?),
        }
    }

    /// The keys starting with `prefix` once this batch lands, in order.
    pub(crate) fn keys(&self, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>> {
        let mut keys = self
            .tree
            .scan_prefix(prefix)
            .keys()
            .map(|k| Ok(k?.to_vec()))
            .collect::<Result<BTreeSet<_>>>()?;
        let written = self.writes.range(prefix.to_vec()..);
        for (k, v) in written.take_while(|(k, _)| k.starts_with(prefix)) {
            match v {
                Some(_) => keys.insert(k.clone()),
                None => keys.remove(k),
            };
        }
        Ok(keys)
    }

    fn set(&mut self, key: Vec<u8>, value: Option<IVec>) {
        if key.first() == Some(&kind::GROUPUSER_MEMBER) {
            self.members.clear();
        }
        if self.first {
            self.writes.insert(key, value);
        } else {
            let before = self.writes.insert(key.clone(), value);
            self.undo.push((key, before));
        }
    }

    pub(crate) fn insert(&mut self, key: Vec<u8>, value: impl Into<IVec>) {
        self.set(key, Some(value.into()));
    }

    pub(crate) fn remove(&mut self, key: Vec<u8>) {
        self.set(key, None);
    }

    /// Applies the writes as one sled batch, and logs them.
    pub(crate) fn apply(mut self, log: &Log) -> Result<()> {
        feed::land(&mut self)?;
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes: Writes = self.writes.into_iter().collect();
        log.commit(&[(self.tree, &writes)])
    }

    pub(crate) fn state(&self, conv: &[u8]) -> Result<ConvState> {
        match self.get(&keys::conv_state(conv))? {
            Some(v) => ConvState::decode(&v),
            None => Ok(ConvState::default()),
        }
    }

    pub(crate) fn put_state(&mut self, conv: &[u8], state: ConvState) {
        let key = keys::conv_state(conv);
        if state == ConvState::default() {
            self.remove(key);
        } else {
            self.insert(key, state.encode().to_vec());
        }
    }

    pub(crate) fn entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.get(key)?.map(|v| Entry::decode(&v)).transpose()
    }

    pub(crate) fn put_entry(&mut self, key: Vec<u8>, entry: Entry) {
        self.insert(key, entry.encode().to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_undone_leaves_the_ones_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"ka", &b"0"[..]).unwrap();
        tree.insert(b"kb", &b"0"[..]).unwrap();
        let mut p = Batch::new(&tree);
        // The first write undone leaves an empty batch.
        p.begin();
        p.insert(b"kz".to_vec(), &b"1"[..]);
        p.fire_head = Some(2);
        p.undo();
        assert_eq!((p.writes.len(), p.fire_head), (0, None));
        p.begin();
        p.insert(b"ka".to_vec(), &b"1"[..]);
        p.fire_head = Some(3);
        p.begin();
        p.insert(b"ka".to_vec(), &b"2"[..]);
        p.remove(b"kb".to_vec());
        p.insert(b"kc".to_vec(), &b"2"[..]);
        p.fire_head = Some(4);
        assert_eq!(p.keys(b"k").unwrap().len(), 2);
        p.undo();
        assert_eq!(p.get(b"ka").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(p.get(b"kb").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(p.get(b"kc").unwrap(), None);
        assert_eq!(p.fire_head, Some(3));
        let keys: Vec<_> = p.keys(b"k").unwrap().into_iter().collect();
        assert_eq!(keys, [b"ka".to_vec(), b"kb".to_vec()]);
    }
}
