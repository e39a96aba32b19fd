//! Blocks: a user's own list of users it hears nothing from.

use super::Marked;
use super::bans::newest_first;
use crate::data::UserId;
use crate::engine::{Actor, Engine};
use crate::error::Error;
use crate::store::{Mark, MarkChange, Marks, Store};

impl<S: Store> Engine<S> {
    /// Blocks `id` (policy rule 6): from this commit on, no direct message
    /// between the two commits, `id`'s contact add tells the caller
    /// nothing, and `id` gets none of the caller's presence. Groups are not
    /// affected. Blocking again keeps the first `since`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for the caller itself, [`Error::NotFound`] when
    /// either user does not exist, [`Error::Store`].
    pub async fn block(&self, actor: &Actor, id: &UserId) -> Result<(), Error> {
        not_itself(actor, id)?;
        self.require_user(&actor.user).await?;
        self.require_user(id).await?;
        let set = Marks::Blocks(actor.user.clone());
        let since = match self.store().mark(&set, id).await.map_err(Error::store)? {
            Some(first) => first.since,
            None => self.now(),
        };
        // Written again when already there, with its first `since`: on a
        // Redis Cluster a block's commit spans several slots, and one that
        // stopped between them (a node lost) is repaired by blocking again.
        let mark = Mark {
            user: id.clone(),
            since,
        };
        self.change_marks(vec![(set, MarkChange::Put(mark))]).await
    }

    /// Lifts the caller's block of `id`, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for the caller itself, [`Error::NotFound`] when
    /// either user does not exist, [`Error::Store`].
    pub async fn unblock(&self, actor: &Actor, id: &UserId) -> Result<(), Error> {
        not_itself(actor, id)?;
        self.require_user(&actor.user).await?;
        self.require_user(id).await?;
        let set = Marks::Blocks(actor.user.clone());
        self.change_marks(vec![(set, MarkChange::Remove(id.clone()))])
            .await
    }

    /// The caller's blocks, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the caller does not exist, [`Error::Store`].
    pub async fn blocks(&self, actor: &Actor) -> Result<Vec<Marked>, Error> {
        self.require_user(&actor.user).await?;
        let marks = self
            .store()
            .marks(&Marks::Blocks(actor.user.clone()))
            .await
            .map_err(Error::store)?;
        Ok(newest_first(marks))
    }
}

fn not_itself(actor: &Actor, id: &UserId) -> Result<(), Error> {
    if actor.user == *id {
        return Err(Error::Invalid("a user cannot block itself".into()));
    }
    Ok(())
}

/// The refusal of a direct message between two users one of whom blocks
/// the other.
pub(crate) fn blocked(conversation: &crate::data::ConversationId) -> Error {
    Error::Blocked(format!(
        "no message in {conversation} while one of its users blocks the other"
    ))
}
