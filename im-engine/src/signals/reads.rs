//! Read receipts, and every participant's read cursor.

use serde::Serialize;

use crate::data::{ConversationId, Seq, Signal, UserId};
use crate::engine::{Actor, Engine, page_limit};
use crate::error::Error;
use crate::store::Store;

/// One participant's read cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadCursor {
    /// The participant.
    pub user: UserId,
    /// Its cursor (0: nothing read).
    pub read_seq: Seq,
}

/// A page of read cursors, by user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadsPage {
    /// The cursors, by user id.
    pub reads: Vec<ReadCursor>,
    /// Whether participants after the last one remain.
    pub has_more: bool,
}

impl<S: Store> Engine<S> {
    /// Every participant's read cursor of `conversation`, by user id, those
    /// after `after`, at most `limit` (default 100, at most
    /// [`Limits::events_page`](crate::Limits::events_page)).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad limit, [`Error::NotFound`],
    /// [`Error::Forbidden`] for a non-participant, [`Error::Store`].
    pub async fn reads(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        after: Option<&UserId>,
        limit: Option<usize>,
    ) -> Result<ReadsPage, Error> {
        let limit = page_limit(limit, 100, self.limits().events_page)?;
        self.require_reader(actor, conversation).await?;
        let mut users = match conversation {
            ConversationId::Direct(a, b) => vec![a.clone(), b.clone()],
            // Only the page is read: a room may have a million members.
            ConversationId::Group(g) | ConversationId::Room(g) => self
                .store()
                .members_after(g, after, limit + 1)
                .await
                .map_err(Error::store)?
                .into_iter()
                .map(|m| m.id)
                .collect(),
        };
        users.sort();
        users.retain(|u| after.is_none_or(|a| u > a));
        let has_more = users.len() > limit;
        users.truncate(limit);
        let mut reads = Vec::with_capacity(users.len());
        for user in users {
            let entry = self
                .store()
                .entry(&user, conversation)
                .await
                .map_err(Error::store)?;
            reads.push(ReadCursor {
                read_seq: entry.map_or(0, |e| e.read_seq),
                user,
            });
        }
        Ok(ReadsPage { reads, has_more })
    }

    /// Tells the other participants' streams that `user` read up to `seq`,
    /// in a direct conversation or a group of at most
    /// [`Config::receipts_max_group`](crate::Config::receipts_max_group)
    /// members. The cursor has moved already: a failure costs the receipt
    /// only, so it is not returned.
    pub(crate) async fn receipt(&self, user: &UserId, conversation: &ConversationId, seq: Seq) {
        let max = self.config().receipts_max_group;
        let Ok(Some(to)) = self.others(conversation, user, max).await else {
            return;
        };
        let signal = Signal::Receipt {
            conversation: conversation.clone(),
            user: user.clone(),
            read_seq: seq,
        };
        let _ = self.publish(to, signal).await;
    }
}
