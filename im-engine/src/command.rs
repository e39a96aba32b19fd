//! Every engine operation as one value: what the property tests generate,
//! what the fuzz targets decode, and a plain list of what the engine does.

use crate::Error;
use crate::change::ReactionList;
use crate::contact::ContactView;
use crate::data::{
    Body, ConversationId, FieldPatch, GroupId, JoinPolicy, Member, Message, Seq, UserId,
};
use crate::engine::{Actor, Engine};
use crate::feed::{EventPage, Start};
use crate::group::GroupView;
use crate::message::{HistoryPage, SendRequest};
use crate::password::Password;
use crate::store::Store;
use crate::unread::{ConversationView, ReadState};
use crate::user::Profile;

/// One engine operation, as its caller would ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[allow(missing_docs)]
pub enum Command {
    PutUser {
        id: UserId,
        fields: FieldPatch,
    },
    User {
        id: UserId,
    },
    SetPassword {
        id: UserId,
        password: Password,
        old_password: Option<Password>,
    },
    Link {
        id: UserId,
    },
    Unlink {
        id: UserId,
    },
    Contacts,
    PutGroup {
        id: GroupId,
        fields: FieldPatch,
        join: Option<JoinPolicy>,
    },
    Group {
        id: GroupId,
    },
    Members {
        id: GroupId,
    },
    Join {
        group: GroupId,
        user: UserId,
    },
    Leave {
        group: GroupId,
        user: UserId,
    },
    Send {
        conversation: ConversationId,
        request: SendRequest,
    },
    History {
        conversation: ConversationId,
        query: crate::HistoryQuery,
    },
    Message {
        conversation: ConversationId,
        seq: Seq,
    },
    MarkRead {
        conversation: ConversationId,
        seq: Option<Seq>,
    },
    Edit {
        conversation: ConversationId,
        seq: Seq,
        body: Body,
    },
    Delete {
        conversation: ConversationId,
        seq: Seq,
    },
    /// Add (`add`) or take back the caller's reaction.
    React {
        conversation: ConversationId,
        seq: Seq,
        key: String,
        add: bool,
    },
    Reactions {
        conversation: ConversationId,
        seq: Seq,
    },
    Conversations {
        limit: Option<usize>,
    },
    /// Read the caller's feed without waiting.
    Feed {
        start: Start,
        limit: usize,
    },
}

/// What a [`Command`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Outcome {
    /// A profile, and whether it was created.
    Profile(Profile, bool),
    Done,
    /// Done, with nothing to answer.
    NoContent,
    Contacts(Vec<ContactView>),
    /// A group, and whether it was created.
    Group(GroupView, bool),
    Members(Vec<Member>),
    /// A message, and whether it is new.
    Sent(Message, bool),
    History(HistoryPage),
    Message(Message),
    Read(ReadState),
    Reactions(ReactionList),
    Conversations(Vec<ConversationView>),
    Feed(EventPage),
}

impl<S: Store> Engine<S> {
    /// Runs one command as `actor`.
    ///
    /// # Errors
    ///
    /// Those of the operation it names.
    pub async fn execute(&self, actor: &Actor, command: Command) -> Result<Outcome, Error> {
        Ok(match command {
            Command::PutUser { id, fields } => {
                let (p, created) = self.put_user(actor, &id, fields).await?;
                Outcome::Profile(p, created)
            }
            Command::User { id } => Outcome::Profile(self.user(actor, &id).await?, false),
            Command::SetPassword {
                id,
                password,
                old_password,
            } => self
                .set_password(actor, &id, &password, old_password.as_ref())
                .await
                .map(|()| Outcome::NoContent)?,
            Command::Link { id } => self.link(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Unlink { id } => self.unlink(actor, &id).await.map(|()| Outcome::Done)?,
            Command::Contacts => Outcome::Contacts(self.contacts(actor).await?),
            Command::PutGroup { id, fields, join } => {
                let (g, created) = self.put_group(actor, &id, fields, join).await?;
                Outcome::Group(g, created)
            }
            Command::Group { id } => Outcome::Group(self.group(actor, &id).await?, false),
            Command::Members { id } => Outcome::Members(self.members(actor, &id).await?),
            Command::Join { group, user } => self
                .join(actor, &group, &user)
                .await
                .map(|()| Outcome::Done)?,
            Command::Leave { group, user } => self
                .leave(actor, &group, &user)
                .await
                .map(|()| Outcome::Done)?,
            Command::Send {
                conversation,
                request,
            } => {
                let (m, new) = self.send(actor, &conversation, request).await?;
                Outcome::Sent(m, new)
            }
            Command::History {
                conversation,
                query,
            } => Outcome::History(self.history(actor, &conversation, query).await?),
            Command::Message { conversation, seq } => {
                Outcome::Message(self.message(actor, &conversation, seq).await?)
            }
            Command::MarkRead { conversation, seq } => {
                Outcome::Read(self.mark_read(actor, &conversation, seq).await?)
            }
            Command::Edit {
                conversation,
                seq,
                body,
            } => Outcome::Message(self.edit(actor, &conversation, seq, body).await?),
            Command::Delete { conversation, seq } => {
                Outcome::Message(self.delete(actor, &conversation, seq).await?)
            }
            Command::React {
                conversation,
                seq,
                key,
                add,
            } => Outcome::Message(self.react(actor, &conversation, seq, &key, add).await?),
            Command::Reactions { conversation, seq } => {
                Outcome::Reactions(self.reactions(actor, &conversation, seq).await?)
            }
            Command::Conversations { limit } => {
                Outcome::Conversations(self.conversations(actor, limit).await?)
            }
            Command::Feed { start, limit } => Outcome::Feed(self.feed(actor, start, limit).await?),
        })
    }
}
