//! The `data:` of message events, encoded once per message and shared by
//! every event stream that delivers it: a send to a group of 1,000 wakes
//! 1,000 streams, which would otherwise each serialize the same message.
//!
//! Only what every viewer sees alike is shared: a message without
//! reactions (whose view says whether the viewer reacted), never edited
//! nor deleted. The key holds the message's time as well as its seq, so a
//! seq a store reused (Redis after losing writes) is encoded again; each
//! server has its own cache, so two stores never share one.

use bytes::Bytes;
use im_engine::{ConversationId, Message, Seq, Timestamp};

/// Messages kept encoded: those of the last moments of a busy server.
const KEPT: usize = 4096;

/// See the [module docs](self).
pub(crate) struct SharedData(quick_cache::sync::Cache<(ConversationId, Seq, Timestamp), Bytes>);

impl SharedData {
    pub(crate) fn new() -> Self {
        Self(quick_cache::sync::Cache::new(KEPT))
    }

    /// `message`'s `data:` line as every viewer sees it, encoded by
    /// `encode` on first use; `None` when viewers see it differently.
    pub(crate) fn message(
        &self,
        message: &Message,
        encode: impl FnOnce() -> Option<Bytes>,
    ) -> Option<Bytes> {
        let changed = message.edited_at.is_some() || message.deleted_at.is_some();
        if changed || !message.reactions.is_empty() {
            return None;
        }
        let key = (message.conversation.clone(), message.seq, message.ts);
        self.0.get_or_insert_with(&key, || encode().ok_or(())).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use im_engine::{Body, UserId};

    use super::*;

    fn message(seq: Seq, ts: Timestamp) -> Message {
        Message {
            conversation: "dm:a:b".parse().unwrap(),
            seq,
            from: UserId::new("a").unwrap(),
            ts,
            body: Some(Body::new(r#"{"t":1}"#, 100).unwrap()),
            client_id: None,
            reply_to: None,
            edited_at: None,
            deleted_at: None,
            reactions: Default::default(),
        }
    }

    #[test]
    fn a_message_is_encoded_once_for_every_stream() {
        let shared = SharedData::new();
        let calls = Cell::new(0);
        let encode = |text: &'static str| {
            calls.set(calls.get() + 1);
            Some(Bytes::from_static(text.as_bytes()))
        };
        let m = message(1, 7);
        let first = shared.message(&m, || encode("one")).unwrap();
        let second = shared.message(&m, || encode("two")).unwrap();
        assert_eq!(
            (first.as_ref(), second.as_ref(), calls.get()),
            (&b"one"[..], &b"one"[..], 1)
        );
        // The same seq at another time (a seq a store reused) is another
        // message.
        let reused = shared.message(&message(1, 8), || encode("three")).unwrap();
        assert_eq!((reused.as_ref(), calls.get()), (&b"three"[..], 2));
    }

    #[test]
    fn what_viewers_see_differently_is_not_shared() {
        let shared = SharedData::new();
        let mut edited = message(1, 7);
        edited.edited_at = Some(9);
        let mut deleted = message(2, 7);
        deleted.deleted_at = Some(9);
        let mut reacted = message(3, 7);
        reacted
            .reactions
            .entry("+1".into())
            .or_default()
            .insert(UserId::new("b").unwrap());
        for m in [edited, deleted, reacted] {
            assert_eq!(shared.message(&m, || Some(Bytes::new())), None, "{m:?}");
        }
    }
}
