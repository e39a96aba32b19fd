//! Export and import: a whole store as JSON Lines, and back into an empty
//! store of any kind.
//!
//! An export is one [`Record`] per line. The first line names the format
//! and its version ([`Record::Format`]); then come users (with when they
//! were last seen), groups, members, contacts, every conversation's
//! messages (oldest first, with their edited or deleted state, reply and
//! reactions), every user's conversation index entries (read cursor and
//! activity), and the marks: join requests, bans, blocks and suspensions. Unread counts follow from entries and messages. The last
//! line ([`Record::End`]) counts the records between, so that an import
//! refuses an export cut short.
//!
//! Event feeds are not exported: an import starts every feed empty, in a
//! store with a new epoch, so a client that resumes its event stream with a
//! cursor from before gets `event: reset` (`unknown`) and refetches its
//! conversation list and histories, as after any wipe.
//!
//! Each store says how its export is consistent ([`Store::export`]);
//! [`Importer`] loads records through the [`Store`] writes every store has,
//! so it needs nothing of the target store but that it is empty.

use std::pin::Pin;

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::data::{
    Body, Contact, ConvEntry, ConversationId, Group, GroupId, Member, Message, NewMessage, Seq,
    Timestamp, User, UserId,
};
use crate::store::{
    Changes, ContactChange, EntryChange, FeedTrim, Mark, MarkChange, Marks, MemberChange,
    MessageChange, MessageUpdate, MessageUpdated, Outgoing, Recipients, Sent, Store, StoreError,
};

/// The `format` of the first line of an export.
pub const EXPORT_FORMAT: &str = "im-export";
/// The version of the export format this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// Records kept before [`Importer`] commits them as one change set.
const BATCH: usize = 500;

/// One line of an export: an object whose one key names the kind of
/// record (`{"message": {…}}`). Externally tagged, because serde reads a
/// message's body (raw JSON) only straight from the input, never from the
/// buffer that an internal tag needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// The first line: which format, which version.
    Format {
        /// Always [`EXPORT_FORMAT`].
        format: String,
        /// [`EXPORT_VERSION`] when written by this build.
        version: u32,
    },
    /// A user's profile, and when its last event stream closed.
    User {
        /// The profile.
        user: User,
        /// `last_seen`, if it ever had a stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<Timestamp>,
    },
    /// A group.
    Group(Group),
    /// A member of a group.
    Member {
        /// The group.
        group: GroupId,
        /// The member.
        member: Member,
    },
    /// A contact of a user.
    Contact {
        /// Whose contact.
        owner: UserId,
        /// The contact.
        contact: Contact,
    },
    /// A message as it now is. A conversation's messages come in seq
    /// order, from 1 without gaps.
    Message(Message),
    /// A user's index entry for a conversation.
    Entry {
        /// Whose entry.
        user: UserId,
        /// The entry.
        entry: ConvEntry,
    },
    /// A marked user: a join request, a ban, a block, a suspension.
    Mark {
        /// The set it is in.
        set: Marks,
        /// Who.
        user: UserId,
        /// Since when.
        since: Timestamp,
    },
    /// The last line: how many records came between it and the first.
    End {
        /// Their number.
        records: u64,
    },
}

impl Record {
    /// The first line of an export of this build.
    pub fn format() -> Self {
        Self::Format {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
        }
    }

    /// Where the record goes in an export: the kinds in the order the
    /// module docs list them.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Format { .. } => 0,
            Self::User { .. } => 1,
            Self::Group(_) => 2,
            Self::Member { .. } => 3,
            Self::Contact { .. } => 4,
            Self::Message(_) => 5,
            Self::Entry { .. } => 6,
            Self::Mark { .. } => 7,
            Self::End { .. } => 8,
        }
    }

    /// The order of an export: by kind ([`Record::rank`]), then by the id
    /// the record is filed under (the user, the group, the contacts'
    /// owner, the conversation) as text, then by the second id as text (a
    /// member, a contact, an entry's conversation) or the seq (a message).
    /// Every store exports in this order, so exports of the same data are
    /// the same line for line, whatever the store.
    pub fn sort_key(&self) -> (u8, String, String, Seq) {
        let (first, second, seq) = match self {
            Self::Format { .. } | Self::End { .. } => (String::new(), String::new(), 0),
            Self::User { user, .. } => (user.id.to_string(), String::new(), 0),
            Self::Group(g) => (g.id.to_string(), String::new(), 0),
            Self::Member { group, member } => (group.to_string(), member.id.to_string(), 0),
            Self::Contact { owner, contact } => (owner.to_string(), contact.id.to_string(), 0),
            Self::Message(m) => (m.conversation.to_string(), String::new(), m.seq),
            Self::Entry { user, entry } => (user.to_string(), entry.conversation.to_string(), 0),
            Self::Mark { set, user, .. } => (format!("{set:?}"), user.to_string(), 0),
        };
        (self.rank(), first, second, seq)
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The target store holds data already.
    #[error("the target store is not empty: import loads only into an empty store")]
    NotEmpty,
    /// The first record is not a format line this build reads.
    #[error("line {line}: not an export of format {EXPORT_FORMAT} version {EXPORT_VERSION}")]
    Format {
        /// The line (1-based).
        line: u64,
    },
    /// A record out of place: a conversation's messages not in seq order
    /// from 1, a second format line.
    #[error("line {line}: {message}")]
    Invalid {
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The input stopped before the end line: an export cut short.
    #[error("the export ends without its end line: it was cut short")]
    Truncated,
    /// The store failed.
    #[error("the target store failed")]
    Store(#[source] StoreError),
}

fn store_error(e: impl Into<StoreError>) -> ImportError {
    ImportError::Store(e.into())
}

/// Every line of an export of `store`: the format line, the store's
/// records ([`Store::export`]) and the end line that counts them. The
/// stream ends after the first error.
pub fn lines<S: Store>(store: &S) -> impl Stream<Item = Result<Record, StoreError>> + Send + '_ {
    async_stream::stream! {
        yield Ok(Record::format());
        let mut records = std::pin::pin!(store.export());
        let mut n = 0;
        while let Some(record) = next(&mut records).await {
            match record {
                Ok(record) => {
                    n += 1;
                    yield Ok(record);
                }
                Err(e) => {
                    yield Err(e.into());
                    return;
                }
            }
        }
        yield Ok(Record::End { records: n });
    }
}

/// Whether `store` holds nothing an export would hold.
///
/// # Errors
///
/// The store's.
pub async fn is_empty<S: Store>(store: &S) -> Result<bool, S::Error> {
    let mut records = std::pin::pin!(store.export());
    let first = next(&mut records).await;
    first.transpose().map(|r| r.is_none())
}

/// The next item of a pinned stream (an export, say).
pub async fn next<T>(stream: &mut Pin<&mut impl Stream<Item = T>>) -> Option<T> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

/// Loads records, one at a time in export order, into an empty store:
/// profiles, groups, members, contacts and entries as change sets of up to
/// 500, each message as a send that reaches nobody's feed (then its edit,
/// deletion and reactions, as the message now shows them).
#[derive(Debug)]
pub struct Importer<'a, S> {
    store: &'a S,
    line: u64,
    changes: Changes,
    queued: usize,
    last: Option<(ConversationId, Seq)>,
    ended: bool,
    /// Records loaded so far.
    pub records: u64,
}

impl<'a, S: Store> Importer<'a, S> {
    /// An importer into `store`, which the caller has checked is empty
    /// ([`is_empty`]).
    pub fn new(store: &'a S) -> Self {
        Self {
            store,
            line: 0,
            changes: Changes::default(),
            queued: 0,
            last: None,
            ended: false,
            records: 0,
        }
    }

    /// Loads the next record (the first must be the format line).
    ///
    /// # Errors
    ///
    /// [`ImportError::Format`], [`ImportError::Invalid`] for a record out
    /// of place, [`ImportError::Store`].
    pub async fn record(&mut self, record: Record) -> Result<(), ImportError> {
        self.line += 1;
        let line = self.line;
        if self.ended {
            return Err(self.invalid("a record after the end line"));
        }
        match record {
            Record::Format { format, version } => {
                if line != 1 {
                    return Err(self.invalid("a second format line"));
                }
                if format != EXPORT_FORMAT || version != EXPORT_VERSION {
                    return Err(ImportError::Format { line });
                }
                return Ok(());
            }
            _ if line == 1 => return Err(ImportError::Format { line }),
            Record::End { records } => {
                if records != self.records {
                    let n = self.records;
                    return Err(self.invalid(format!(
                        "the end line counts {records} records, the export holds {n}"
                    )));
                }
                self.ended = true;
                return Ok(());
            }
            Record::User { user, last_seen } => {
                if let Some(at) = last_seen {
                    let id = user.id.clone();
                    self.store
                        .set_presence(&id, false, at)
                        .await
                        .map_err(store_error)?;
                }
                self.changes.users.push(user);
            }
            Record::Group(group) => self.changes.groups.push(group),
            Record::Member { group, member } => {
                self.changes
                    .members
                    .push((group, MemberChange::Put(member)));
            }
            Record::Contact { owner, contact } => {
                self.changes
                    .contacts
                    .push((owner, ContactChange::Put(contact)));
            }
            Record::Entry { user, entry } => {
                self.changes.entries.push((user, EntryChange::Put(entry)));
            }
            Record::Mark { set, user, since } => {
                let mark = Mark { user, since };
                self.changes.marks.push((set, MarkChange::Put(mark)));
            }
            Record::Message(message) => {
                // Users, groups and members land before the messages that
                // name them.
                self.flush().await?;
                self.message(message).await?;
                self.records += 1;
                return Ok(());
            }
        }
        self.records += 1;
        self.queued += 1;
        if self.queued >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Commits what is queued and makes everything durable.
    ///
    /// # Errors
    ///
    /// [`ImportError::Format`] for an empty input,
    /// [`ImportError::Truncated`] without the end line (what was loaded
    /// stays), [`ImportError::Store`].
    pub async fn finish(mut self) -> Result<u64, ImportError> {
        if self.line == 0 {
            return Err(ImportError::Format { line: 1 });
        }
        if !self.ended {
            return Err(ImportError::Truncated);
        }
        self.flush().await?;
        self.store.flush().await.map_err(store_error)?;
        Ok(self.records)
    }

    fn invalid(&self, message: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            line: self.line,
            message: message.into(),
        }
    }

    async fn flush(&mut self) -> Result<(), ImportError> {
        if self.queued == 0 {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.changes);
        self.queued = 0;
        self.store.commit(&changes).await.map_err(store_error)
    }

    /// Sends `m` to nobody, numbered as it was, then changes it until it
    /// reads back as it was exported.
    async fn message(&mut self, m: Message) -> Result<(), ImportError> {
        let expected = match &self.last {
            Some((c, seq)) if *c == m.conversation => seq + 1,
            _ => 1,
        };
        if m.seq != expected {
            return Err(self.invalid(format!(
                "{} message {} where {expected} was due",
                m.conversation, m.seq
            )));
        }
        let body = m.body.clone().unwrap_or_else(empty_body);
        let send = Outgoing {
            message: NewMessage {
                conversation: m.conversation.clone(),
                from: m.from.clone(),
                ts: m.ts,
                body: body.clone(),
                client_id: m.client_id.clone(),
                reply_to: m.reply_to,
            },
            recipients: Recipients::Users(Vec::new()),
            trim: FeedTrim::default(),
        };
        match self.store.send(&send).await.map_err(store_error)? {
            Sent::New(stored) if stored.seq == m.seq => {}
            _ => return Err(self.invalid(format!("{} is not empty", m.conversation))),
        }
        self.last = Some((m.conversation.clone(), m.seq));
        let mut changes = Vec::new();
        if let Some(at) = m.deleted_at {
            changes.push((MessageChange::Delete, at));
        } else {
            if let Some(at) = m.edited_at {
                changes.push((MessageChange::Edit(body), at));
            }
            for (key, users) in &m.reactions {
                for user in users {
                    let react = MessageChange::React {
                        user: user.clone(),
                        key: key.clone(),
                        add: true,
                    };
                    changes.push((react, m.ts));
                }
            }
        }
        for (change, at) in changes {
            let update = MessageUpdate {
                conversation: m.conversation.clone(),
                seq: m.seq,
                change,
                at,
                recipients: Recipients::Users(Vec::new()),
                max_reaction_keys: usize::MAX,
                trim: FeedTrim::default(),
            };
            let done = self.store.update_message(&update).await;
            if !matches!(done.map_err(store_error)?, MessageUpdated::Changed(_)) {
                return Err(self.invalid(format!(
                    "{} message {} did not apply",
                    m.conversation, m.seq
                )));
            }
        }
        Ok(())
    }
}

/// The body a deleted message is sent with before it is deleted again.
fn empty_body() -> Body {
    Body::new("{}", usize::MAX).expect("an empty object is a body")
}
