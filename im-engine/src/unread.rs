//! Read cursors, unread counts and the conversation list.
//!
//! Unread needs no counter: each participant has a read cursor `read_seq`,
//! each conversation a `last_seq`, and unread is `last_seq - read_seq`.
//! That is exactly "the messages from others after the cursor" because every
//! send raises its sender's cursor to the message it sent, and a member who
//! joins a group starts with its cursor at the group's `last_seq`.

use std::collections::HashMap;

use serde::Serialize;

use crate::data::{ConversationId, Event, Message, Seq};
use crate::engine::{Actor, Engine, page_limit};
use crate::error::Error;
use crate::page::{self, ListQuery, Page};
use crate::store::{Changes, EntryChange, Store};

/// A read cursor and what is left unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadState {
    /// The cursor.
    pub read_seq: Seq,
    /// Messages from others after it.
    pub unread: u64,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationView {
    /// The conversation.
    pub id: ConversationId,
    /// `"dm"`, `"group"` or `"room"`.
    pub kind: &'static str,
    /// The other user, or the group.
    pub with: String,
    /// The newest message, if any.
    pub last: Option<Message>,
    /// Messages from others after the cursor.
    pub unread: u64,
    /// The caller's cursor.
    pub read_seq: Seq,
}

impl<S: Store> Engine<S> {
    /// Moves the caller's read cursor forward to `seq` (default: the newest
    /// message), never back.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a seq past the newest message,
    /// [`Error::Forbidden`] for a non-participant, [`Error::NotFound`],
    /// [`Error::Store`].
    pub async fn mark_read(
        &self,
        actor: &Actor,
        conversation: &ConversationId,
        seq: Option<Seq>,
    ) -> Result<ReadState, Error> {
        self.require_taking_part(actor, conversation).await?;
        // The entry first: a read cursor never passes `last_seq`, which
        // only grows, so reading it second keeps `last >= current` even
        // while the same user sends concurrently.
        let entry = self
            .store()
            .entry(&actor.user, conversation)
            .await
            .map_err(Error::store)?;
        let current = entry.as_ref().map_or(0, |e| e.read_seq);
        let last = self
            .store()
            .last_seq(conversation)
            .await
            .map_err(Error::store)?;
        let seq = seq.unwrap_or(last);
        if seq > last {
            return Err(Error::Invalid(format!(
                "seq {seq} is past the newest message ({last})"
            )));
        }

        if entry.is_none() || seq <= current {
            return Ok(ReadState {
                read_seq: current,
                unread: last.saturating_sub(current),
            });
        }
        let user = actor.user.clone();
        let changes = Changes {
            entries: vec![(
                user.clone(),
                EntryChange::Read {
                    conversation: conversation.clone(),
                    seq,
                },
            )],
            events: vec![(
                user,
                self.now(),
                Event::Read {
                    conversation: conversation.clone(),
                    seq,
                },
            )],
            trim: self.feed_trim(),
            ..Changes::default()
        };
        self.commit(&changes).await?;
        self.receipt(&actor.user, conversation, seq).await;
        Ok(ReadState {
            read_seq: seq,
            unread: last - seq,
        })
    }

    /// The first `limit` of the caller's conversations (see
    /// [`Engine::conversation_page`]).
    ///
    /// # Errors
    ///
    /// As [`Engine::conversation_page`].
    pub async fn conversations(
        &self,
        actor: &Actor,
        limit: Option<usize>,
    ) -> Result<Vec<ConversationView>, Error> {
        let query = ListQuery { after: None, limit };
        Ok(self.conversation_page(actor, &query).await?.items)
    }

    /// A page of the caller's conversations, most recent activity first
    /// (ties by id), each with its newest message and unread count. The
    /// store keeps no index in that order, so every entry is read and
    /// sorted; only the page's messages are read.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a bad cursor or limit, [`Error::NotFound`]
    /// when the caller does not exist, [`Error::Store`].
    pub async fn conversation_page(
        &self,
        actor: &Actor,
        query: &ListQuery,
    ) -> Result<Page<ConversationView>, Error> {
        let limit = page_limit(query.limit, 50, self.limits().page)?;
        let after = page::entry_cursor(query.after.as_deref())?;
        self.require_user(&actor.user).await?;
        let mut entries = self
            .store()
            .entries(&actor.user)
            .await
            .map_err(Error::store)?;
        // A room's entry is written at the join and when its member reads,
        // never by others' messages: its activity is the room's newest
        // message, read now (`Limits::rooms_per_user` bounds these reads).
        let mut heads = HashMap::new();
        for e in &mut entries {
            if let ConversationId::Room(_) = e.conversation {
                let head = self.head(&e.conversation).await?;
                if let Some(m) = &head.1 {
                    e.activity = e.activity.max(m.ts);
                }
                heads.insert(e.conversation.clone(), head);
            }
        }
        if let Some((at, id)) = &after {
            entries.retain(|e| page::entry_order((*at, id), (e.activity, &e.conversation)).is_lt());
        }
        entries.sort_by(|a, b| {
            page::entry_order((a.activity, &a.conversation), (b.activity, &b.conversation))
        });
        entries.truncate(limit + 1);
        let page = Page::cut(entries, limit, page::entry_key);
        let mut items = Vec::with_capacity(page.items.len());
        for e in page.items {
            let (last_seq, last) = match heads.remove(&e.conversation) {
                Some(head) => head,
                None => self.head(&e.conversation).await?,
            };
            items.push(ConversationView {
                kind: e.conversation.kind(),
                with: e.conversation.with(&actor.user).to_owned(),
                unread: last_seq.saturating_sub(e.read_seq),
                read_seq: e.read_seq,
                last,
                id: e.conversation,
            });
        }
        Ok(Page {
            items,
            has_more: page.has_more,
            next: page.next,
        })
    }

    /// A conversation's `last_seq` and newest message.
    async fn head(&self, c: &ConversationId) -> Result<(Seq, Option<Message>), Error> {
        let last_seq = self.store().last_seq(c).await.map_err(Error::store)?;
        let last = if last_seq == 0 {
            None
        } else {
            self.store()
                .messages(c, last_seq, last_seq)
                .await
                .map_err(Error::store)?
                .pop()
        };
        Ok((last_seq, last))
    }
}
