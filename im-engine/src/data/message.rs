//! Messages as stored: numbered, with a body kept as the exact JSON text it
//! was sent as.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Timestamp;
use super::id::{ConversationId, UserId};
use crate::error::Error;

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

/// Who reacted to a message with which key: key → users, at most
/// [`MAX_REACTION_KEYS`] keys by default.
pub type Reactions = BTreeMap<String, BTreeSet<UserId>>;

/// The most distinct reaction keys a message takes (the default limit).
pub const MAX_REACTION_KEYS: usize = 20;

/// The longest reaction key, in characters.
pub const MAX_REACTION_KEY: usize = 32;

/// A stored message, as it now is: edited, deleted or reacted to.
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
    /// The body; `None` once deleted.
    pub body: Option<Body>,
    /// The sender's idempotency key, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The message of the same conversation it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// When its body was last replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// When it was deleted (its body erased).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Its reactions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: Reactions,
}

impl Message {
    /// Whether it was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
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
    /// The message it answers, if any.
    pub reply_to: Option<Seq>,
}

impl NewMessage {
    /// The stored message, numbered `seq`.
    pub fn numbered(&self, seq: Seq) -> Message {
        Message {
            conversation: self.conversation.clone(),
            seq,
            from: self.from.clone(),
            ts: self.ts,
            body: Some(self.body.clone()),
            client_id: self.client_id.clone(),
            reply_to: self.reply_to,
            edited_at: None,
            deleted_at: None,
            reactions: Reactions::new(),
        }
    }
}
