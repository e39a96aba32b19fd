//! Messages: the send path, history pages and single-message lookup.
//!
//! A conversation's log is numbered 1, 2, 3 … with no gaps, by the store in
//! commit order, so a history page is a range of seqs computed from
//! `last_seq` alone.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::engine::{Actor, Engine, not_participant, page_limit};
use crate::id::{ConversationId, UserId};
use crate::store::{self, Sent, Store};
use crate::{Error, Timestamp};

/// A message's number in its conversation, from 1.
pub type Seq = u64;

/// The longest `client_id`, in characters.
pub const MAX_CLIENT_ID: usize = 64;

/// A message body: a JSON object, kept as the exact text it was sent as.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Body(Box<RawValue>);

impl Body {
    /// Parses `json`, which must be a JSON object of at most `max_bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] over the limit (checked before parsing),
    /// [`Error::Invalid`] when it is not a JSON object.
    pub fn new(json: &str, max_bytes: usize) -> Result<Self, Error> {
        if json.len() > max_bytes {
            return Err(Error::TooLarge(format!(
                "a message body is at most {max_bytes} bytes"
            )));
        }
        let raw: Box<RawValue> = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("body is not JSON: {e}")))?;
        Self::from_raw(raw, max_bytes)
    }

    /// Checks an already parsed body (for callers that parsed the whole
    /// request).
    ///
    /// # Errors
    ///
    /// As [`Body::new`].
    pub fn from_raw(raw: Box<RawValue>, max_bytes: usize) -> Result<Self, Error> {
        if raw.get().len() > max_bytes {
            return Err(Error::TooLarge(format!(
                "a message body is at most {max_bytes} bytes"
            )));
        }
        if !raw.get().starts_with('{') {
            return Err(Error::Invalid("body must be a JSON object".into()));
        }
        Ok(Self(raw))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

/// Arbitrary bodies for the fuzz targets: small JSON objects of numbers and
/// strings.
#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Body {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let fields: std::collections::BTreeMap<String, Result<i64, String>> = u.arbitrary()?;
        let object: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k, v.map_or_else(Into::into, Into::into)))
            .collect();
        let json = serde_json::Value::Object(object).to_string();
        Self::new(&json, usize::MAX).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its conversation.
    pub conversation: ConversationId,
    /// Its number there.
    pub seq: Seq,
    /// The sender.
    pub from: UserId,
    /// When the server accepted it.
    pub ts: Timestamp,
    /// The body.
    pub body: Body,
    /// The sender's idempotency key, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A message before the store numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its conversation.
    pub conversation: ConversationId,
    /// The sender.
    pub from: UserId,
    /// When the server accepted it.
    pub ts: Timestamp,
    /// The body.
    pub body: Body,
    /// The sender's idempotency key, if any.
    pub client_id: Option<String>,
}

impl NewMessage {
    /// The stored message, numbered `seq`.
    pub fn numbered(&self, seq: Seq) -> Message {
        Message {
            conversation: self.conversation.clone(),
            seq,
            from: self.from.clone(),
            ts: self.ts,
            body: self.body.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

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
}

impl SendRequest {
    /// A request with just a body.
    pub fn new(body: Body) -> Self {
        Self {
            body,
            client_id: None,
            from: None,
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
    /// [`Error::Invalid`] for a bad `client_id`, [`Error::Forbidden`] for a
    /// non-participant or a non-admin `from`, [`Error::NotFound`],
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
        if req.body.get().len() > self.limits().body_bytes {
            return Err(Error::TooLarge(format!(
                "a message body is at most {} bytes",
                self.limits().body_bytes
            )));
        }
        let from = match req.from {
            Some(from) if from != actor.user && !actor.admin => {
                return Err(Error::Forbidden(
                    "only an admin may send as another user".into(),
                ));
            }
            Some(from) => from,
            None => actor.user.clone(),
        };
        self.require_user(&from).await?;
        // A group's members are read by the store in the step that commits
        // the message, so a concurrent join or leave is wholly before or
        // wholly after it.
        let recipients = match conversation {
            ConversationId::Direct(a, b) => {
                self.require_user(a).await?;
                self.require_user(b).await?;
                if from != *a && from != *b {
                    return Err(not_participant(conversation));
                }
                store::Recipients::Users(vec![a.clone(), b.clone()])
            }
            ConversationId::Group(g) => {
                self.require_group(g).await?;
                store::Recipients::Members(g.clone())
            }
        };
        let send = store::Outgoing {
            message: NewMessage {
                conversation: conversation.clone(),
                from,
                ts: self.now(),
                body: req.body,
                client_id: req.client_id,
            },
            recipients,
            trim: self.feed_trim(),
        };
        let sent = self.store().send(&send).await.map_err(Error::store)?;
        match sent {
            Sent::New(m) => Ok((m, true)),
            Sent::Duplicate(m) => Ok((m, false)),
            Sent::NotMember => Err(not_participant(conversation)),
        }
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
