//! What a caller is shown of a message: the same for everyone but its
//! reactions, which are counted, with whether the viewer reacted (`me`).
//! Answers that hold messages (a history page, the conversation list, an
//! event) are shown through these views, for one viewer.

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::data::{Message, UserId};
use crate::feed::EventData;
use crate::message::HistoryPage;
use crate::unread::ConversationView;

/// One reaction key as a viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionCount<'a> {
    /// The reaction.
    pub key: &'a str,
    /// How many reacted with it.
    pub count: usize,
    /// Whether the viewer did.
    pub me: bool,
}

/// A message as `viewer` sees it: its reactions counted, with `me`.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    message: &'a Message,
    viewer: &'a UserId,
}

impl Message {
    /// The message as `viewer` sees it.
    pub fn view<'a>(&'a self, viewer: &'a UserId) -> MessageView<'a> {
        MessageView {
            message: self,
            viewer,
        }
    }
}

impl Serialize for MessageView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.message;
        let mut out = s.serialize_struct("Message", 10)?;
        out.serialize_field("conversation", &m.conversation)?;
        out.serialize_field("seq", &m.seq)?;
        out.serialize_field("from", &m.from)?;
        out.serialize_field("ts", &m.ts)?;
        out.serialize_field("body", &m.body)?;
        if let Some(id) = &m.client_id {
            out.serialize_field("client_id", id)?;
        }
        if let Some(seq) = m.reply_to {
            out.serialize_field("reply_to", &seq)?;
        }
        if let Some(at) = m.edited_at {
            out.serialize_field("edited_at", &at)?;
        }
        if let Some(at) = m.deleted_at {
            out.serialize_field("deleted_at", &at)?;
        }
        if !m.reactions.is_empty() {
            let counts: Vec<ReactionCount<'_>> = m
                .reactions
                .iter()
                .map(|(key, users)| ReactionCount {
                    key,
                    count: users.len(),
                    me: users.contains(self.viewer),
                })
                .collect();
            out.serialize_field("reactions", &counts)?;
        }
        out.end()
    }
}

/// A history page as `viewer` sees it.
#[derive(Debug, Serialize)]
pub struct HistoryView<'a> {
    messages: Vec<MessageView<'a>>,
    has_more: bool,
}

impl HistoryPage {
    /// The page as `viewer` sees it.
    pub fn view<'a>(&'a self, viewer: &'a UserId) -> HistoryView<'a> {
        HistoryView {
            messages: self.messages.iter().map(|m| m.view(viewer)).collect(),
            has_more: self.has_more,
        }
    }
}

/// A row of the conversation list as `viewer` sees it.
#[derive(Debug, Serialize)]
pub struct ConversationRowView<'a> {
    id: &'a crate::ConversationId,
    kind: &'static str,
    with: &'a str,
    last: Option<MessageView<'a>>,
    unread: u64,
    read_seq: crate::Seq,
}

impl ConversationView {
    /// The row as `viewer` sees it.
    pub fn view<'a>(&'a self, viewer: &'a UserId) -> ConversationRowView<'a> {
        ConversationRowView {
            id: &self.id,
            kind: self.kind,
            with: &self.with,
            last: self.last.as_ref().map(|m| m.view(viewer)),
            unread: self.unread,
            read_seq: self.read_seq,
        }
    }
}

/// An event's data as `viewer` (the stream's user) sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventDataView<'a> {
    data: &'a EventData,
    viewer: &'a UserId,
}

impl EventData {
    /// The data as `viewer` sees it.
    pub fn view<'a>(&'a self, viewer: &'a UserId) -> EventDataView<'a> {
        EventDataView { data: self, viewer }
    }
}

impl Serialize for EventDataView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.data {
            EventData::Message(m) | EventData::Edit(m) => m.view(self.viewer).serialize(s),
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::data::{Body, Message, UserId};

    #[test]
    fn a_viewer_sees_counts_and_whether_it_reacted() {
        let uid = |s: &str| UserId::new(s).unwrap();
        let mut m = Message {
            conversation: "dm:a:b".parse().unwrap(),
            seq: 3,
            from: uid("a"),
            ts: 7,
            body: Some(Body::new(r#"{"t":1}"#, 100).unwrap()),
            client_id: None,
            reply_to: Some(1),
            edited_at: None,
            deleted_at: None,
            reactions: Default::default(),
        };
        m.reactions
            .entry("👍".into())
            .or_default()
            .extend([uid("a"), uid("b")]);
        m.reactions.entry("ok".into()).or_default().insert(uid("a"));
        let json = serde_json::to_value(m.view(&uid("b"))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "conversation": "dm:a:b", "seq": 3, "from": "a", "ts": 7, "body": {"t": 1},
                "reply_to": 1,
                "reactions": [
                    {"key": "ok", "count": 1, "me": false},
                    {"key": "👍", "count": 2, "me": true},
                ],
            })
        );
        m.body = None;
        m.deleted_at = Some(9);
        m.reactions.clear();
        let json = serde_json::to_value(m.view(&uid("b"))).unwrap();
        assert_eq!(json["body"], serde_json::Value::Null);
        assert_eq!(json["deleted_at"], 9);
        assert!(json.get("reactions").is_none());
    }
}
