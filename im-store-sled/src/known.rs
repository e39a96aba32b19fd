//! What the writer remembers between writes, so that an append reads
//! nothing: the bounds of the feeds it appended to.
//!
//! They are right only because every write goes through the writer, under
//! its lock (sled locks the directory to one process): whatever changes a
//! feed updates them in the same step. They are forgotten whenever a write
//! fails (what it changed in memory may not have landed) and whenever they
//! grow past a budget; what is forgotten is read from disk again when next
//! needed.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;

use im_engine::UserId;

use crate::codec::Bounds;
use crate::error::Result;
use crate::feed;

/// Feeds whose bounds are kept at most.
const MAX_FEEDS: usize = 1 << 18;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Known {
    heads: HashMap<UserId, Bounds>,
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
    }

    /// The bounds of `user`'s feed, read from its keys when not known.
    pub(crate) fn bounds(&mut self, tree: &sled::Tree, user: &UserId) -> Result<&mut Bounds> {
        Ok(match self.heads.entry(user.clone()) {
            Slot::Occupied(e) => e.into_mut(),
            Slot::Vacant(e) => e.insert(feed::bounds(tree, user)?),
        })
    }
}
