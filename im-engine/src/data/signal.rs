//! Signals: what goes only to the event streams open at that moment.
//!
//! A signal is never stored, never replayed and carries no cursor: typing,
//! presence changes and read receipts. It travels addressed to the users
//! whose streams get it ([`Addressed`]), through the process's
//! [`SignalBus`](crate::store::SignalBus) and, between nodes, the store's
//! pub/sub.

use serde::{Deserialize, Serialize};

use super::{ConversationId, Seq, Timestamp, UserId};

/// One signal, as a stream's `event:` name and `data:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum Signal {
    /// `user` is typing in `conversation`, or stopped.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Who.
        user: UserId,
        /// Whether it types (a `true` holds for [`TYPING_HOLD`](crate::TYPING_HOLD)).
        typing: bool,
    },
    /// `user`'s first stream opened, or its last one closed.
    Presence {
        /// Who.
        user: UserId,
        /// Whether it is online now.
        online: bool,
        /// When its last stream closed.
        last_seen: Option<Timestamp>,
    },
    /// `user`'s read cursor in `conversation` moved to `read_seq`.
    Receipt {
        /// Where.
        conversation: ConversationId,
        /// Who.
        user: UserId,
        /// The new cursor.
        read_seq: Seq,
    },
}

impl Signal {
    /// The stream's `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Typing { .. } => "typing",
            Self::Presence { .. } => "presence",
            Self::Receipt { .. } => "receipt",
        }
    }

    /// The stream's `data:` line: one line of JSON.
    pub fn data_json(&self) -> String {
        let data = match self {
            Self::Typing {
                conversation,
                user,
                typing,
            } => serde_json::json!({"conversation": conversation, "user": user, "typing": typing}),
            Self::Presence {
                user,
                online,
                last_seen,
            } => serde_json::json!({"user": user, "online": online, "last_seen": last_seen}),
            Self::Receipt {
                conversation,
                user,
                read_seq,
            } => {
                serde_json::json!({"conversation": conversation, "user": user, "read_seq": read_seq})
            }
        };
        data.to_string()
    }
}

/// A signal and the users whose open streams get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressed {
    /// Who gets it.
    pub to: Vec<UserId>,
    /// What.
    pub signal: Signal,
}
