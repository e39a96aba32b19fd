//! Messages as stored: numbered, with a body kept as the exact JSON text it
//! was sent as.

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
