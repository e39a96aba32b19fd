//! Moderation and the people around a user: join requests, blocks, bans,
//! suspension, erasure and handing a group to another owner.
//!
//! Each kind of mark is a [`Marks`](crate::store::Marks) set the store
//! keeps; the rules of who may set which are in [`policy`](crate::policy).

mod bans;
mod blocks;
mod erase;
mod requests;
mod suspension;

use serde::Serialize;

use crate::data::{Timestamp, UserId};
use crate::engine::Engine;
use crate::error::Error;
use crate::store::{Changes, Mark, MarkChange, Marks, Store};

pub(crate) use bans::banned;
pub(crate) use blocks::blocked;
pub use requests::Joined;
pub(crate) use suspension::Suspensions;

/// A marked user as answered in a list of blocks or bans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marked {
    /// Who.
    pub id: UserId,
    /// Since when.
    pub since: Timestamp,
}

/// A pending request to join a group, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinRequest {
    /// Who asks.
    pub user: UserId,
    /// Since when.
    pub since: Timestamp,
}

impl From<Mark> for Marked {
    fn from(m: Mark) -> Self {
        Self {
            id: m.user,
            since: m.since,
        }
    }
}

impl From<Mark> for JoinRequest {
    fn from(m: Mark) -> Self {
        Self {
            user: m.user,
            since: m.since,
        }
    }
}

impl<S: Store> Engine<S> {
    /// Whether `user` is in `set`.
    pub(crate) async fn is_marked(&self, set: &Marks, user: &UserId) -> Result<bool, Error> {
        let mark = self.store().mark(set, user).await.map_err(Error::store)?;
        Ok(mark.is_some())
    }

    pub(crate) async fn change_marks(&self, marks: Vec<(Marks, MarkChange)>) -> Result<(), Error> {
        let changes = Changes {
            marks,
            ..Changes::default()
        };
        self.commit(&changes).await
    }
}
