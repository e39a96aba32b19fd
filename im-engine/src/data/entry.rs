//! A user's entry in its conversation index.

use serde::{Deserialize, Serialize};

use super::Timestamp;
use super::id::ConversationId;
use super::message::Seq;

/// A user's entry for one conversation: its read cursor and the time of the
/// conversation's last activity, which orders the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvEntry {
    /// The conversation.
    pub conversation: ConversationId,
    /// The user's read cursor.
    pub read_seq: Seq,
    /// The last message's time, or when the user joined.
    pub activity: Timestamp,
}

impl ConvEntry {
    pub(crate) fn joined(conversation: ConversationId, read_seq: Seq, at: Timestamp) -> Self {
        Self {
            conversation,
            read_seq,
            activity: at,
        }
    }
}
