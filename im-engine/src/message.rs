//! Messages: the send path, history pages and single-message lookup.
//!
//! A conversation's log is numbered 1, 2, 3 … with no gaps, by the store in
//! commit order, so a history page is a range of seqs computed from
//! `last_seq` alone.

use serde::Serialize;

use crate::data::{Body, ConversationId, Event, MAX_CLIENT_ID, Message, NewMessage, Seq, UserId};
use crate::engine::{Actor, Engine, page_limit};
use crate::error::Error;
use crate::hooks::Committed;
use crate::policy::{self, Action};
use crate::store::{self, Sent, Store};

/// What a caller asks to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SendRequest {
    /// The body.
    pub body: Body,
    /// An idempotency key: a repeat answers the original message.
    pub client_id: Option<String>,
    /// Send as this user (admins only).
    pub from: Option<UserId>,
    /// The message of the same conversation this one answers.
    pub reply_to: Option<Seq>,
}

impl SendRequest {
    /// A request with just a body.
    pub fn new(body: Body) -> Self {
        Self {
            body,
            client_id: None,
            from: None,
            reply_to: None,
        }
    }
}

/// Which page of history to read. `before` and `after` are exclusive; with
/// neither, the newest page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HistoryQuery {
    /// Messages older than this seq.
    pub before: Option<Seq>,
    /// Messages newer than this seq.
    pub after: Option<Seq>,
    /// Page size (default 50, at most the page limit).
    pub limit: Option<usize>,
}

/// A page of history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    /// The messages.
    pub messages: Vec<Message>,
    /// Whether there are more in the direction read.
    pub has_more: bool,
}

impl<S: Store> Engine<S> {
    /// Sends a message. Answers it, and whether it is new (`false`: a repeat
    /// of an earlier `client_id`, answered with the original).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad `client_id`, [`Error::TooLarge`] for a
    /// body over the limit (also one a hook put in), [`Error::Forbidden`]
    /// for a non-participant or a non-admin `from`, [`Error::NotFound`],
    /// [`Error::Refused`] when the before-send hook refuses it,
    /// [`Error::Store`].
    pub async fn send(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        req: SendRequest,
    ) -> Result<(Message, bool), Error> {
        if let Some(id) = &req.client_id
            && (id.is_empty() || id.chars().count() > MAX_CLIENT_ID)
        {
            return Err(Error::Invalid(format!(
                "client_id is 1 to {MAX_CLIENT_ID} characters"
            )));
        }
        self.check_body(&req.body)?;
        let from = req.from.unwrap_or_else(|| actor.user.clone());
        policy::check(actor, Action::SendAs { from: &from })?;
        self.require_user(&from).await?;
        let recipients = self.recipients(conversation).await?;
        // A direct conversation's two take part in it; a group's sender is
        // checked by the store at the commit.
        if let store::Recipients::Users(users) = &recipients {
            let take = Action::Take {
                conversation,
                participant: users.contains(&from),
            };
            policy::check(actor, take)?;
        }
        if let Some(reply_to) = req.reply_to {
            let last = self
                .store()
                .last_seq(conversation)
                .await
                .map_err(Error::store)?;
            // Seqs only grow: one at most `last` now stays a message.
            if !(1..=last).contains(&reply_to) {
                return Err(Error::InvalidReply(format!(
                    "reply_to must be a seq of {conversation} (1 to {last})"
                )));
            }
        }
        let message = NewMessage {
            conversation: conversation.clone(),
            from,
            ts: self.now(),
            body: req.body,
            client_id: req.client_id,
            reply_to: req.reply_to,
        };
        let send = store::Outgoing {
            message: self.before_send(message).await?,
            recipients,
            trim: self.feed_trim(),
        };
        let sent = self.store().send(&send).await.map_err(Error::store)?;
        match sent {
            Sent::New(m) => {
                // Reported first: the hooks hear of every committed message,
                // even when a room's steps below fail.
                if self.reporting() {
                    self.report([Committed {
                        user: None,
                        ts: m.ts,
                        event: Event::Message {
                            conversation: m.conversation.clone(),
                            seq: m.seq,
                        },
                        message: Some(m.clone()),
                    }]);
                }
                if let ConversationId::Room(_) = conversation {
                    let event = Event::Message {
                        conversation: m.conversation.clone(),
                        seq: m.seq,
                    };
                    self.publish_room_event(event, Some(&m)).await;
                    self.room_sent(&m.from, conversation, m.seq).await?;
                }
                Ok((m, true))
            }
            Sent::Duplicate(m) => Ok((m, false)),
            // Rule 5, decided by the store at the commit.
            Sent::NotMember => Err(policy::forbidden(Action::Take {
                conversation,
                participant: false,
            })),
            // Rule 6, decided by the store at the commit.
            Sent::Blocked => Err(crate::moderation::blocked(conversation)),
        }
    }

    /// Who a message of `conversation` (or a change to one) goes to, after
    /// checking that the conversation exists. A group's members are read by
    /// the store in the step that commits, so that a concurrent join or
    /// leave is wholly before or wholly after it.
    pub(crate) async fn recipients(
        &self,
        conversation: &ConversationId,
    ) -> Result<store::Recipients, Error> {
        Ok(match conversation {
            ConversationId::Direct(a, b) => {
                self.require_user(a).await?;
                self.require_user(b).await?;
                store::Recipients::Users(vec![a.clone(), b.clone()])
            }
            ConversationId::Group(g) => {
                self.require_group(g).await?;
                store::Recipients::Members(g.clone())
            }
            ConversationId::Room(r) => {
                self.require_space(crate::GroupKind::Room, r).await?;
                store::Recipients::Room(r.clone())
            }
        })
    }

    /// A page of a conversation's history; for participants and admins.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad query, [`Error::Forbidden`],
    /// [`Error::NotFound`], [`Error::Store`].
    pub async fn history(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        q: HistoryQuery,
    ) -> Result<HistoryPage, Error> {
        let limit = page_limit(q.limit, 50, self.limits().page)? as u64;
        self.require_reader(actor, conversation).await?;
        let last = self
            .store()
            .last_seq(conversation)
            .await
            .map_err(Error::store)?;
        let (from, to, has_more) = match (q.before, q.after) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid("give before or after, not both".into()));
            }
            (None, Some(after)) => {
                let to = after.saturating_add(limit).min(last);
                (after.saturating_add(1), to, to < last)
            }
            (before, None) => {
                let end = before.map_or(last, |b| b.saturating_sub(1).min(last));
                let from = end.saturating_sub(limit - 1).max(1);
                (from, end, from > 1)
            }
        };
        let messages = if from <= to {
            self.store()
                .messages(conversation, from, to)
                .await
                .map_err(Error::store)?
        } else {
            Vec::new()
        };
        Ok(HistoryPage { messages, has_more })
    }

    /// One message; for participants and admins.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Forbidden`], [`Error::Store`].
    pub async fn message(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Seq,
    ) -> Result<Message, Error> {
        self.require_reader(actor, conversation).await?;
        self.store()
            .messages(conversation, seq, seq)
            .await
            .map_err(Error::store)?
            .pop()
            .filter(|m| m.seq == seq)
            .ok_or_else(|| Error::NotFound(format!("message {seq} of {conversation}")))
    }
}
