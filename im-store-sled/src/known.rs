//! What the writer remembers between writes, so that a send to a large
//! group reads next to nothing: the bounds of the feeds it appended to,
//! and who holds an index entry of the large conversations it wrote.
//!
//! Both are right only because every write goes through the writer, under
//! its lock (sled locks the directory to one process): whatever changes a
//! feed or an entry updates them in the same step. They are forgotten
//! whenever a write fails (what it changed in memory may not have landed)
//! and whenever they grow past a budget; what is forgotten is read from
//! disk again when next needed.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};

use im_engine::UserId;

use crate::codec::Bounds;
use crate::error::Result;
use crate::feed;

/// Feeds whose bounds are kept at most.
const MAX_FEEDS: usize = 1 << 18;
/// Entry holders kept at most, over every conversation.
const MAX_HOLDERS: usize = 1 << 18;
/// Conversations with fewer holders than this are not worth remembering:
/// reading their entries costs a few reads. The unit tests (the
/// conformance suite, the comparison with `MemoryStore`) remember every
/// conversation, so that they check this path on small ones too.
pub(crate) const MIN_REMEMBERED_HOLDERS: usize = if cfg!(test) { 1 } else { 64 };

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Known {
    heads: HashMap<UserId, Bounds>,
    /// By conversation (key bytes): every user that holds an entry of it.
    holders: HashMap<Vec<u8>, HashSet<UserId>>,
    /// The number of users in `holders`, summed over conversations.
    holders_len: usize,
}

impl Known {
    /// Forgets everything.
    pub(crate) fn forget(&mut self) {
        *self = Self::default();
    }

    /// Forgets what grew past its budget.
    pub(crate) fn keep_to_budget(&mut self) {
        if self.heads.len() > MAX_FEEDS {
            self.heads.clear();
        }
        if self.holders_len > MAX_HOLDERS {
            self.holders.clear();
            self.holders_len = 0;
        }
    }

    /// The bounds of `user`'s feed, read from its keys when not known.
    pub(crate) fn bounds(&mut self, tree: &sled::Tree, user: &UserId) -> Result<&mut Bounds> {
        Ok(match self.heads.entry(user.clone()) {
            Slot::Occupied(e) => e.into_mut(),
            Slot::Vacant(e) => e.insert(feed::bounds(tree, user)?),
        })
    }

    /// Every holder of an entry of `conv`, when known.
    pub(crate) fn holders(&self, conv: &[u8]) -> Option<&HashSet<UserId>> {
        self.holders.get(conv)
    }

    /// Remembers that `holders` are every holder of an entry of `conv`.
    pub(crate) fn remember_holders(&mut self, conv: &[u8], holders: HashSet<UserId>) {
        self.holders_len += holders.len();
        if let Some(old) = self.holders.insert(conv.to_vec(), holders) {
            self.holders_len -= old.len();
        }
    }

    /// `user` now holds an entry of `conv`.
    pub(crate) fn holder_added(&mut self, conv: &[u8], user: &UserId) {
        if let Some(set) = self.holders.get_mut(conv)
            && set.insert(user.clone())
        {
            self.holders_len += 1;
        }
    }

    /// `user` no longer holds an entry of `conv`.
    pub(crate) fn holder_removed(&mut self, conv: &[u8], user: &UserId) {
        if let Some(set) = self.holders.get_mut(conv)
            && set.remove(user)
        {
            self.holders_len -= 1;
        }
    }

    /// Forgets the holders of `conv` (they disagree with what is stored).
    pub(crate) fn forget_holders(&mut self, conv: &[u8]) {
        if let Some(old) = self.holders.remove(conv) {
            self.holders_len -= old.len();
        }
    }
}
